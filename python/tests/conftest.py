"""Shared fixtures: small pools and token sequences."""

from __future__ import annotations

import gc
import pathlib
import sys
import threading
import time

import pytest

import kvbm

REPO = pathlib.Path(__file__).resolve().parents[2]
BLOCK = 4


def tokens(n: int, start: int = 0) -> list[int]:
    return list(range(start, start + n))


def fill(manager: kvbm.BlockManager, seq: kvbm.TokenBlockSequence) -> list[kvbm.ImmutableBlock]:
    """Allocates, completes and registers one block per full block of `seq`."""
    blocks = manager.allocate_blocks(len(seq.blocks()))
    assert blocks is not None
    return manager.register_blocks([b.complete(t) for b, t in zip(blocks, seq.blocks())])


@pytest.fixture
def registry() -> kvbm.BlockRegistry:
    return kvbm.BlockRegistry()


@pytest.fixture
def manager(registry) -> kvbm.BlockManager:
    m = kvbm.BlockManager("G1", 16, block_size=BLOCK, registry=registry)
    yield m
    gc.collect()
    m.check_invariants()


@pytest.fixture
def seq() -> kvbm.TokenBlockSequence:
    return kvbm.TokenBlockSequence(tokens(4 * BLOCK + 2), BLOCK)


@pytest.fixture(autouse=True)
def deadlock_watchdog():
    """A test that deadlocks (e.g. a call that kept the GIL while blocking) fails loudly."""
    import faulthandler

    faulthandler.dump_traceback_later(300, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def wait_until_blocked_in(thread: threading.Thread, function_name: str) -> None:
    """Returns once `thread` runs `function_name` and has had the GIL for a few switch
    intervals: CPython forces a switch every interval, so the thread has by then entered the
    C++ call it makes there (and, if that call releases the GIL, is blocked in it)."""
    while True:
        frame = sys._current_frames().get(thread.ident)
        if frame is not None and frame.f_code.co_name == function_name:
            break
    deadline = time.perf_counter() + 5 * sys.getswitchinterval()
    while time.perf_counter() < deadline:
        pass
