"""KV event sinks: CallbackEventSink, BatchingEventSink, ZmqEventPublisher, wire hashes."""

from __future__ import annotations

import gc
import sys
import threading
import weakref

import pytest

import kvbm
from conftest import BLOCK, fill, tokens


RECORDERS: list[Recorder] = []


@pytest.fixture(autouse=True)
def no_violations():
    """A Recorder's checks run inside the callback, where an exception would only be reported
    to sys.unraisablehook: they are collected and asserted after the test."""
    RECORDERS.clear()
    yield
    assert [v for r in RECORDERS for v in r.violations] == []


class Recorder:
    """A callback that keeps every event, the thread it ran on, and the applied matchable set;
    checks that parents come first (check_parents) and removals name stored hashes."""

    def __init__(self, check_parents: bool = True) -> None:
        self.events: list[kvbm.KvEvent] = []
        self.calls = 0
        self.threads: set[int] = set()
        self.applied: set[int] = set()
        self.violations: list[str] = []
        self.check_parents = check_parents
        RECORDERS.append(self)

    def __call__(self, events: list[kvbm.KvEvent]) -> None:
        self.calls += 1
        self.threads.add(threading.get_ident())
        for e in events:
            self.events.append(e)
            if e.kind == "stored":
                if self.check_parents and e.parent_hash is not None and e.parent_hash not in self.applied:
                    self.violations.append(f"{e}: parent not stored first")
                self.applied.add(e.block_hash)
            elif e.kind == "removed":
                if e.block_hash not in self.applied:
                    self.violations.append(f"{e}: removal of a hash not stored")
                self.applied.discard(e.block_hash)
            elif e.kind == "cleared":
                self.applied.clear()
            else:
                self.violations.append(f"{e}: unknown kind")

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


def matchable(manager: kvbm.BlockManager, hashes) -> set[int]:
    """Wire hashes of every hash in `hashes` the manager can match now (touch=False: no change)."""
    found = manager.scan_matches(hashes, touch=False)
    out = {kvbm.wire_hash(h) for h in found}
    manager.release_blocks(list(found.values()))
    return out


def test_stored_removed_cleared_in_order_and_the_applied_set_is_the_matchable_set():
    rec = Recorder()
    m = kvbm.BlockManager("G1", 6, block_size=BLOCK, event_sink=kvbm.CallbackEventSink(rec))
    seq = kvbm.TokenBlockSequence(tokens(4 * BLOCK), BLOCK)
    hashes = seq.sequence_hashes()
    held = fill(m, seq)
    assert rec.kinds() == ["stored"] * 4
    stored = rec.events
    assert [e.block_hash for e in stored] == [kvbm.wire_hash(h) for h in hashes]
    assert [e.sequence_hash for e in stored] == hashes
    assert [e.position for e in stored] == [0, 1, 2, 3]
    assert [e.parent_hash for e in stored] == [None] + [e.block_hash for e in stored[:3]]
    assert all(e.manager_id == m.id and e.block_size == BLOCK and e.medium == "GPU" for e in stored)
    assert rec.applied == matchable(m, hashes)

    m.release_blocks(list(reversed(held)))  # cached: still matchable, nothing reported
    assert len(rec.events) == 4
    fresh = m.allocate_blocks(4)  # 2 free + 2 evicted from the cache
    assert fresh is not None
    assert rec.kinds() == ["stored"] * 4 + ["removed"] * 2
    assert rec.applied == matchable(m, hashes) and len(rec.applied) == 2
    for b in fresh:
        b.close()
    assert m.reset_inactive_pool() == 2
    assert rec.kinds() == ["stored"] * 4 + ["removed"] * 2 + ["cleared"]
    cleared = rec.events[-1]
    assert cleared.sequence_hash is None and cleared.block_hash == 0 and cleared.token_ids == []
    assert cleared.manager_id == m.id and "cleared" in repr(cleared)
    assert rec.applied == matchable(m, hashes) == set()
    m.check_invariants()


def test_tokens_present_only_when_completed_from_a_token_block_and_wanted():
    seq = kvbm.TokenBlockSequence(tokens(2 * BLOCK, 100), BLOCK)
    with_tokens, without = Recorder(), Recorder()
    m = kvbm.BlockManager("G2", 8, block_size=BLOCK, event_sink=kvbm.CallbackEventSink(with_tokens))
    n = kvbm.BlockManager("G2", 8, block_size=BLOCK,
                          event_sink=kvbm.CallbackEventSink(without, wants_tokens=False))
    assert not kvbm.CallbackEventSink(without, wants_tokens=False).wants_tokens
    fill(m, seq)
    fill(n, seq)
    assert [e.token_ids for e in with_tokens.events] == [b.tokens for b in seq.blocks()]
    assert [e.token_ids for e in without.events] == [[], []]
    assert with_tokens.events[0].medium == "CPU"
    # Staged by hash alone: no tokens to report.
    other = kvbm.TokenBlockSequence(tokens(BLOCK, 900), BLOCK)
    (b,) = m.allocate_blocks(1)
    m.register_blocks([b.stage(other.sequence_hashes()[0], BLOCK)])
    assert with_tokens.events[-1].kind == "stored" and with_tokens.events[-1].token_ids == []


def test_events_of_a_release_on_another_thread_are_delivered_on_that_thread():
    rec = Recorder()
    m = kvbm.BlockManager("G1", 8, block_size=BLOCK, event_sink=kvbm.CallbackEventSink(rec))
    seq = kvbm.TokenBlockSequence(tokens(3 * BLOCK), BLOCK)
    held = fill(m, seq)
    for b in held:
        b.set_evict_on_reset(True)  # the last release frees the slot: a Removed event
    ident = []

    def release():
        ident.append(threading.get_ident())
        m.release_blocks(list(reversed(held)))

    t = threading.Thread(target=release)
    t.start()
    t.join(timeout=60)
    assert not t.is_alive()
    assert rec.kinds() == ["stored"] * 3 + ["removed"] * 3
    assert ident[0] in rec.threads and rec.threads == {threading.get_ident(), ident[0]}
    assert rec.applied == set() == matchable(m, seq.sequence_hashes())


def test_a_callback_that_releases_blocks_during_a_release_releases_them_all():
    # The callback's own release runs on the same thread while the outer release is under way
    # (between its pool lock and its return): both must complete, each with its own handles.
    other = kvbm.BlockManager("G1", 8, block_size=BLOCK)
    others = fill(other, kvbm.TokenBlockSequence(tokens(4 * BLOCK, start=5000), BLOCK))
    inner_calls = []

    def callback(events):
        if others and any(e.kind == "removed" for e in events):
            batch = list(reversed(others))
            others.clear()
            other.release_blocks(batch)
            inner_calls.append(len(batch))

    m = kvbm.BlockManager("G1", 8, block_size=BLOCK, event_sink=kvbm.CallbackEventSink(callback))
    held = fill(m, kvbm.TokenBlockSequence(tokens(3 * BLOCK), BLOCK))
    for b in held:
        b.set_evict_on_reset(True)
    m.release_blocks(list(reversed(held)))
    assert inner_calls == [4]
    assert m.metrics()["inflight_immutable"] == 0
    assert other.metrics()["inflight_immutable"] == 0
    assert other.metrics()["inactive_pool_size"] == 4
    # The thread releases normally afterwards.
    again = fill(m, kvbm.TokenBlockSequence(tokens(2 * BLOCK, start=9000), BLOCK))
    m.release_blocks(again)
    assert m.metrics()["inflight_immutable"] == 0


def test_many_threads_share_one_sink_and_each_pool_stays_consistent():
    rec = Recorder()
    sink = kvbm.CallbackEventSink(rec)
    managers = [kvbm.BlockManager("G1", 8, block_size=BLOCK, event_sink=sink) for _ in range(4)]
    errors = []

    def churn(m, start):
        try:
            for i in range(50):
                seq = kvbm.TokenBlockSequence(tokens(2 * BLOCK, start + i), BLOCK)
                held = fill(m, seq)
                for b in held:
                    b.set_evict_on_reset(i % 2 == 0)
                m.release_blocks(list(reversed(held)))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=churn, args=(m, 1000 * k)) for k, m in enumerate(managers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in threads)
    # Per manager, the events applied in order give exactly its matchable set.
    for m in managers:
        applied: set[int] = set()
        for e in rec.events:
            if e.manager_id != m.id:
                continue
            if e.kind == "stored":
                applied.add(e.block_hash)
            elif e.kind == "removed":
                applied.remove(e.block_hash)
            else:
                applied.clear()
        k = managers.index(m)
        hashes = [h for i in range(50)
                  for h in kvbm.TokenBlockSequence(tokens(2 * BLOCK, 1000 * k + i), BLOCK).sequence_hashes()]
        assert applied == matchable(m, hashes)
        m.check_invariants()


def test_an_exception_in_the_callback_is_reported_and_the_pool_goes_on(monkeypatch):
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(u.exc_type))
    seen = []

    def fragile(events):
        seen.extend(events)
        if len(seen) <= 2:
            raise KeyError("boom")

    m = kvbm.BlockManager("G1", 8, block_size=BLOCK, event_sink=kvbm.CallbackEventSink(fragile))
    first = fill(m, kvbm.TokenBlockSequence(tokens(2 * BLOCK), BLOCK))
    assert reported == [KeyError] and len(first) == 2
    second = fill(m, kvbm.TokenBlockSequence(tokens(2 * BLOCK, 50), BLOCK))
    assert reported == [KeyError] and len(seen) == 4 and len(second) == 2
    m.check_invariants()


def test_an_event_during_exception_unwinding_keeps_the_exception():
    # A handle held only by the interpreter's value stack is dropped while the NameError
    # unwinds (the error indicator set): its Removed event runs the callback then, and the
    # NameError must come out unchanged.
    rec = Recorder()
    m = kvbm.BlockManager("G1", 8, block_size=BLOCK, event_sink=kvbm.CallbackEventSink(rec))
    held = fill(m, kvbm.TokenBlockSequence(tokens(BLOCK), BLOCK))
    held[0].set_evict_on_reset(True)

    def fails():
        (lambda block, other: None)(held.pop(), undefined_name)  # noqa: F821

    with pytest.raises(NameError, match="undefined_name"):
        fails()
    assert rec.kinds() == ["stored", "removed"]


def test_batching_sink_holds_events_until_the_window_or_flush():
    rec = Recorder()
    batching = kvbm.BatchingEventSink(kvbm.CallbackEventSink(rec), window_ms=60_000)
    m = kvbm.BlockManager("G1", 8, block_size=BLOCK, event_sink=batching)
    seq = kvbm.TokenBlockSequence(tokens(5 * BLOCK), BLOCK)
    fill(m, seq)
    assert rec.calls == 0  # below max_events, younger than the window: held back
    batching.flush()
    assert rec.calls == 1 and batching.batches_delivered == 1
    assert [e.block_hash for e in rec.events] == [kvbm.wire_hash(h) for h in seq.sequence_hashes()]
    assert rec.threads.isdisjoint({threading.get_ident()})  # the batching thread delivered


def test_batching_sink_splits_into_batches_of_max_events():
    sizes = []
    batching = kvbm.BatchingEventSink(kvbm.CallbackEventSink(lambda evs: sizes.append(len(evs))),
                                      window_ms=60_000, max_events=2)
    m = kvbm.BlockManager("G1", 8, block_size=BLOCK, event_sink=batching)
    fill(m, kvbm.TokenBlockSequence(tokens(5 * BLOCK), BLOCK))  # one delivery of 5 records
    batching.flush()
    assert sizes == [2, 2, 1] and batching.batches_delivered == 3


def test_batching_sink_drains_a_manager_early_at_the_drain_threshold():
    done = threading.Event()
    got = []

    def on(events):
        got.extend(events)
        if len(got) >= 4:
            done.set()

    # The window never ends here: only the manager's early-drain signal can release the events.
    batching = kvbm.BatchingEventSink(kvbm.CallbackEventSink(on), window_ms=3_600_000,
                                      max_events=2, drain_threshold=4)
    m = kvbm.BlockManager("G1", 8, block_size=BLOCK, event_sink=batching)
    held = fill(m, kvbm.TokenBlockSequence(tokens(4 * BLOCK), BLOCK))
    assert done.wait(timeout=60) and len(got) == 4
    assert len(held) == 4


def test_batching_sink_window_delivers_without_flush():
    done = threading.Event()
    got = []

    def on(events):
        got.extend(events)
        done.set()

    batching = kvbm.BatchingEventSink(kvbm.CallbackEventSink(on), window_ms=1)
    m = kvbm.BlockManager("G1", 8, block_size=BLOCK, event_sink=batching)
    fill(m, kvbm.TokenBlockSequence(tokens(BLOCK), BLOCK))
    assert done.wait(timeout=60) and len(got) == 1


def test_batching_sink_destroyed_with_the_gil_held_flushes_without_deadlock():
    rec = Recorder()
    m = kvbm.BlockManager("G1", 8, block_size=BLOCK,
                          event_sink=kvbm.BatchingEventSink(kvbm.CallbackEventSink(rec), window_ms=60_000))
    held = fill(m, kvbm.TokenBlockSequence(tokens(2 * BLOCK), BLOCK))
    m.release_blocks(held)
    del m, held  # the last owner goes here: the sink flushes into Python while being destroyed
    gc.collect()
    assert rec.kinds() == ["stored", "stored"]


def test_hash_keys_of_a_request_sequence_reach_the_events():
    rec = Recorder()
    m = kvbm.BlockManager("G1", 8, block_size=BLOCK, event_sink=kvbm.CallbackEventSink(rec))
    keys = kvbm.HashKeys(cache_salt="tenant-a", lora_name="adapter-1",
                         multimodal_items=[kvbm.MultimodalItem(77, 2, 4)])
    r = kvbm.RequestSequence(tokens(3 * BLOCK + 1), 4, BLOCK, hash_keys=keys)
    assert r.allocate_blocks(3, m)
    assert r.complete_and_register_pending(m) == 3
    stored = [e for e in rec.events if e.kind == "stored"]
    assert [e.sequence_hash for e in stored] == r.sequence_hashes()[:3]
    assert all(e.lora_name == "adapter-1" and e.cache_salt == "tenant-a" for e in stored)
    # vLLM's per-block extra_keys: overlapping multimodal hashes, LoRA name, salt on block 0.
    assert [e.extra_keys for e in stored] == [(77, "adapter-1", "tenant-a"), (77, "adapter-1"),
                                              ("adapter-1",)]
    r.close()
    # Plain blocks carry none.
    plain = Recorder()
    n = kvbm.BlockManager("G1", 8, block_size=BLOCK, event_sink=kvbm.CallbackEventSink(plain))
    fill(n, kvbm.TokenBlockSequence(tokens(BLOCK), BLOCK))
    (e,) = plain.events
    assert e.lora_name is None and e.cache_salt is None and e.extra_keys is None


def test_policy_and_medium_arguments():
    rec = Recorder(check_parents=False)  # sparse: parents are not reported
    sink = kvbm.CallbackEventSink(rec)
    m = kvbm.BlockManager("G1", 40, block_size=1, event_sink=sink, event_policy="power-of-two",
                          event_medium="HBM")
    fill(m, kvbm.TokenBlockSequence(tokens(33), 1))
    assert [e.position for e in rec.events] == [16, 32]
    assert {e.medium for e in rec.events} == {"HBM"}
    rec2 = Recorder()
    n = kvbm.BlockManager("G3", 4, block_size=BLOCK, event_sink=kvbm.CallbackEventSink(rec2),
                          event_medium="")
    fill(n, kvbm.TokenBlockSequence(tokens(BLOCK), BLOCK))
    assert rec2.events[0].medium is None
    with pytest.raises(ValueError, match="event_policy"):
        kvbm.BlockManager("G1", 4, event_sink=sink, event_policy="sometimes")
    with pytest.raises(TypeError):
        kvbm.BlockManager("G1", 4, event_sink=lambda events: None)
    with pytest.raises(TypeError):
        kvbm.CallbackEventSink(3)
    with pytest.raises(TypeError):
        kvbm.KvEventSink()
    with pytest.raises(ValueError, match="window_ms"):
        kvbm.BatchingEventSink(sink, window_ms=-1)
    with pytest.raises(ValueError, match="max_events"):
        kvbm.BatchingEventSink(sink, max_events=0)
    with pytest.raises(ValueError, match="drain_threshold"):
        kvbm.BatchingEventSink(sink, drain_threshold=-1)


def test_wire_hashes_chain():
    hashes = kvbm.TokenBlockSequence(tokens(3 * BLOCK), BLOCK).sequence_hashes()
    assert kvbm.parent_wire_hash(hashes[0]) is None
    assert kvbm.parent_wire_hash(hashes[2]) == kvbm.wire_hash(hashes[1]) != kvbm.wire_hash(hashes[2])
    assert 0 <= kvbm.wire_hash(hashes[0]) < 2**64


def test_a_callback_that_refers_to_its_manager_is_collected():
    def make():
        holder = {}

        def on(events):
            holder["m"].metrics()  # a callback may call its manager

        holder["m"] = kvbm.BlockManager("G1", 4, block_size=BLOCK,
                                        event_sink=kvbm.CallbackEventSink(on))
        fill(holder["m"], kvbm.TokenBlockSequence(tokens(BLOCK), BLOCK))
        return weakref.ref(on)

    ref = make()
    gc.collect()
    assert ref() is None


# ---- ZeroMQ publisher ---------------------------------------------------------------------

needs_zmq = pytest.mark.skipif(not kvbm.HAS_ZMQ,
                               reason="this kvbm was built without kvbm::events (libzmq, cppzmq, msgpack-cxx)")


def test_without_zmq_the_publisher_says_so():
    if kvbm.HAS_ZMQ:
        pytest.skip("this build has the publisher")
    with pytest.raises(kvbm.KvEventsError, match="without ZeroMQ"):
        kvbm.ZmqEventPublisher(kvbm.KvEventsConfig())


def test_events_config_fields():
    c = kvbm.KvEventsConfig()
    assert (c.endpoint, c.replay_endpoint, c.buffer_steps, c.hwm, c.max_queue_size, c.topic,
            c.data_parallel_rank) == ("tcp://*:5557", "", 10_000, 100_000, 100_000, "", 0)
    assert c.batching.window_ms == 10.0 and c.batching.max_events == 1024
    c = kvbm.KvEventsConfig(endpoint="ipc:///tmp/x", topic="kv",
                            batching=kvbm.KvEventBatching(window_ms=0.5, max_events=7))
    c.hwm = 5
    assert (c.endpoint, c.topic, c.hwm, c.batching.window_ms, c.batching.max_events) == (
        "ipc:///tmp/x", "kv", 5, 0.5, 7)


@needs_zmq
def test_publisher_replays_a_batch_a_vllm_subscriber_decodes(tmp_path):
    zmq = pytest.importorskip("zmq")
    msgpack = pytest.importorskip("msgspec").msgpack
    config = kvbm.KvEventsConfig(endpoint=f"ipc://{tmp_path}/pub",
                                 replay_endpoint=f"ipc://{tmp_path}/replay", topic="kv",
                                 batching=kvbm.KvEventBatching(window_ms=1))
    publisher = kvbm.ZmqEventPublisher(config)
    assert publisher.endpoint == config.endpoint and publisher.replay_endpoint == config.replay_endpoint
    m = kvbm.BlockManager("G2", 8, block_size=BLOCK, event_sink=publisher)
    seq = kvbm.TokenBlockSequence(tokens(2 * BLOCK, 7), BLOCK)
    r = kvbm.RequestSequence(tokens(2 * BLOCK, 7), 4, BLOCK,
                             hash_keys=kvbm.HashKeys(lora_name="lora-x"), tier="G2")
    held = fill(m, seq)
    publisher.flush()
    stats = publisher.stats()
    assert stats["events_published"] == 2 and stats["batches_published"] >= 1
    assert stats["batches_dropped"] == 0 and stats["events_dropped"] == 0

    ctx = zmq.Context()
    try:
        replay = ctx.socket(zmq.DEALER)
        replay.setsockopt(zmq.LINGER, 0)
        replay.setsockopt(zmq.RCVTIMEO, 30_000)
        replay.connect(publisher.replay_endpoint)
        replay.send_multipart([b"", (0).to_bytes(8, "big")])
        batches = []
        while True:
            empty, seqno, payload = replay.recv_multipart()
            assert empty == b""
            if int.from_bytes(seqno, "big", signed=True) == -1:
                break
            batches.append((int.from_bytes(seqno, "big"), msgpack.decode(payload)))
        replay.close()
    finally:
        ctx.term()
    assert [s for s, _ in batches] == list(range(len(batches)))
    events = [e for _, (ts, evs, rank) in batches for e in evs]
    assert all(rank == 0 and ts > 0 for _, (ts, _e, rank) in batches)
    hashes = seq.sequence_hashes()
    assert [e["type"] for e in events] == ["BlockStored", "BlockStored"]
    assert [e["block_hashes"] for e in events] == [[kvbm.wire_hash(h)] for h in hashes]
    assert events[0]["parent_block_hash"] is None
    assert events[1]["parent_block_hash"] == kvbm.wire_hash(hashes[0])
    assert [e["token_ids"] for e in events] == [b.tokens for b in seq.blocks()]
    assert all(e["medium"] == "CPU" and e["block_size"] == BLOCK and e["lora_name"] is None
               for e in events)
    m.release_blocks(held)
    r.close()


@needs_zmq
def test_publisher_live_subscriber_sees_keys(tmp_path):
    zmq = pytest.importorskip("zmq")
    msgpack = pytest.importorskip("msgspec").msgpack
    publisher = kvbm.ZmqEventPublisher(kvbm.KvEventsConfig(endpoint=f"ipc://{tmp_path}/live"))
    m = kvbm.BlockManager("G1", 64, block_size=BLOCK, event_sink=publisher)
    ctx = zmq.Context()
    try:
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(publisher.endpoint)
        # The subscription reaches the publisher asynchronously: publish until a batch arrives.
        keys = kvbm.HashKeys(cache_salt="salt-1", lora_name="lora-1")
        for i in range(200):
            r = kvbm.RequestSequence(tokens(BLOCK + 1, 1000 * i), 1, BLOCK, hash_keys=keys)
            assert r.allocate_blocks(1, m) and r.complete_and_register_pending(m) == 1
            r.close()
            publisher.flush()
            if sub.poll(50):
                break
        topic, seqno, payload = sub.recv_multipart()
        sub.close()
    finally:
        ctx.term()
    assert topic == b"" and len(seqno) == 8
    ts, events, rank = msgpack.decode(payload)
    stored = [e for e in events if e["type"] == "BlockStored"]
    assert stored and all(e["lora_name"] == "lora-1" and e["cache_salt"] == "salt-1" and
                          e["extra_keys"] == [["lora-1", "salt-1"]] for e in stored)


@needs_zmq
def test_publisher_bad_endpoint_raises_kv_events_error():
    with pytest.raises(kvbm.KvEventsError):
        kvbm.ZmqEventPublisher(kvbm.KvEventsConfig(endpoint="nonsense://nowhere"))
