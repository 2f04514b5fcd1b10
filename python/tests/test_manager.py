"""BlockManager and BlockRegistry: construction, batch calls, metrics."""

from __future__ import annotations

import gc
import re

import pytest

import kvbm
from conftest import BLOCK, REPO, fill, tokens


@pytest.mark.parametrize("kwargs,problem", [
    (dict(tier="G4", block_count=4), "tier"),
    (dict(tier="G1", block_count=0), "block_count"),
    (dict(tier="G1", block_count=-3), "block_count"),
    (dict(tier="G1", block_count=4, block_size=3), "block_size"),
    (dict(tier="G1", block_count=4, block_size=0), "block_size"),
    (dict(tier="G1", block_count=4, backend="mru"), "backend"),
    (dict(tier="G1", block_count=4, duplication="maybe"), "duplication"),
    (dict(tier="G1", block_count=4, backend="multi-lru"), "frequency"),
])
def test_bad_arguments_raise_value_error_naming_the_problem(kwargs, problem):
    with pytest.raises(ValueError, match=re.compile(problem, re.I)):
        kvbm.BlockManager(**kwargs)


def test_bad_frequency_tracker_is_a_value_error():
    with pytest.raises(ValueError, match="frequency_tracker"):
        kvbm.BlockRegistry("huge")


@pytest.mark.parametrize("tier", ["G1", "G2", "G3"])
@pytest.mark.parametrize("backend", ["lineage", "lru", "fifo", "multi-lru"])
def test_every_tier_and_backend_round_trips(tier, backend, seq):
    registry = kvbm.BlockRegistry("small")
    m = kvbm.BlockManager(tier, 8, block_size=BLOCK, registry=registry, backend=backend)
    assert (m.tier, m.total_blocks, m.block_size, m.available_blocks) == (tier, 8, BLOCK, 8)
    assert m.registry == registry and m.id > 0
    held = fill(m, seq)
    assert [b.sequence_hash for b in held] == seq.sequence_hashes()
    assert registry.check_presence(seq.sequence_hashes(), tier) == [True] * 4
    del held
    assert m.available_blocks == 8  # cached, still matchable
    assert len(m.match_blocks(seq.sequence_hashes())) == 4
    m.check_invariants()


def test_allocate_is_all_or_nothing(manager):
    assert manager.allocate_blocks(0) == []
    assert manager.allocate_blocks(17) is None
    assert manager.available_blocks == 16
    blocks = manager.allocate_blocks(16)
    assert sorted(b.block_id for b in blocks) == list(range(16))
    assert manager.allocate_blocks(1) is None
    del blocks
    assert manager.available_blocks == 16


def test_match_stops_at_the_first_miss_and_scan_does_not(manager, seq):
    held = fill(manager, seq)
    hashes = seq.sequence_hashes()
    other = kvbm.TokenBlockSequence([7] * BLOCK, BLOCK).sequence_hashes()[0]
    assert [b.block_id for b in manager.match_blocks(hashes)] == [b.block_id for b in held]
    assert len(manager.match_blocks([hashes[0], other, hashes[2]])) == 1
    found = manager.scan_matches([other, hashes[2], hashes[0], hashes[2]])
    assert set(found) == {hashes[0], hashes[2]}
    assert found[hashes[2]].block_id == held[2].block_id
    assert manager.scan_matches([], touch=False) == {}
    with pytest.raises(TypeError, match="item 1"):
        manager.match_blocks([hashes[0], 42])


def test_register_reject_returns_the_primary(registry, seq):
    m = kvbm.BlockManager("G2", 8, block_size=BLOCK, registry=registry, duplication="reject")
    first = fill(m, seq)
    again = fill(m, seq)
    assert [b.block_id for b in again] == [b.block_id for b in first]
    assert m.metrics()["registration_dedup"] == 4
    allow = kvbm.BlockManager("G1", 8, block_size=BLOCK, registry=registry)
    a, b = fill(allow, seq), fill(allow, seq)
    assert {x.block_id for x in a}.isdisjoint(x.block_id for x in b)
    assert allow.metrics()["duplicate_blocks"] == 4


def test_release_blocks_caches_them_under_one_call(manager, seq):
    held = fill(manager, seq)
    manager.release_blocks(list(reversed(held)))
    assert all(not b.valid for b in held)
    assert manager.metrics()["inactive_pool_size"] == 4
    assert manager.reset_inactive_pool() == 4
    assert manager.match_blocks(seq.sequence_hashes()) == []


def test_reset_on_release_frees_instead_of_caching(registry, seq):
    m = kvbm.BlockManager("G1", 8, block_size=BLOCK, registry=registry, reset_on_release=True)
    del_me = fill(m, seq)
    del del_me
    assert m.metrics()["inactive_pool_size"] == 0
    assert m.match_blocks(seq.sequence_hashes()) == []


def test_metrics_has_every_cpp_field(manager, seq):
    header = (REPO / "include/kvbm/metrics.hpp").read_text()
    names = re.findall(r"^\s*(?:COUNTER|GAUGE)\((\w+),", header, re.M)
    assert len(names) > 10
    metrics = manager.metrics()
    assert sorted(metrics) == sorted(names)
    held = fill(manager, seq)
    metrics = manager.metrics()
    assert metrics["allocations"] == 4 and metrics["registrations"] == 4
    assert metrics["inflight_immutable"] == 4
    manager.match_blocks(seq.sequence_hashes())
    assert manager.metrics()["match_blocks_returned"] == 4
    del held


def test_registry_is_shared_across_tiers(registry, seq):
    g1 = kvbm.BlockManager("G1", 8, block_size=BLOCK, registry=registry)
    g2 = kvbm.BlockManager("G2", 8, block_size=BLOCK, registry=registry)
    held = fill(g2, seq)
    h = seq.sequence_hashes()
    assert registry.check_presence(h, "G2") == [True] * 4
    assert registry.check_presence(h, "G1") == [False] * 4
    assert registry.is_registered(h[0]) and registry.registered_count == 4
    assert not registry.has_frequency_tracking and registry.count(h[0]) == 0
    with pytest.raises(ValueError, match="tier"):
        registry.check_presence(h, "G9")
    tracked = kvbm.BlockRegistry("medium")
    assert tracked.has_frequency_tracking
    m = kvbm.BlockManager("G1", 8, block_size=BLOCK, registry=tracked)
    fill(m, seq)
    tracked.touch(h[0])
    assert tracked.count(h[0]) >= 1
    del held
    gc.collect()
    assert g1.available_blocks == 8


def test_block_batch_keeps_the_match_in_cpp(manager, registry, seq):
    held = fill(manager, seq)
    hashes = seq.sequence_hashes()
    batch = manager.match_blocks_batch(hashes[:3])
    assert len(batch) == 3 and "3 blocks" in repr(batch)
    assert batch.block_ids() == [b.block_id for b in held[:3]]
    assert batch.sequence_hashes() == hashes[:3]
    assert held[0].use_count == 2
    one = batch[-3]
    assert one.block_id == held[0].block_id and held[0].use_count == 3
    with __import__("pytest").raises(IndexError):
        batch[3]
    one.close()
    other = kvbm.BlockManager("G1", 4, block_size=BLOCK, registry=registry)
    with __import__("pytest").raises(kvbm.ForeignBlock):
        other.release_blocks(batch)
    assert len(batch) == 3  # nothing was released
    manager.release_blocks(batch)
    assert not batch.valid and len(batch) == 0 and held[0].use_count == 1
    with __import__("pytest").raises(kvbm.InvalidHandle):
        manager.release_blocks(batch)
    with manager.match_blocks_batch(hashes) as whole:
        assert len(whole) == 4 and held[3].use_count == 2
    assert held[3].use_count == 1
