"""HashKeys, RequestSequence and SchedulableSequence: the scheduler-facing API."""

from __future__ import annotations

import gc
import sys

import pytest

import kvbm
from conftest import BLOCK, tokens

SK = kvbm.ScheduleErrorKind
AK = kvbm.ApplyErrorKind


def sched(prompt_len: int, max_out: int, **kw) -> kvbm.SchedulableSequence:
    return kvbm.SchedulableSequence(tokens(prompt_len), max_out, BLOCK, **kw)


def prefill(s: kvbm.SchedulableSequence, manager, token: int = 1000) -> None:
    s.schedule_prefill(s.prefill_target - s.prefill_position, manager)
    s.apply_prefill(token, manager)


def all_back(manager) -> None:
    gc.collect()
    manager.check_invariants()
    assert manager.available_blocks == manager.total_blocks


def snapshot(s: kvbm.SchedulableSequence):
    return (s.state, s.total_tokens, s.kv_position, s.prefill_position, s.num_held,
            s.page_indices(), s.generated_tokens)


# ---- prefill and decode -------------------------------------------------------------------


def test_prefill_then_decode_registers_each_block_when_its_kv_is_computed(manager):
    s = sched(10, 6)
    assert s.tier == "G1" and s.block_size == BLOCK
    assert s.state == kvbm.SequenceState() or s.state.kind == kvbm.SequenceStateKind.Idle
    assert s.sequence_hashes() == kvbm.TokenBlockSequence(tokens(10), BLOCK).sequence_hashes()

    s.schedule_prefill(10, manager)
    assert s.state.kind == kvbm.SequenceStateKind.PrefillScheduled
    assert (s.state.num_tokens, s.state.blocks_allocated) == (10, 3)
    assert manager.available_blocks == 16 - 3
    s.apply_prefill(100, manager)
    # 10 tokens: two full blocks registered, the partial third is not.
    assert (s.assigned_blocks, s.unassigned_blocks) == (2, 1)
    assert (s.kv_position, s.total_tokens, s.tail_tokens) == (10, 11, 1)
    assert len(manager.match_blocks(s.sequence_hashes())) == 2

    outcomes = []
    for t in range(101, 106):
        s.schedule_decode(manager)
        assert s.state.kind == kvbm.SequenceStateKind.DecodeScheduled
        outcomes.append(s.apply_decode(t, manager))
    D = kvbm.DecodeOutcome
    # kv 11 (no block), 12 (block 3 complete), 13, 14, 15 with the 6th output token: max length.
    assert outcomes == [D.Continue, D.BlockCompleted, D.Continue, D.Continue, D.MaxLength]
    assert s.is_complete and s.generated_tokens == 6 and s.remaining_tokens == 0
    assert s.tokens() == tokens(10) + list(range(100, 106))
    assert (s.assigned_blocks, s.num_held) == (3, 4)
    assert len(s.page_indices()) == 4 and len(set(s.page_indices())) == 4
    with pytest.raises(kvbm.ScheduleError) as info:
        s.schedule_decode(manager)
    assert info.value.kind == SK.GenerationComplete

    # Another request with the same prompt adopts the cached prefix, never the last token.
    other = sched(12, 4)
    assert other.match_and_add_prefix(manager) == 2
    assert other.page_indices() == s.page_indices()[:2]
    assert (other.prefix_matched_blocks, other.prefill_position, other.kv_position) == (2, 8, 8)
    assert other.new_tokens_for_prefill == 4
    other.close()
    s.close()
    all_back(manager)


def test_chunked_prefill_token_only_on_the_final_chunk(manager):
    s = sched(10, 2)
    s.schedule_prefill(4, manager)
    with pytest.raises(kvbm.ApplyError) as info:
        s.apply_prefill(7, manager)
    assert info.value.kind == AK.TokenOnNonFinalChunk
    s.apply_prefill(None, manager)
    assert (s.prefill_position, s.assigned_blocks) == (4, 1)
    s.schedule_prefill(6, manager)
    before = snapshot(s)
    with pytest.raises(kvbm.ApplyError) as info:
        s.apply_prefill(None, manager)
    assert info.value.kind == AK.MissingTokenOnFinalChunk
    assert snapshot(s) == before
    s.apply_prefill(7, manager)
    assert s.is_prefill_complete and s.tokens()[-1] == 7
    del s
    all_back(manager)


def test_speculative_registers_accepted_and_gives_back_unused_blocks(manager):
    s = sched(8, 10)
    prefill(s, manager)
    assert (s.assigned_blocks, s.num_held, s.total_tokens) == (2, 2, 9)
    s.schedule_speculative(4, manager)  # KV for 1 + 4 tokens from position 8: blocks 3 and 4
    assert (s.state.num_tokens, s.state.blocks_allocated) == (4, 2)
    assert manager.available_blocks == 16 - 4
    with pytest.raises(kvbm.ApplyError) as info:
        s.apply_speculative([1, 2, 3, 4, 5], manager)
    assert info.value.kind == AK.AcceptedExceedsScheduled
    assert s.state.kind == kvbm.SequenceStateKind.SpeculativeScheduled
    assert s.apply_speculative([1, 2], manager) == kvbm.DecodeOutcome.Continue
    # 11 tokens held: 3 blocks kept, the 4th went back.
    assert (s.total_tokens, s.kv_position, s.num_held) == (11, 10, 3)
    assert manager.available_blocks == 16 - 3

    s.schedule_speculative(100, manager)  # clamped to the 7 tokens of output left
    assert s.state.num_tokens == 7
    s.revert_schedule()
    assert s.state.kind == kvbm.SequenceStateKind.Idle and s.num_held == 3
    assert manager.available_blocks == 16 - 3
    s.schedule_speculative(3, manager)
    assert s.apply_speculative([5, 6, 7], manager) == kvbm.DecodeOutcome.BlockCompleted
    assert s.assigned_blocks == 3
    s.close()
    all_back(manager)


# ---- errors -------------------------------------------------------------------------------


def test_errors_map_with_their_kind_and_change_nothing(manager):
    s = sched(6, 3)
    checks = [
        (lambda: s.apply_decode(1, manager), kvbm.ApplyError, AK.WrongState),
        (lambda: s.revert_schedule(), kvbm.ApplyError, AK.WrongState),
        (lambda: s.schedule_decode(manager), kvbm.ScheduleError, SK.PrefillNotComplete),
        (lambda: s.schedule_prefill(7, manager), kvbm.ScheduleError, SK.PrefillOverrun),
        (lambda: s.append_tokens([1, 2, 3, 4]), kvbm.ApplyError, AK.AppendExceedsRemaining),
    ]
    for call, cls, kind in checks:
        before = snapshot(s)
        with pytest.raises(cls) as info:
            call()
        assert isinstance(info.value, kvbm.KvbmError)
        assert info.value.kind == kind
        assert snapshot(s) == before
        assert manager.available_blocks == 16

    s.schedule_prefill(6, manager)
    before = snapshot(s)
    with pytest.raises(kvbm.ScheduleError) as info:
        s.schedule_prefill(1, manager)
    assert info.value.kind == SK.NotIdle
    with pytest.raises(kvbm.ApplyError) as info:
        s.release()
    assert info.value.kind == AK.WrongState
    assert snapshot(s) == before and manager.available_blocks == 16 - 2
    s.apply_prefill(9, manager)
    with pytest.raises(kvbm.ScheduleError) as info:
        s.schedule_prefill(1, manager)
    assert info.value.kind == SK.PrefillComplete
    s.append_tokens([10])
    with pytest.raises(kvbm.ScheduleError) as info:
        s.schedule_decode(manager)
    assert info.value.kind == SK.WrongDanglingCount
    s.close()
    all_back(manager)


def test_allocation_failure_reports_needed_and_takes_nothing(registry):
    small = kvbm.BlockManager("G1", 2, block_size=BLOCK, registry=registry)
    s = sched(12, 2)
    with pytest.raises(kvbm.ScheduleError) as info:
        s.schedule_prefill(12, small)
    assert (info.value.kind, info.value.needed) == (SK.AllocationFailed, 3)
    assert s.state.kind == kvbm.SequenceStateKind.Idle and s.num_held == 0
    assert small.available_blocks == 2
    s.schedule_prefill(8, small)  # a smaller chunk fits
    assert s.num_held == 2
    del s
    all_back(small)


def test_wrong_manager_raises_before_anything_runs(manager, registry):
    s = sched(6, 2)
    g2 = kvbm.BlockManager("G2", 8, block_size=BLOCK, registry=registry)
    with pytest.raises(kvbm.ForeignBlock, match="tier G1, the manager is G2"):
        s.schedule_prefill(6, g2)
    wide = kvbm.BlockManager("G1", 8, block_size=2 * BLOCK)
    with pytest.raises(kvbm.BlockSizeMismatch):
        s.schedule_prefill(6, wide)
    s.schedule_prefill(6, manager)
    other = kvbm.BlockManager("G1", 8, block_size=BLOCK, registry=registry)
    with pytest.raises(kvbm.ForeignBlock):
        s.apply_prefill(1, other)
    assert s.state.kind == kvbm.SequenceStateKind.PrefillScheduled
    assert other.available_blocks == 8 and g2.available_blocks == 8
    s.close()
    with pytest.raises(kvbm.InvalidHandle):
        s.total_tokens
    s.close()  # idempotent
    assert not s.valid and s.tier == "released"
    g3 = kvbm.BlockManager("G3", 8, block_size=BLOCK)
    s3 = sched(6, 2, tier="G3")
    s3.schedule_prefill(6, g3)
    assert g3.available_blocks == 6
    s3.close()
    all_back(g3)
    all_back(manager)


def test_bad_settings_raise_config_error():
    with pytest.raises(kvbm.ConfigError):
        kvbm.SchedulableSequence([], 4, BLOCK)
    with pytest.raises(kvbm.ConfigError):
        kvbm.SchedulableSequence(tokens(4), 4, 3)
    with pytest.raises(kvbm.ConfigError):
        kvbm.SchedulableSequence(tokens(4), 4, BLOCK, tier="G4")
    with pytest.raises(kvbm.ConfigError):
        kvbm.RequestSequence(tokens(4), 4, 0)
    with pytest.raises(kvbm.ConfigError):
        kvbm.RequestSequence(tokens(4), 4, BLOCK,
                             hash_keys=kvbm.HashKeys(multimodal_items=[kvbm.MultimodalItem(1, 3, 4)]))
    with pytest.raises(TypeError):
        kvbm.SchedulableSequence(tokens(4), 4, BLOCK, delegate=3)


# ---- preemption ---------------------------------------------------------------------------


def test_release_and_reacquire_recompute_after_preemption(manager):
    s = sched(10, 8)
    prefill(s, manager, 50)
    for t in (51, 52):
        s.schedule_decode(manager)
        s.apply_decode(t, manager)
    held = s.page_indices()
    assert s.total_tokens == 13 and s.assigned_blocks == 3
    s.release()
    assert s.num_held == 0 and s.kv_position == 0 and s.prefill_position == 0
    assert s.prefill_target == 13
    assert manager.available_blocks == 16
    assert s.reacquire(manager)
    # Three blocks still cached ((13 - 1) // 4 = 3 may match); one fresh block for the rest.
    assert (s.prefix_matched_blocks, s.num_held) == (3, 4)
    assert s.page_indices()[:3] == held[:3]
    assert s.prefill_position == 12
    prefill(s, manager, 53)
    assert s.is_prefill_complete and s.total_tokens == 14
    s.schedule_decode(manager)
    s.apply_decode(54, manager)
    s.close()
    all_back(manager)


def test_failed_reacquire_holds_nothing(registry):
    pool = kvbm.BlockManager("G1", 3, block_size=BLOCK, registry=registry)
    s = sched(10, 4)
    prefill(s, pool)
    s.release()
    hog = pool.allocate_blocks(2)
    assert hog is not None and pool.available_blocks == 1
    assert not s.reacquire(pool)
    assert s.num_held == 0 and s.prefill_position == 0 and pool.available_blocks == 1
    for b in hog:
        b.close()
    assert s.reacquire(pool)
    s.close()
    all_back(pool)


def test_drop_unassigned_never_drops_computed_kv(manager):
    s = sched(6, 4)
    s.schedule_prefill(6, manager)
    s.apply_prefill(1, manager)
    assert s.num_held == 2
    assert s.drop_unassigned(5) == 0  # block 2 holds the KV of tokens 4 and 5
    s.close()
    all_back(manager)


# ---- RequestSequence ----------------------------------------------------------------------


def test_request_sequence_direct_flow(manager):
    r = kvbm.RequestSequence(tokens(10), 4, BLOCK)
    assert r.num_blocks == 2 and r.total_tokens == 10
    assert r.allocate_blocks(3, manager)
    assert manager.available_blocks == 13
    assert r.complete_and_register_pending(manager, max_blocks=1) == 1
    assert r.complete_and_register_pending(manager) == 1
    assert (r.assigned_blocks, r.staged_blocks, r.unassigned_blocks) == (2, 0, 1)
    assert r.append_token(10) is None
    assert r.append_token(11) == 2
    assert r.stage_pending() == 1 and r.staged_blocks == 1
    assert r.register_staged(manager) == 1
    assert len(manager.match_blocks(r.sequence_hashes())) == 3
    assert r.full_blocks(13) == 3 and r.blocks_for(13) == 4
    assert not r.allocate_blocks(14, manager)  # all or nothing
    assert r.num_held == 3 and manager.available_blocks == 13
    with pytest.raises(kvbm.ApplyError) as info:
        r.reacquire(manager)
    assert info.value.kind == AK.WrongState
    r.release()
    r.release()  # idempotent
    assert r.num_held == 0 and manager.available_blocks == 16
    assert r.reacquire(manager)
    assert (r.prefix_matched_blocks, r.unassigned_blocks) == (2, 1)
    assert r.drop_last_unassigned(5) == 1
    r.append_token(12)
    r.append_token(13)
    with pytest.raises(kvbm.ApplyError) as info:
        r.append_token(14)
    assert info.value.kind == AK.AppendExceedsRemaining
    with r:
        assert r.valid
    assert not r.valid
    all_back(manager)


def test_collecting_a_sequence_returns_its_blocks(manager):
    s = sched(10, 4)
    prefill(s, manager)
    r = kvbm.RequestSequence(tokens(9, 500), 2, BLOCK)
    r.allocate_blocks(3, manager)
    assert manager.available_blocks == 16 - 6
    del s, r
    all_back(manager)


# ---- delegate and keys --------------------------------------------------------------------


def test_delegate_sees_every_transition(manager):
    events: list[kvbm.SequenceEvent] = []
    s = sched(8, 2, delegate=events.append)
    s.match_and_add_prefix(manager)
    prefill(s, manager, 7)
    s.schedule_decode(manager)
    s.apply_decode(8, manager)
    s.release()
    K = kvbm.SequenceEventKind
    assert [e.kind for e in events] == [K.Created, K.PrefixMatched, K.PrefillScheduled,
                                        K.PrefillApplied, K.DecodeScheduled, K.DecodeApplied,
                                        K.Released]
    assert events[0].num_tokens == 8
    assert events[2].blocks_allocated == 2 and events[3].blocks_registered == 2
    assert events[3].token == 7 and events[5].token == 8 and events[2].token is None
    assert events[4].blocks_allocated == 1 and events[6].blocks_released == 3
    assert events[2].evicted == []
    s.close()
    all_back(manager)


def test_delegate_errors_and_reentry_are_reported_not_raised(manager, monkeypatch):
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(u.exc_type))
    holder = {}

    def delegate(event):
        if event.kind == kvbm.SequenceEventKind.PrefillScheduled:
            holder["s"].total_tokens  # calling back into the sequence: refused
        if event.kind == kvbm.SequenceEventKind.PrefillApplied:
            raise KeyError("boom")

    s = holder["s"] = sched(8, 2, delegate=delegate)
    prefill(s, manager)
    assert reported == [RuntimeError, KeyError]
    assert s.is_prefill_complete and s.assigned_blocks == 2  # the transitions took effect
    holder.clear()
    s.close()
    all_back(manager)


def test_hash_keys_separate_tenants(manager):
    empty = kvbm.HashKeys()
    assert empty.empty and empty.seed == 0
    salted = kvbm.HashKeys(cache_salt="tenant-a")
    assert not salted.empty and salted.seed != 0
    assert kvbm.HashKeys().set_cache_salt("tenant-a") == salted
    assert salted != empty and salted != "tenant-a"
    plain = kvbm.keyed_sequence_hashes(tokens(8), BLOCK, empty)
    assert plain == kvbm.TokenBlockSequence(tokens(8), BLOCK).sequence_hashes()
    keyed = kvbm.keyed_sequence_hashes(tokens(8), BLOCK, salted)
    assert all(a != b for a, b in zip(plain, keyed))

    a = sched(9, 2, hash_keys=salted)
    assert a.hash_keys == salted and a.sequence_hashes() == keyed
    prefill(a, manager)
    b = sched(9, 2)
    assert b.match_and_add_prefix(manager) == 0  # another tenant's blocks never match
    c = sched(9, 2, hash_keys=kvbm.HashKeys(cache_salt="tenant-a"))
    assert c.match_and_add_prefix(manager) == 2

    image = kvbm.HashKeys(multimodal_items=[kvbm.MultimodalItem(0xABC, 2, 3)])
    assert image.multimodal_items == [kvbm.MultimodalItem(0xABC, 2, 3)]
    assert image.block_extra_keys(0, BLOCK) == [0xABC] and image.block_extra_keys(2, BLOCK) == []
    assert image.block_hash(tokens(4), 0) != empty.block_hash(tokens(4), 0)
    image.validate(5)
    with pytest.raises(kvbm.ConfigError):
        image.validate(4)
    with pytest.raises(kvbm.ConfigError):
        kvbm.HashKeys().add_multimodal_item(kvbm.MultimodalItem(1, 0, 0))
    for s in (a, b, c):
        s.close()
    all_back(manager)


def test_invariants_hold_over_many_interleaved_sequences(manager):
    seqs = [sched(5 + i, 3) for i in range(4)]
    for s in seqs:
        s.match_and_add_prefix(manager)
        prefill(s, manager)
    for _ in range(3):
        for s in seqs:
            if s.is_complete:
                continue
            s.schedule_decode(manager)
            s.apply_decode(1, manager)
        manager.check_invariants()
    seqs[0].release()
    assert seqs[0].reacquire(manager)
    manager.check_invariants()
    for s in seqs:
        s.close()
    all_back(manager)


def test_sequences_on_threads_share_one_manager(registry):
    import threading

    pool = kvbm.BlockManager("G1", 64, block_size=BLOCK, registry=registry)
    errors = []

    def drive(seed: int) -> None:
        try:
            for round_ in range(20):
                with sched(6 + seed, 6) as s:
                    s.match_and_add_prefix(pool)
                    prefill(s, pool)
                    while not s.is_complete:
                        s.schedule_decode(pool)
                        s.apply_decode(round_, pool)
                    if round_ % 3 == 0:
                        s.release()
                        assert s.reacquire(pool)
        except BaseException as e:  # reported to the main thread
            errors.append(e)

    threads = [threading.Thread(target=drive, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    all_back(pool)
