// HashKeys: salt, LoRA and multimodal items change the lineage hash (and so what can be shared);
// empty keys keep the dynamo-tokens hashes bit for bit.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <vector>

#include "core/sequence_test_helpers.hpp"

namespace kvbm {
namespace {

using test::create_test_manager;
using test::iota_tokens;
using test::make_seq;
using test::prefill_all;

TEST(HashKeys, EmptyKeysAreBitExactWithDynamoTokens) {
  // The upstream vectors of tests/core/sequence_hash_test.cpp (tokens 0..7, block size 4, salt 0).
  const auto hashes = keyed_sequence_hashes(iota_tokens(0, 8), 4, HashKeys{});
  ASSERT_EQ(hashes.size(), 2u);
  EXPECT_EQ(hashes[0].current_fragment(), 11660027832386793900ull);
  EXPECT_EQ(hashes[1].current_fragment(), 15795048925959984383ull);
  EXPECT_EQ(hashes[1].high(), 0x0076ccd253fe70a5ull);
  EXPECT_EQ(hashes[1].low(), 0x3fd0bd893c9531acull);
  EXPECT_TRUE(HashKeys{}.empty());
  EXPECT_EQ(HashKeys{}.seed(), 0u);
  // And the sequences hash exactly as TokenBlockSequence does, generated tokens included.
  auto m = create_test_manager(20);
  auto seq = make_seq(iota_tokens(0, 6), 8);
  prefill_all(seq, m, 6);
  for (Token t = 7; t < 12; ++t) {
    seq.schedule_decode(m);
    (void)seq.apply_decode(t, m);
  }
  const TokenBlockSequence reference(iota_tokens(0, 12), 4, 0);
  ASSERT_EQ(seq.sequence_hashes().size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(seq.sequence_hashes()[i], reference.blocks()[i].sequence_hash());
  }
}

RC_GTEST_PROP(HashKeys, EmptyKeysMatchTokenBlockSequence, (std::vector<std::uint32_t> tokens)) {
  const std::uint32_t block_size = *rc::gen::element(1u, 2u, 4u, 16u);
  const auto keyed = keyed_sequence_hashes(tokens, block_size, HashKeys{});
  RC_ASSERT(keyed == TokenBlockSequence(tokens, block_size, 0).sequence_hashes());
}

TEST(HashKeys, AccessorsForEvents) {
  HashKeys keys;
  keys.set_lora_name("sql-adapter").set_cache_salt("tenant-7");
  keys.add_multimodal_item({0xBEEF, 6, 4});  // tokens 6..9
  keys.add_multimodal_item({0xCAFE, 1, 1});
  EXPECT_EQ(keys.lora_name(), "sql-adapter");
  EXPECT_EQ(keys.cache_salt(), "tenant-7");
  ASSERT_EQ(keys.multimodal_items().size(), 2u);
  EXPECT_EQ(keys.multimodal_items()[0].hash, 0xCAFEu);  // kept in offset order
  EXPECT_EQ(keys.block_extra_keys(0, 4), (std::vector<std::uint64_t>{0xCAFE}));
  EXPECT_EQ(keys.block_extra_keys(1, 4), (std::vector<std::uint64_t>{0xBEEF}));
  EXPECT_EQ(keys.block_extra_keys(2, 4), (std::vector<std::uint64_t>{0xBEEF}));
  EXPECT_TRUE(keys.block_extra_keys(3, 4).empty());
  EXPECT_FALSE(keys.empty());
  EXPECT_NE(keys.seed(), 0u);
  EXPECT_THROW(keys.add_multimodal_item({1, 0, 0}), ConfigError);
}

// Two requests with the same tokens under different keys: the second never matches the first.
void expect_isolated(const HashKeys& a, const HashKeys& b) {
  auto m = create_test_manager(20);
  auto first = make_seq(iota_tokens(0, 12), 1, 4, a);
  prefill_all(first, m);
  auto same = make_seq(iota_tokens(0, 12), 1, 4, a);
  EXPECT_EQ(same.match_and_add_prefix(m), 2u);  // same keys share
  auto other = make_seq(iota_tokens(0, 12), 1, 4, b);
  EXPECT_EQ(other.match_and_add_prefix(m), 0u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_NE(first.sequence_hashes()[i], other.sequence_hashes()[i]) << i;
  }
}

TEST(HashKeys, DifferentSaltsNeverShareABlock) {
  HashKeys a, b;
  a.set_cache_salt("tenant-a");
  b.set_cache_salt("tenant-b");
  expect_isolated(a, b);
  expect_isolated(a, HashKeys{});
}

TEST(HashKeys, DifferentLorasNeverShareABlock) {
  HashKeys a, b;
  a.set_lora_name("adapter-1");
  b.set_lora_name("adapter-2");
  expect_isolated(a, b);
  expect_isolated(HashKeys{}, b);
  // The fields are separate: salt "x" is not lora "x", nor ("ab","c") ("a","bc").
  HashKeys salt_x, lora_x, ab_c, a_bc;
  salt_x.set_cache_salt("x");
  lora_x.set_lora_name("x");
  ab_c.set_cache_salt("ab").set_lora_name("c");
  a_bc.set_cache_salt("a").set_lora_name("bc");
  EXPECT_NE(salt_x.seed(), lora_x.seed());
  EXPECT_NE(ab_c.seed(), a_bc.seed());
}

TEST(HashKeys, DifferentImagesBehindTheSamePlaceholdersNeverMatch) {
  // Placeholder tokens 4..7 carry an image; blocks before it are shared, from it on are not.
  HashKeys cat, dog;
  cat.add_multimodal_item({0xCA7, 4, 4});
  dog.add_multimodal_item({0xD06, 4, 4});
  std::vector<Token> prompt = iota_tokens(0, 13);
  const auto cat_hashes = keyed_sequence_hashes(prompt, 4, cat);
  const auto dog_hashes = keyed_sequence_hashes(prompt, 4, dog);
  const auto plain = keyed_sequence_hashes(prompt, 4, HashKeys{});
  EXPECT_EQ(cat_hashes[0], dog_hashes[0]);
  EXPECT_EQ(cat_hashes[0], plain[0]);
  EXPECT_NE(cat_hashes[1], dog_hashes[1]);
  EXPECT_NE(cat_hashes[2], dog_hashes[2]);  // through the chain
  EXPECT_NE(cat_hashes[1], plain[1]);

  auto m = create_test_manager(20);
  auto first = make_seq(prompt, 1, 4, cat);
  prefill_all(first, m);
  auto same_image = make_seq(prompt, 1, 4, cat);
  EXPECT_EQ(same_image.match_and_add_prefix(m), 3u);
  auto other_image = make_seq(prompt, 1, 4, dog);
  EXPECT_EQ(other_image.match_and_add_prefix(m), 1u);  // only the text before the image
}

}  // namespace
}  // namespace kvbm
