#include "kvbm/hash_keys.hpp"

#include <xxhash.h>

#include <algorithm>
#include <optional>
#include <string>

#include "kvbm/errors.hpp"

namespace kvbm {

namespace {
void append_le64(std::vector<unsigned char>& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<unsigned char>(v >> (8 * i)));
}
void append_field(std::vector<unsigned char>& out, const std::string& s) {
  // Length-prefixed so ("ab", "c") and ("a", "bc") encode differently.
  append_le64(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}
}  // namespace

HashKeys& HashKeys::set_cache_salt(std::string salt) {
  cache_salt_ = std::move(salt);
  refresh_seed();
  return *this;
}

HashKeys& HashKeys::set_lora_name(std::string name) {
  lora_name_ = std::move(name);
  refresh_seed();
  return *this;
}

HashKeys& HashKeys::add_multimodal_item(MultimodalItem item) {
  if (item.length == 0) {
    throw ConfigError("HashKeys: a multimodal item must cover at least one token");
  }
  const auto at = std::upper_bound(items_.begin(), items_.end(), item,
                                   [](const MultimodalItem& a, const MultimodalItem& b) {
                                     return a.offset < b.offset;
                                   });
  items_.insert(at, item);
  return *this;
}

void HashKeys::refresh_seed() noexcept {
  if (cache_salt_.empty() && lora_name_.empty()) {
    seed_ = 0;
    return;
  }
  std::vector<unsigned char> bytes;
  static constexpr char kTag[] = "kvbm.hash_keys.v1";
  bytes.insert(bytes.end(), kTag, kTag + sizeof(kTag) - 1);
  append_field(bytes, cache_salt_);
  append_field(bytes, lora_name_);
  seed_ = XXH3_64bits_withSeed(bytes.data(), bytes.size(), 0);
  // Seed 0 is the unkeyed chain; keep keyed chains off it even in the 2^-64 case.
  if (seed_ == 0) seed_ = 1;
}

std::vector<std::uint64_t> HashKeys::block_extra_keys(std::size_t block_index,
                                                      std::uint32_t block_size) const {
  std::vector<std::uint64_t> out;
  const std::size_t begin = block_index * block_size;
  const std::size_t end = begin + block_size;
  for (const MultimodalItem& item : items_) {
    if (item.offset >= end) break;  // sorted by offset
    if (item.offset + item.length > begin) out.push_back(item.hash);
  }
  return out;
}

std::uint64_t HashKeys::block_hash(std::span<const Token> tokens, std::size_t block_index) const {
  const std::uint64_t token_hash = hash_token_block(tokens, seed_);
  if (items_.empty()) return token_hash;
  const std::size_t begin = block_index * tokens.size();
  const std::size_t end = begin + tokens.size();
  std::vector<unsigned char> bytes;
  for (const MultimodalItem& item : items_) {
    if (item.offset >= end) break;
    if (item.offset + item.length <= begin) continue;
    if (bytes.empty()) append_le64(bytes, token_hash);
    append_le64(bytes, item.hash);
  }
  if (bytes.empty()) return token_hash;
  return XXH3_64bits_withSeed(bytes.data(), bytes.size(), 0);
}

void HashKeys::validate(std::size_t prompt_tokens) const {
  for (const MultimodalItem& item : items_) {
    if (item.offset + item.length > prompt_tokens || item.offset + item.length < item.offset) {
      throw ConfigError("HashKeys: multimodal item at offset " + std::to_string(item.offset) +
                        " of length " + std::to_string(item.length) +
                        " lies outside the prompt of " + std::to_string(prompt_tokens) + " tokens");
    }
  }
}

std::vector<SequenceHash> keyed_sequence_hashes(std::span<const Token> tokens,
                                                std::uint32_t block_size, const HashKeys& keys) {
  if (block_size == 0) {
    throw ConfigError("keyed_sequence_hashes: block_size must be greater than 0");
  }
  std::vector<SequenceHash> out;
  out.reserve(tokens.size() / block_size);
  std::optional<std::uint64_t> parent;
  for (std::size_t i = 0; (i + 1) * block_size <= tokens.size(); ++i) {
    const std::uint64_t block = keys.block_hash(tokens.subspan(i * block_size, block_size), i);
    const std::uint64_t current = parent ? chain_sequence_hash(*parent, block) : block;
    out.push_back(SequenceHash::from_parts(current, parent, static_cast<std::uint32_t>(i)));
    parent = current;
  }
  return out;
}

}  // namespace kvbm
