#include "kvbm/request_sequence.hpp"

#include <string>

namespace kvbm::detail {

void validate_sequence(std::size_t prompt_tokens, std::size_t max_output_tokens,
                       std::uint32_t block_size, const HashKeys& keys) {
  if (block_size == 0) throw ConfigError("request sequence: block_size must be greater than 0");
  keys.validate(prompt_tokens);
  // Every block the sequence can fill must have a representable position, so append_token never
  // fails half way.
  const std::size_t max_tokens = prompt_tokens + max_output_tokens;
  if (max_tokens < prompt_tokens || max_tokens / block_size >= SequenceHash::kMaxPosition) {
    throw ConfigError("request sequence: prompt (" + std::to_string(prompt_tokens) +
                      ") + max_output_tokens (" + std::to_string(max_output_tokens) +
                      ") fill more than 2^24 blocks of " + std::to_string(block_size) + " tokens");
  }
}

}  // namespace kvbm::detail
