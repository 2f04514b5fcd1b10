"""Device side: Fence, HostStream, HostGate, add_fence on handles."""

from __future__ import annotations

import threading

import pytest

import kvbm
from conftest import fill, wait_until_blocked_in


def test_default_fence_is_ready():
    fence = kvbm.Fence()
    assert fence.ready()
    fence.wait()
    assert "ready" in repr(fence)


def test_host_stream_runs_tasks_in_order_behind_fences():
    ran = []
    with kvbm.HostStream() as stream:
        gate = kvbm.HostGate()
        stream.wait(gate.fence())
        stream.enqueue(lambda: ran.append(1))
        stream.enqueue(lambda: ran.append(2))
        done = stream.record()
        assert not done.ready() and ran == [] and not stream.idle()
        gate.open()
        assert gate.is_open
        done.wait()
        assert done.ready() and ran == [1, 2]
        stream.synchronize()
        assert stream.tasks_completed >= 3
    with pytest.raises(kvbm.InvalidHandle):
        stream.record()


def test_task_exceptions_surface_in_synchronize():
    stream = kvbm.HostStream()
    stream.enqueue(lambda: 1 / 0)
    after = stream.record()
    with pytest.raises(ZeroDivisionError):
        stream.synchronize()
    assert after.ready()  # the stream kept running
    stream.close()
    stream.close()


def test_fenced_slot_is_not_reused_until_the_fence_is_ready(manager, seq):
    gate = kvbm.HostGate()
    blocks = manager.allocate_blocks(2)
    blocks[0].add_fence(gate.fence())
    del blocks
    assert manager.available_blocks == 15
    assert manager.metrics()["fenced_slots"] == 1
    assert manager.allocate_blocks(16) is None
    gate.open()
    assert manager.available_blocks == 16
    held = fill(manager, seq)
    pin = held[0].pin()
    gate2 = kvbm.HostGate()
    for handle in (held[1], pin):
        handle.add_fence(gate2.fence())
    staged = manager.allocate_blocks(1)[0].stage(seq.sequence_hashes()[0], 4)
    staged.add_fence(gate2.fence())
    gate2.open()
    del held, pin, staged


def test_blocking_allocation_waits_for_a_fence_with_the_gil_released(manager):
    gate = kvbm.HostGate()
    blocks = manager.allocate_blocks(16)
    for block in blocks:
        block.add_fence(gate.fence())
    del blocks, block
    result = []

    def blocked_call():
        result.append(manager.allocate_blocks_blocking(16))

    waiter = threading.Thread(target=blocked_call)
    waiter.start()
    # The waiter is blocked inside C++ with the GIL released: this thread keeps running Python,
    # and it is the one that opens the gate.
    wait_until_blocked_in(waiter, "blocked_call")
    assert waiter.is_alive() and not result
    gate.open()
    waiter.join(timeout=60)
    assert not waiter.is_alive()
    assert len(result[0]) == 16
    assert manager.metrics()["fence_waits"] >= 1
    del result


def test_streams_drain_on_close_and_on_collection():
    ran = []
    stream = kvbm.HostStream()
    stream.enqueue(lambda: 1 / 0)  # never synchronized: dropped with the stream
    stream.enqueue(lambda: ran.append("closed"))
    stream.close()
    other = kvbm.HostStream()
    gate = kvbm.HostGate()
    other.wait(gate.fence())
    other.enqueue(lambda: ran.append("collected"))
    gate.open()
    del other  # the destructor drains with the GIL released, so the Python task can run
    assert ran == ["closed", "collected"]


def test_close_while_another_thread_synchronizes():
    stream = kvbm.HostStream()
    gate = kvbm.HostGate()
    stream.wait(gate.fence())
    ran = []
    stream.enqueue(lambda: ran.append("task"))

    def blocked_sync():
        stream.synchronize()
        ran.append("synchronized")

    syncer = threading.Thread(target=blocked_sync)
    syncer.start()
    wait_until_blocked_in(syncer, "blocked_sync")
    stream.close()  # the syncing thread still holds the stream; it is destroyed after it
    with pytest.raises(kvbm.InvalidHandle):
        stream.record()
    gate.open()
    syncer.join(timeout=60)
    assert not syncer.is_alive() and ran == ["task", "synchronized"]
