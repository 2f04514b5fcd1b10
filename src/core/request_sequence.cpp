#include "kvbm/request_sequence.hpp"

#include <string>

namespace kvbm::detail {

void validate_sequence(std::size_t prompt_tokens, std::size_t max_output_tokens,
                       std::uint32_t block_size, const HashKeys& keys) {
  if (block_size == 0 || (block_size & (block_size - 1)) != 0) {
    // A manager's block size is a power of two, and the sequence's must equal it.
    throw ConfigError("request sequence: block_size " + std::to_string(block_size) +
                      " is not a power of two");
  }
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
