"""The batch calls' fast paths: inputs read in place, handle objects made and recycled in C++."""

from __future__ import annotations

import gc

import pytest

import kvbm
from conftest import BLOCK, fill


def snapshot(manager, blocks):
    return manager.available_blocks, [b.use_count for b in blocks]


def test_match_with_a_bad_item_raises_type_error_and_takes_nothing(manager, seq):
    held = fill(manager, seq)
    hashes = seq.sequence_hashes()
    before = snapshot(manager, held)
    for bad in ([hashes[0], hashes[1], 7], [hashes[0], None], (hashes[0], "x"), [1.5]):
        with pytest.raises(TypeError, match=r"item \d+ is a .*expected SequenceHash"):
            manager.match_blocks(bad)
        with pytest.raises(TypeError, match="expected SequenceHash"):
            manager.scan_matches(bad)
    with pytest.raises(TypeError, match="expected a sequence of SequenceHash"):
        manager.match_blocks(42)
    assert snapshot(manager, held) == before
    # Every kind of sequence is accepted: list, tuple, and any iterable through one copy.
    for form in (list, tuple, iter):
        assert [b.block_id for b in manager.match_blocks(form(hashes))] == [0, 1, 2, 3]
    assert snapshot(manager, held) == before


def test_scan_keys_are_the_callers_objects(manager, seq):
    fill(manager, seq)
    hashes = seq.sequence_hashes()
    for form in (list, tuple):
        found = manager.scan_matches(form(hashes))
        assert len(found) == 4
        assert all(any(k is h for h in hashes) for k in found)
    assert len(manager.scan_matches(iter(hashes))) == 4


def test_release_with_a_bad_item_puts_everything_back(manager, seq):
    held = fill(manager, seq)
    extra = manager.match_blocks(seq.sequence_hashes())  # a second reference to each block
    before = snapshot(manager, held)
    released = extra[3].clone()
    released.close()
    other = kvbm.BlockManager("G1", 4, block_size=BLOCK)
    foreign = fill(other, kvbm.TokenBlockSequence(list(range(2 * BLOCK)), BLOCK))
    g2 = kvbm.BlockManager("G2", 4, block_size=BLOCK)
    other_tier = fill(g2, kvbm.TokenBlockSequence(list(range(2 * BLOCK)), BLOCK))
    cases = [
        ([extra[0], extra[1], "not a block"], TypeError, "item 2 is a str"),
        ([extra[0], extra[1], held[0].downgrade()], TypeError, "expected ImmutableBlock"),
        ([extra[0], extra[1], released], kvbm.InvalidHandle, "already released"),
        ([extra[0], extra[1], extra[0]], kvbm.InvalidHandle, "listed twice"),
        ([extra[0], extra[1], foreign[0]], kvbm.ForeignBlock, "another manager"),
        ([extra[0], extra[1], other_tier[0]], kvbm.ForeignBlock, "another tier"),
    ]
    for bad, error, message in cases:
        with pytest.raises(error, match=message):
            manager.release_blocks(bad)
        assert all(b.valid for b in extra), message
        assert foreign[0].valid and other_tier[0].valid
        assert snapshot(manager, held) == before
    manager.release_blocks(iter(extra))  # an iterable, through PySequence_Fast
    assert not any(b.valid for b in extra)
    assert [b.use_count for b in held] == [1, 1, 1, 1]


def test_register_with_a_bad_item_puts_everything_back(manager, seq):
    staged = [b.complete(t) for b, t in zip(manager.allocate_blocks(3), seq.blocks())]
    for bad in ([*staged, 5], [staged[0], staged[1], staged[0]], [staged[0], manager]):
        with pytest.raises((TypeError, kvbm.InvalidHandle)):
            manager.register_blocks(bad)
        assert all(b.valid for b in staged)
        assert manager.available_blocks == 13
    registered = manager.register_blocks(tuple(staged))
    assert [b.sequence_hash for b in registered] == seq.sequence_hashes()[:3]
    assert not any(b.valid for b in staged)


def test_batch_results_are_ordinary_handle_objects(manager, seq):
    held = fill(manager, seq)
    block = held[0]
    assert type(block) is kvbm.ImmutableBlock and isinstance(block, kvbm.ImmutableBlock)
    with block as same:
        assert same is block and same.block_id == 0
    assert not block.valid
    mutable = manager.allocate_blocks(2)
    assert type(mutable[0]) is kvbm.MutableBlock
    staged = mutable[0].stage(seq.sequence_hashes()[0], BLOCK)
    assert type(staged) is kvbm.CompleteBlock
    assert type(held[1].downgrade()) is kvbm.WeakBlock
    with pytest.raises(TypeError):
        kvbm.ImmutableBlock()
    # An instance nanobind makes itself (no C++ handle inside) is freed by nanobind's own path.
    for cls in (kvbm.MutableBlock, kvbm.CompleteBlock, kvbm.ImmutableBlock, kvbm.WeakBlock):
        bare = cls.__new__(cls)
        del bare
    gc.collect()


def test_recycled_objects_start_fresh(manager, seq):
    hashes = seq.sequence_hashes()
    fill(manager, seq)  # four cached blocks
    for _ in range(200):
        blocks = manager.allocate_blocks(12)
        assert sorted(b.block_id for b in blocks) == list(range(4, 16))
        assert all(b.valid for b in blocks)
        matched = manager.match_blocks(hashes)
        assert [b.use_count for b in matched] == [1, 1, 1, 1]
        del blocks, matched
    assert manager.available_blocks == 16
    manager.check_invariants()
