// Token hashing and the 128-bit positional lineage hash (core spec §3), bit-exact with
// dynamo-tokens: the test vectors below are upstream outputs.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <sstream>
#include <unordered_set>
#include <vector>

#include "core/test_helpers.hpp"

namespace kvbm {
namespace {

using test::iota_tokens;

constexpr std::uint64_t kMax64 = std::numeric_limits<std::uint64_t>::max();

u128 make_u128(std::uint64_t hi, std::uint64_t lo) { return (static_cast<u128>(hi) << 64) | lo; }

void expect_bits(const SequenceHash& h, std::uint64_t hi, std::uint64_t lo) {
  EXPECT_EQ(h.high(), hi) << std::hex << "high 0x" << h.high() << " expected 0x" << hi;
  EXPECT_EQ(h.low(), lo) << std::hex << "low 0x" << h.low() << " expected 0x" << lo;
  EXPECT_TRUE(h.as_u128() == make_u128(hi, lo));
}

// ------------------------------------------------------------------ upstream test vectors

TEST(SequenceHashVectors, Tokens0To3Salt0Block0) {
  TokenBlockSequence seq(iota_tokens(0, 4), 4, 0);
  ASSERT_EQ(seq.blocks().size(), 1u);
  const auto& b = seq.blocks()[0];
  EXPECT_EQ(b.block_hash(), 11660027832386793900ull);
  EXPECT_EQ(b.sequence_hash().current_fragment(), 11660027832386793900ull);
  expect_bits(b.sequence_hash(), 0x0028742f624f254cull, 0x6b00000000000000ull);
  EXPECT_EQ(b.position(), 0u);
  EXPECT_EQ(b.sequence_hash().position(), 0u);
  EXPECT_EQ(b.sequence_hash().mode(), 0u);
  EXPECT_EQ(b.sequence_hash().parent_fragment(), 0u);
  EXPECT_EQ(hash_token_block(b.tokens(), 0), 11660027832386793900ull);
}

TEST(SequenceHashVectors, Tokens0To7Salt0Block1) {
  TokenBlockSequence seq(iota_tokens(0, 8), 4, 0);
  ASSERT_EQ(seq.blocks().size(), 2u);
  const auto& b = seq.blocks()[1];
  EXPECT_EQ(b.block_hash(), 17347725783634504724ull);
  EXPECT_EQ(b.sequence_hash().current_fragment(), 15795048925959984383ull);
  expect_bits(b.sequence_hash(), 0x0076ccd253fe70a5ull, 0x3fd0bd893c9531acull);
  EXPECT_EQ(b.position(), 1u);
  EXPECT_EQ(b.sequence_hash().position(), 1u);
  // Parent fragment: the low 54 bits of block 0's sequence hash.
  EXPECT_EQ(b.sequence_hash().parent_fragment(),
            11660027832386793900ull & ((std::uint64_t{1} << 54) - 1));
  EXPECT_EQ(chain_sequence_hash(11660027832386793900ull, 17347725783634504724ull),
            15795048925959984383ull);
}

TEST(SequenceHashVectors, Tokens0To3Salt1337Block0) {
  TokenBlockSequence seq(iota_tokens(0, 4), 4, 1337);
  const auto& b = seq.blocks().at(0);
  EXPECT_EQ(b.block_hash(), 9143094415614847814ull);
  EXPECT_EQ(b.sequence_hash().current_fragment(), 9143094415614847814ull);
  expect_bits(b.sequence_hash(), 0x001fb8b2fb71a52aull, 0xd180000000000000ull);
  EXPECT_EQ(hash_token_block(b.tokens(), 1337), 9143094415614847814ull);
}

TEST(SequenceHashVectors, Tokens0To7Salt1337Block1) {
  TokenBlockSequence seq(iota_tokens(0, 8), 4, 1337);
  const auto& b = seq.blocks().at(1);
  EXPECT_EQ(b.block_hash(), 12124091508212882195ull);
  EXPECT_EQ(b.sequence_hash().current_fragment(), 1545165097461304815ull);
  expect_bits(b.sequence_hash(), 0x00455c61de0c60d3ull, 0x7be2cbedc694ab46ull);
  // The salt enters through the block hash only: chaining uses seed 0.
  EXPECT_EQ(chain_sequence_hash(9143094415614847814ull, 12124091508212882195ull),
            1545165097461304815ull);
}

TEST(SequenceHashVectors, FromParts42NoParentPosition0) {
  expect_bits(SequenceHash::from_parts(42, std::nullopt, 0), 0x0000000000000000ull,
              0x0a80000000000000ull);
}

TEST(SequenceHashVectors, FromPartsAllOnesPosition5) {
  const auto h = SequenceHash::from_parts(kMax64, kMax64, 5);
  expect_bits(h, 0x017fffffffffffffull, 0xffffffffffffffffull);
  EXPECT_EQ(h.mode(), 0u);
  EXPECT_EQ(h.position(), 5u);
  EXPECT_EQ(h.current_fragment(), kMax64);
  EXPECT_EQ(h.parent_fragment(), (std::uint64_t{1} << 54) - 1);
}

TEST(SequenceHashVectors, FromPartsAllOnesPosition1000) {
  const auto h = SequenceHash::from_parts(kMax64, kMax64, 1000);
  expect_bits(h, 0x40fa3fffffffffffull, 0xffffffffffffffffull);
  EXPECT_EQ(h.mode(), 1u);
  EXPECT_EQ(h.position(), 1000u);
  EXPECT_EQ(h.current_fragment(), kMax64);
  EXPECT_EQ(h.parent_fragment(), (std::uint64_t{1} << 46) - 1);
}

TEST(SequenceHashVectors, FromPartsPosition70000) {
  const auto h = SequenceHash::from_parts(123456789, 987654321, 70000);
  expect_bits(h, 0x80445c0000000001ull, 0xd6f345403ade68b1ull);
  EXPECT_EQ(h.mode(), 2u);
  EXPECT_EQ(h.position(), 70000u);
  EXPECT_EQ(h.current_fragment(), 123456789u);
  EXPECT_EQ(h.parent_fragment(), 987654321ull & ((std::uint64_t{1} << 38) - 1));
}

TEST(SequenceHashVectors, Tokens0To1199Salt7Blocks255_256_299) {
  TokenBlockSequence seq(iota_tokens(0, 1200), 4, 7);
  ASSERT_EQ(seq.blocks().size(), 300u);
  const auto& b255 = seq.blocks()[255];
  const auto& b256 = seq.blocks()[256];
  const auto& b299 = seq.blocks()[299];
  expect_bits(b255.sequence_hash(), 0x3fc2bb42ac5e286full, 0x64450045198f6203ull);
  expect_bits(b256.sequence_hash(), 0x40402e820a58c51bull, 0xb8d3cab178a1bd91ull);
  expect_bits(b299.sequence_hash(), 0x404ad89a12b42176ull, 0xa971adaf6c328068ull);
  EXPECT_EQ(b255.sequence_hash().mode(), 0u);
  EXPECT_EQ(b256.sequence_hash().mode(), 1u);
  EXPECT_EQ(b299.sequence_hash().mode(), 1u);
  EXPECT_EQ(b255.sequence_hash().position(), 255u);
  EXPECT_EQ(b256.sequence_hash().position(), 256u);
  EXPECT_EQ(b299.sequence_hash().position(), 299u);
  // Values unpacked from the vectors (full 64-bit current hash).
  EXPECT_EQ(b255.sequence_hash().current_fragment(), 787297267209059729ull);
  EXPECT_EQ(b256.sequence_hash().current_fragment(), 13405009796389593935ull);
  EXPECT_EQ(b299.sequence_hash().current_fragment(), 7090999872754197958ull);
  // The child at 256 (mode 1) links to its mode-0 parent through a 46-bit fragment.
  EXPECT_EQ(b256.sequence_hash().parent_fragment(),
            b255.sequence_hash().fragment_for_child_position(256));
  EXPECT_EQ(b256.sequence_hash().parent_fragment(),
            b255.sequence_hash().current_fragment() & ((std::uint64_t{1} << 46) - 1));
}

// ------------------------------------------------------------------ chaining structure

TEST(SequenceHash, ChainMatchesFreeFunctions) {
  TokenBlockSequence seq(iota_tokens(10, 4 * 6), 4, 99);
  ASSERT_EQ(seq.blocks().size(), 6u);
  std::uint64_t parent = 0;
  for (std::size_t i = 0; i < seq.blocks().size(); ++i) {
    const auto& b = seq.blocks()[i];
    SCOPED_TRACE(i);
    ASSERT_EQ(b.tokens().size(), 4u);
    EXPECT_EQ(b.tokens()[0], 10u + 4 * i);
    EXPECT_EQ(b.block_hash(), hash_token_block(b.tokens(), 99));
    const std::uint64_t current = i == 0 ? b.block_hash() : chain_sequence_hash(parent, b.block_hash());
    EXPECT_EQ(b.sequence_hash().current_fragment(), current);
    const auto expected = SequenceHash::from_parts(
        current, i == 0 ? std::nullopt : std::optional<std::uint64_t>(parent),
        static_cast<std::uint32_t>(i));
    EXPECT_EQ(b.sequence_hash(), expected);
    EXPECT_EQ(b.position(), i);
    parent = current;
  }
  EXPECT_EQ(seq.sequence_hashes(), test::hashes_of(seq.blocks()));
}

TEST(SequenceHash, Deterministic) {
  TokenBlockSequence a(iota_tokens(5, 40), 4, 3);
  TokenBlockSequence b(iota_tokens(5, 40), 4, 3);
  EXPECT_EQ(a.sequence_hashes(), b.sequence_hashes());
  for (std::size_t i = 0; i < a.blocks().size(); ++i) {
    EXPECT_EQ(a.blocks()[i].block_hash(), b.blocks()[i].block_hash());
  }
  EXPECT_EQ(SequenceHash::from_parts(7, 6, 3), SequenceHash::from_parts(7, 6, 3));
  EXPECT_EQ(std::hash<SequenceHash>{}(SequenceHash::from_parts(7, 6, 3)),
            std::hash<SequenceHash>{}(SequenceHash::from_parts(7, 6, 3)));
}

TEST(SequenceHash, SaltSensitive) {
  TokenBlockSequence a(iota_tokens(0, 8), 4, 0);
  TokenBlockSequence b(iota_tokens(0, 8), 4, 1);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_NE(a.blocks()[i].block_hash(), b.blocks()[i].block_hash());
    EXPECT_NE(a.blocks()[i].sequence_hash(), b.blocks()[i].sequence_hash());
  }
  EXPECT_NE(hash_token_block(a.blocks()[0].tokens(), 0), hash_token_block(a.blocks()[0].tokens(), 42));
}

TEST(SequenceHash, DefaultSaltIsZero) {
  TokenBlockSequence a(iota_tokens(0, 8), 4);
  TokenBlockSequence b(iota_tokens(0, 8), 4, 0);
  EXPECT_EQ(a.salt(), 0u);
  EXPECT_EQ(a.sequence_hashes(), b.sequence_hashes());
}

TEST(SequenceHash, PrefixSensitive) {
  // Same second block, different first block: same block hash, different sequence hash.
  std::vector<Token> t1{1, 2, 3, 4, 9, 9, 9, 9};
  std::vector<Token> t2{1, 2, 3, 5, 9, 9, 9, 9};
  TokenBlockSequence a(t1, 4, 0);
  TokenBlockSequence b(t2, 4, 0);
  EXPECT_NE(a.blocks()[0].sequence_hash(), b.blocks()[0].sequence_hash());
  EXPECT_EQ(a.blocks()[1].block_hash(), b.blocks()[1].block_hash());
  EXPECT_NE(a.blocks()[1].sequence_hash(), b.blocks()[1].sequence_hash());
  EXPECT_NE(a.blocks()[1].sequence_hash().current_fragment(),
            b.blocks()[1].sequence_hash().current_fragment());
  // Same tokens at a different position: block hash equal, sequence hash differs.
  TokenBlockSequence c(std::vector<Token>{9, 9, 9, 9}, 4, 0);
  EXPECT_EQ(c.blocks()[0].block_hash(), a.blocks()[1].block_hash());
  EXPECT_NE(c.blocks()[0].sequence_hash(), a.blocks()[1].sequence_hash());
}

TEST(SequenceHash, TokenOrderAndEveryTokenMatter) {
  const auto base = hash_token_block(std::vector<Token>{1, 2, 3, 4}, 0);
  EXPECT_NE(base, hash_token_block(std::vector<Token>{2, 1, 3, 4}, 0));
  EXPECT_NE(base, hash_token_block(std::vector<Token>{1, 2, 3, 5}, 0));
  EXPECT_NE(base, hash_token_block(std::vector<Token>{1, 2, 3, 4 + (1u << 16)}, 0));
}

// ------------------------------------------------------------------ position modes

TEST(SequenceHash, ModeBoundary255To256) {
  const auto p255 = SequenceHash::from_parts(kMax64, kMax64, 255);
  const auto p256 = SequenceHash::from_parts(kMax64, kMax64, 256);
  EXPECT_EQ(p255.mode(), 0u);
  EXPECT_EQ(p256.mode(), 1u);
  EXPECT_EQ(p255.position(), 255u);
  EXPECT_EQ(p256.position(), 256u);
  EXPECT_EQ(p255.parent_fragment(), (std::uint64_t{1} << 54) - 1);  // 54-bit fragment
  EXPECT_EQ(p256.parent_fragment(), (std::uint64_t{1} << 46) - 1);  // 46-bit fragment
  EXPECT_EQ(p255.current_fragment(), kMax64);
  EXPECT_EQ(p256.current_fragment(), kMax64);
  // Exact packing: [mode:2][position:P][current:64][parent:F].
  EXPECT_TRUE(p255.as_u128() == ((static_cast<u128>(255) << 118) | (static_cast<u128>(kMax64) << 54) |
                                 ((u128{1} << 54) - 1)));
  EXPECT_TRUE(p256.as_u128() == ((u128{1} << 126) | (static_cast<u128>(256) << 110) |
                                 (static_cast<u128>(kMax64) << 46) | ((u128{1} << 46) - 1)));
}

TEST(SequenceHash, ModeBoundary65535To65536) {
  const auto a = SequenceHash::from_parts(kMax64, kMax64, 65535);
  const auto b = SequenceHash::from_parts(kMax64, kMax64, 65536);
  EXPECT_EQ(a.mode(), 1u);
  EXPECT_EQ(b.mode(), 2u);
  EXPECT_EQ(a.position(), 65535u);
  EXPECT_EQ(b.position(), 65536u);
  EXPECT_EQ(a.parent_fragment(), (std::uint64_t{1} << 46) - 1);
  EXPECT_EQ(b.parent_fragment(), (std::uint64_t{1} << 38) - 1);  // 38-bit fragment
  EXPECT_EQ(a.current_fragment(), kMax64);
  EXPECT_EQ(b.current_fragment(), kMax64);
  EXPECT_TRUE(b.as_u128() == ((u128{2} << 126) | (static_cast<u128>(65536) << 102) |
                              (static_cast<u128>(kMax64) << 38) | ((u128{1} << 38) - 1)));
}

TEST(SequenceHash, FragmentsRoundTripAcrossModes) {
  const std::uint64_t current = 0x0123456789abcdefull;
  const std::uint64_t parent = 0xfedcba9876543210ull;
  for (std::uint32_t pos : {1u, 17u, 254u, 255u, 256u, 257u, 4096u, 65535u, 65536u, 65537u,
                            (1u << 24) - 1}) {
    SCOPED_TRACE(pos);
    const auto h = SequenceHash::from_parts(current, parent, pos);
    EXPECT_EQ(h.position(), pos);
    EXPECT_EQ(h.current_fragment(), current);
    const unsigned f = pos < 256 ? 54 : pos < 65536 ? 46 : 38;
    EXPECT_EQ(h.parent_fragment(), parent & ((std::uint64_t{1} << f) - 1));
    EXPECT_EQ(SequenceHash::from_u128(h.as_u128()), h);
  }
}

TEST(SequenceHash, MaxPositionAcceptedAndBeyondThrows) {
  const auto top = SequenceHash::from_parts(1, 2, (1u << 24) - 1);
  EXPECT_EQ(top.position(), (1u << 24) - 1);
  EXPECT_EQ(top.mode(), 2u);
  EXPECT_THROW((void)SequenceHash::from_parts(1, 2, 1u << 24), PositionOutOfRange);
  EXPECT_THROW((void)SequenceHash::from_parts(1, std::nullopt, 1u << 24), PositionOutOfRange);
  EXPECT_THROW((void)SequenceHash::from_parts(1, 2, std::numeric_limits<std::uint32_t>::max()),
               PositionOutOfRange);
  try {
    (void)SequenceHash::from_parts(1, 2, 1u << 24);
    FAIL() << "expected PositionOutOfRange";
  } catch (const Error& e) {  // part of the kvbm hierarchy, with a message
    EXPECT_NE(std::string(e.what()), "");
  }
}

TEST(SequenceHash, NoParentGivesZeroFragment) {
  EXPECT_EQ(SequenceHash::from_parts(5, std::nullopt, 0).parent_fragment(), 0u);
  EXPECT_EQ(SequenceHash::from_parts(5, std::nullopt, 300).parent_fragment(), 0u);
  EXPECT_NE(SequenceHash::from_parts(5, std::nullopt, 3), SequenceHash::from_parts(5, 1, 3));
}

TEST(SequenceHash, EqualityAndHashUseAll128Bits) {
  std::unordered_set<SequenceHash> set;
  set.insert(SequenceHash::from_parts(1, 1, 1));
  set.insert(SequenceHash::from_parts(1, 2, 1));  // differs in parent only
  set.insert(SequenceHash::from_parts(1, 1, 2));  // differs in position only
  set.insert(SequenceHash::from_parts(2, 1, 1));  // differs in current only
  set.insert(SequenceHash::from_parts(1, 1, 1));
  EXPECT_EQ(set.size(), 4u);
  std::ostringstream os;
  os << SequenceHash::from_parts(1, 1, 1);
  EXPECT_FALSE(os.str().empty());
}

// ------------------------------------------------------------------ TokenBlockSequence

TEST(TokenBlockSequence, FullBlocksOnlyTailHasNoHash) {
  TokenBlockSequence seq(iota_tokens(0, 10), 4, 0);
  EXPECT_EQ(seq.blocks().size(), 2u);
  EXPECT_EQ(seq.total_tokens(), 10u);
  EXPECT_EQ(seq.block_size(), 4u);
  EXPECT_EQ(seq.sequence_hashes().size(), 2u);
  EXPECT_EQ(seq.tokens().size(), 10u);
}

TEST(TokenBlockSequence, AppendCompletesBlocksLikeConstruction) {
  TokenBlockSequence full(iota_tokens(0, 12), 4, 42);
  TokenBlockSequence grown({}, 4, 42);
  EXPECT_TRUE(grown.blocks().empty());
  std::vector<std::size_t> completed_at;
  for (Token t = 0; t < 12; ++t) {
    if (grown.append(t)) {
      completed_at.push_back(t);
      EXPECT_EQ(grown.blocks().back().position(), grown.blocks().size() - 1);
    }
  }
  EXPECT_EQ(completed_at, (std::vector<std::size_t>{3, 7, 11}));
  EXPECT_EQ(grown.sequence_hashes(), full.sequence_hashes());
  EXPECT_EQ(grown.total_tokens(), 12u);

  // A partial tail, then completion.
  TokenBlockSequence tail(iota_tokens(0, 6), 4, 42);
  EXPECT_EQ(tail.blocks().size(), 1u);
  EXPECT_FALSE(tail.append(6));
  EXPECT_EQ(tail.blocks().size(), 1u);
  EXPECT_TRUE(tail.append(7));
  ASSERT_EQ(tail.blocks().size(), 2u);
  EXPECT_EQ(tail.blocks()[1].sequence_hash(), full.blocks()[1].sequence_hash());
  EXPECT_EQ(std::vector<Token>(tail.blocks()[1].tokens().begin(), tail.blocks()[1].tokens().end()),
            (std::vector<Token>{4, 5, 6, 7}));
}

TEST(TokenBlockSequence, ExtendMatchesConstruction) {
  TokenBlockSequence full(iota_tokens(0, 20), 4, 5);
  TokenBlockSequence ext(iota_tokens(0, 3), 4, 5);
  const auto rest = iota_tokens(3, 17);
  ext.extend(rest);
  EXPECT_EQ(ext.sequence_hashes(), full.sequence_hashes());
  EXPECT_EQ(ext.total_tokens(), 20u);
}

TEST(TokenBlockSequence, BlockSizeOne) {
  TokenBlockSequence seq(iota_tokens(0, 3), 1, 0);
  ASSERT_EQ(seq.blocks().size(), 3u);
  EXPECT_EQ(seq.blocks()[2].position(), 2u);
  EXPECT_EQ(seq.blocks()[2].block_size(), 1u);
}

TEST(TokenBlockSequence, ZeroBlockSizeIsAConfigError) {
  EXPECT_THROW(TokenBlockSequence(iota_tokens(0, 4), 0, 0), ConfigError);
}

}  // namespace
}  // namespace kvbm

// ------------------------------------------------------------------ properties (rapidcheck)

namespace kvbm {
namespace {

RC_GTEST_PROP(SequenceHashProperty, FieldsRoundTripForEveryPosition,
              (std::uint64_t current, std::uint64_t parent)) {
  const auto position = *rc::gen::inRange<std::uint32_t>(0, SequenceHash::kMaxPosition);
  const bool has_parent = *rc::gen::arbitrary<bool>();
  const auto h = SequenceHash::from_parts(
      current, has_parent ? std::optional<std::uint64_t>(parent) : std::nullopt, position);
  const unsigned mode = position < 256 ? 0 : position < 65536 ? 1 : 2;
  const unsigned f = 54 - 8 * mode;
  RC_ASSERT(h.mode() == mode);
  RC_ASSERT(h.position() == position);
  RC_ASSERT(h.current_fragment() == current);
  RC_ASSERT(h.parent_fragment() == (has_parent ? parent & ((std::uint64_t{1} << f) - 1) : 0));
  RC_ASSERT(SequenceHash::from_u128(h.as_u128()) == h);
  const u128 expected = (static_cast<u128>(mode) << 126) |
                        (static_cast<u128>(position) << (64 + f)) |
                        (static_cast<u128>(current) << f) |
                        (has_parent ? (parent & ((std::uint64_t{1} << f) - 1)) : 0);
  RC_ASSERT(h.as_u128() == expected);
}

RC_GTEST_PROP(SequenceHashProperty, PositionsFrom2To24Throw, ()) {
  const auto position = *rc::gen::inRange<std::uint32_t>(SequenceHash::kMaxPosition,
                                                         std::numeric_limits<std::uint32_t>::max());
  RC_ASSERT_THROWS_AS((void)SequenceHash::from_parts(1, 2, position), PositionOutOfRange);
}

RC_GTEST_PROP(TokenBlockSequenceProperty, AppendEqualsConstructionAndChains,
              (std::vector<std::uint32_t> tokens, std::uint64_t salt)) {
  const std::uint32_t block_size = 1u << *rc::gen::inRange(0, 4);
  TokenBlockSequence built(tokens, block_size, salt);
  TokenBlockSequence grown({}, block_size, salt);
  std::size_t completed = 0;
  for (auto t : tokens) completed += grown.append(t) ? 1 : 0;
  RC_ASSERT(completed == tokens.size() / block_size);
  RC_ASSERT(built.blocks().size() == tokens.size() / block_size);
  RC_ASSERT(grown.sequence_hashes() == built.sequence_hashes());
  std::uint64_t parent = 0;
  for (std::size_t i = 0; i < built.blocks().size(); ++i) {
    const auto& b = built.blocks()[i];
    RC_ASSERT(b.block_hash() == hash_token_block(b.tokens(), salt));
    const std::uint64_t cur = i == 0 ? b.block_hash() : chain_sequence_hash(parent, b.block_hash());
    RC_ASSERT(b.sequence_hash().current_fragment() == cur);
    RC_ASSERT(b.sequence_hash().position() == i);
    if (i > 0) {
      RC_ASSERT(b.sequence_hash().parent_fragment() ==
                built.blocks()[i - 1].sequence_hash().fragment_for_child_position(
                    static_cast<std::uint32_t>(i)));
    }
    parent = cur;
  }
}

}  // namespace
}  // namespace kvbm
