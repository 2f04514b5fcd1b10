"""SequenceHash, TokenBlock, TokenBlockSequence."""

from __future__ import annotations

import pytest

import kvbm
from conftest import BLOCK, tokens


def test_sequence_splits_full_blocks_and_keeps_the_tail(seq):
    assert seq.total_tokens == len(seq) == 4 * BLOCK + 2
    assert seq.block_size == BLOCK and seq.salt == 0
    blocks = seq.blocks()
    assert [b.position for b in blocks] == [0, 1, 2, 3]
    assert [b.tokens for b in blocks] == [tokens(BLOCK, i * BLOCK) for i in range(4)]
    assert all(b.block_size == BLOCK for b in blocks)
    assert [b.sequence_hash for b in blocks] == seq.sequence_hashes()
    assert seq.tokens() == tokens(4 * BLOCK + 2)


def test_hashes_chain_on_the_prefix():
    a = kvbm.TokenBlockSequence(tokens(3 * BLOCK), BLOCK)
    b = kvbm.TokenBlockSequence(tokens(2 * BLOCK) + [999] * BLOCK, BLOCK)
    assert a.sequence_hashes()[:2] == b.sequence_hashes()[:2]
    assert a.sequence_hashes()[2] != b.sequence_hashes()[2]
    # Same tokens at another position hash differently (lineage), as does another salt.
    shifted = kvbm.TokenBlockSequence([999] * BLOCK + tokens(BLOCK), BLOCK)
    assert shifted.blocks()[1].block_hash == a.blocks()[0].block_hash
    assert shifted.sequence_hashes()[1] != a.sequence_hashes()[0]
    salted = kvbm.TokenBlockSequence(tokens(BLOCK), BLOCK, salt=5)
    assert salted.sequence_hashes()[0] != a.sequence_hashes()[0]


def test_append_and_extend_match_construction():
    whole = kvbm.TokenBlockSequence(tokens(3 * BLOCK + 1), BLOCK)
    built = kvbm.TokenBlockSequence([], BLOCK)
    completed = [built.append(t) for t in tokens(BLOCK)]
    assert completed == [False] * (BLOCK - 1) + [True]
    built.extend(tokens(2 * BLOCK + 1, BLOCK))
    assert built.sequence_hashes() == whole.sequence_hashes()


def test_zero_block_size_is_a_config_error():
    with pytest.raises(kvbm.ConfigError, match="block_size"):
        kvbm.TokenBlockSequence(tokens(4), 0)


def test_sequence_hash_value_semantics(seq):
    h0, h1 = seq.sequence_hashes()[:2]
    assert h0.position == 0 and h1.position == 1
    assert h0.parent_fragment == 0 and h1.parent_fragment != 0
    assert h1 == kvbm.SequenceHash.from_int(h1.as_int())
    assert 0 < h1.as_int() < 2**128
    assert {h0: "a", h1: "b"}[kvbm.SequenceHash.from_int(h0.as_int())] == "a"
    assert sorted([h1, h0], key=lambda h: h.as_int()) == sorted([h1, h0])
    assert (h0 < h1) == (h0.as_int() < h1.as_int())
    assert "position=1" in repr(h1)


def test_from_parts_round_trips_and_checks_position(seq):
    h1 = seq.sequence_hashes()[1]
    h0 = seq.sequence_hashes()[0]
    again = kvbm.SequenceHash.from_parts(h1.current_fragment, h0.current_fragment, 1)
    assert again == h1
    assert kvbm.SequenceHash.from_parts(h0.current_fragment, None, 0) == h0
    with pytest.raises(kvbm.PositionOutOfRange):
        kvbm.SequenceHash.from_parts(1, 2, 1 << 24)
    with pytest.raises(ValueError):
        kvbm.SequenceHash.from_int(-1)
    with pytest.raises(ValueError):
        kvbm.SequenceHash.from_int(2**128)


def test_comparisons_with_other_types_do_not_raise(seq):
    h = seq.sequence_hashes()[0]
    assert h != 5 and not (h == None)  # noqa: E711
    assert h in [None, "x", h]
    import pytest as _pytest

    with _pytest.raises(TypeError):
        h < 5
