"""Handle lifetime: Python object lifetime is the C++ handle's; close()/with release at once."""

from __future__ import annotations

import gc

import pytest

import kvbm
from conftest import BLOCK, fill


def test_collected_and_closed_blocks_return_to_the_pool(manager):
    blocks = manager.allocate_blocks(3)
    assert manager.available_blocks == 13
    blocks[0].close()
    blocks[0].close()  # idempotent
    assert manager.available_blocks == 14
    del blocks[1]
    assert manager.available_blocks == 15
    with manager.allocate_blocks(1)[0] as block:
        assert block.valid and manager.available_blocks == 14
    assert not block.valid and manager.available_blocks == 15
    del blocks
    assert manager.available_blocks == 16


def test_every_handle_is_a_context_manager_and_invalid_after(manager, seq):
    held = fill(manager, seq)
    weak = held[0].downgrade()
    pin = held[1].pin()
    staged = manager.allocate_blocks(1)[0].stage(seq.sequence_hashes()[0], BLOCK)
    for handle in (held[0], weak, pin, staged):
        with handle as same:
            assert same is handle
        assert not handle.valid
        assert "released" in repr(handle)
    for op in (lambda: held[0].block_id, lambda: held[0].use_count, lambda: held[0].pin(),
               lambda: weak.upgrade(), lambda: pin.block_id, lambda: staged.reset(),
               lambda: held[0].add_fence(kvbm.Fence())):
        with pytest.raises(kvbm.InvalidHandle):
            op()


def test_transitions_consume_the_source_handle(manager, seq):
    block = manager.allocate_blocks(1)[0]
    staged = block.complete(seq.blocks()[0])
    assert not block.valid and staged.sequence_hash == seq.sequence_hashes()[0]
    back = staged.reset()
    assert not staged.valid and back.valid and back.block_id == staged_id(back)
    with pytest.raises(kvbm.InvalidHandle):
        block.complete(seq.blocks()[0])


def staged_id(block):
    return block.block_id


def test_failed_complete_leaves_the_block_with_the_caller(manager):
    block = manager.allocate_blocks(1)[0]
    wrong = kvbm.TokenBlockSequence(list(range(8)), 8).blocks()[0]
    with pytest.raises(kvbm.BlockSizeMismatch):
        block.complete(wrong)
    assert block.valid and manager.available_blocks == 15
    block.close()
    assert manager.available_blocks == 16


def test_failed_batch_calls_consume_nothing(manager, registry, seq):
    other = kvbm.BlockManager("G1", 4, block_size=BLOCK, registry=registry)
    g2 = kvbm.BlockManager("G2", 4, block_size=BLOCK, registry=registry)
    mine = [b.complete(t) for b, t in zip(manager.allocate_blocks(2), seq.blocks())]
    theirs = other.allocate_blocks(1)[0].complete(seq.blocks()[2])
    tier = g2.allocate_blocks(1)[0].complete(seq.blocks()[3])
    for bad in ([*mine, theirs], [*mine, tier], [mine[0], mine[1], mine[0]]):
        with pytest.raises((kvbm.ForeignBlock, kvbm.InvalidHandle)):
            manager.register_blocks(bad)
        assert all(b.valid for b in [*mine, theirs, tier])
    with pytest.raises(TypeError):
        manager.register_blocks([mine[0], "not a block"])
    assert all(b.valid for b in mine)
    registered = manager.register_blocks(mine)
    with pytest.raises(kvbm.ForeignBlock):
        other.release_blocks(registered)
    assert all(b.valid for b in registered)
    closed = registered[0].clone()
    closed.close()
    with pytest.raises(kvbm.InvalidHandle):
        manager.release_blocks([registered[1], closed])
    assert all(b.valid for b in registered)
    manager.release_blocks(registered)


def test_immutable_copies_pins_and_weak_references(manager, seq):
    held = fill(manager, seq)
    first = held[0]
    assert first.use_count == 1
    twin = first.clone()
    pin = first.pin()
    assert first.use_count == 3 and pin.use_count == 3
    assert (pin.block_id, pin.sequence_hash, pin.manager_id) == (
        first.block_id, first.sequence_hash, manager.id)
    weak = first.downgrade()
    twin.close()
    first.close()
    assert manager.metrics()["inactive_pool_size"] == 0  # the pin keeps it registered
    pin.close()
    assert manager.metrics()["inactive_pool_size"] == 1
    revived = weak.upgrade()
    assert revived is not None and revived.sequence_hash == seq.sequence_hashes()[0]
    revived.close()
    manager.reset_inactive_pool()
    assert weak.upgrade() is None
    assert weak.sequence_hash == seq.sequence_hashes()[0]


def test_evict_on_reset_frees_the_slot(manager, seq):
    held = fill(manager, seq)
    held[3].set_evict_on_reset(True)
    del held
    assert manager.metrics()["inactive_pool_size"] == 3


def test_handles_keep_the_pool_alive_after_the_manager(registry, seq):
    m = kvbm.BlockManager("G1", 4, block_size=BLOCK, registry=registry)
    held = fill(m, seq)
    del m
    gc.collect()
    assert [b.block_id for b in held] == [0, 1, 2, 3]
    assert held[0].use_count == 1
    del held


def test_invariant_holds_after_deleting_everything(registry, seq):
    m = kvbm.BlockManager("G1", 16, block_size=BLOCK, registry=registry)
    held = fill(m, seq)
    weak = [b.downgrade() for b in held]
    pins = [b.pin() for b in held]
    mutable = m.allocate_blocks(3)
    staged = [m.allocate_blocks(1)[0].stage(seq.sequence_hashes()[0], BLOCK)]
    cycle = {"blocks": held, "self": None}
    cycle["self"] = cycle  # collected by the cycle collector, not by refcount
    del held, weak, pins, mutable, staged, cycle
    gc.collect()
    m.check_invariants()
    metrics = m.metrics()
    assert m.available_blocks == 16
    assert metrics["reset_pool_size"] + metrics["inactive_pool_size"] == 16
    assert metrics["inflight_mutable"] == 0 and metrics["inflight_immutable"] == 0
