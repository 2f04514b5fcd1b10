"""Long calls release the GIL: C++ waits and batch calls let other Python threads run."""

from __future__ import annotations

import threading

import kvbm
from conftest import BLOCK, fill, tokens, wait_until_blocked_in


def test_fence_wait_releases_the_gil():
    gate = kvbm.HostGate()
    fence = gate.fence()

    def blocked_wait():
        fence.wait()

    waiter = threading.Thread(target=blocked_wait)
    waiter.start()
    # If fence.wait() kept the GIL, this thread could not run on to open the gate (the watchdog
    # would end the run).
    wait_until_blocked_in(waiter, "blocked_wait")
    counted = sum(1 for _ in range(100_000))
    assert counted == 100_000 and waiter.is_alive()
    gate.open()
    waiter.join(timeout=60)
    assert not waiter.is_alive()


def test_matches_from_several_threads_while_another_holds_the_gil(registry):
    m = kvbm.BlockManager("G1", 256, block_size=BLOCK, registry=registry)
    seq = kvbm.TokenBlockSequence(tokens(32 * BLOCK), BLOCK)
    held = fill(m, seq)
    hashes = seq.sequence_hashes()
    stop = threading.Event()
    progress = [0]
    rounds = 300
    errors = []

    def python_spinner():
        # Pure Python: holds the GIL except at the interpreter's switch interval.
        while not stop.is_set():
            progress[0] += 1

    def matcher():
        try:
            for _ in range(rounds):
                got = m.match_blocks(hashes)
                assert len(got) == 32
                m.release_blocks(got)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    spinner = threading.Thread(target=python_spinner)
    spinner.start()
    matchers = [threading.Thread(target=matcher) for _ in range(4)]
    for t in matchers:
        t.start()
    for t in matchers:
        t.join(timeout=120)
    seen = progress[0]
    stop.set()
    spinner.join(timeout=60)
    assert not errors
    assert all(not t.is_alive() for t in matchers)
    assert seen > 0  # the GIL-holding thread made progress while the matches ran
    assert m.metrics()["match_blocks_returned"] == 4 * rounds * 32
    assert all(b.use_count == 1 for b in held)
    m.check_invariants()
