#!/usr/bin/env python3
"""Python-binding overhead of kvbm's batch calls: each call from Python and from C++, 32 and 1 blocks.

For every batch call the issue names (allocate_blocks, register_blocks, match_blocks,
release_blocks) the same calls run on the same manager (allocate and register: a new one of the
same size for each measurement, on both sides) with the same prepared inputs from Python
(a loop over `--calls` back-to-back calls, timed with time.thread_time_ns) and from C++
(kvbm._kvbm._bench, the same loop in the extension, same per-thread CPU clock). Inputs are
prepared and results dropped outside the timed region on both sides, so only the call is timed.
Thread CPU time keeps other processes on a shared machine out of both figures. Python and C++
runs alternate within each repetition; each figure is the median over --repeats.

The fixed per-call cost of a call is fixed = py(1) - cpp(1): what one call of one block costs
more from Python than from C++ (argument parsing, the GIL release/reacquire, the result list, the
caller's loop, and one block's share of per-block work, so it slightly overstates the fixed
part). The target, per call:      py(32) <= 2 * cpp(32) + fixed
Output: one line per workload, and a JSON summary with --json. Never run in the test suite.

Usage: python bench/python_overhead.py [--calls N] [--repeats R] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time

import kvbm
from kvbm import _kvbm

BATCH = 32
BLOCK_SIZE = 16


def timed(fn, args_list, out):
    """ns per call of fn(args) over args_list; results kept in `out` (dropped by the caller)."""
    clock = time.thread_time_ns
    # As timeit: no cyclic GC pass inside the timed loop (one would be charged to whichever
    # call crosses the allocation threshold, with a cost set by the setup's objects).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = clock()
        for i, args in enumerate(args_list):
            out[i] = fn(args)
        return (clock() - start) / len(args_list)
    finally:
        if gc_was_enabled:
            gc.enable()


class Setup:
    """Managers and prepared inputs shared by the Python and the C++ side."""

    def __init__(self, calls: int):
        self.calls = calls
        blocks = calls * BATCH
        seq = kvbm.TokenBlockSequence(list(range(blocks * BLOCK_SIZE)), BLOCK_SIZE)
        self.tokens = seq.blocks()
        self.hashes = seq.sequence_hashes()
        # fresh(): nothing registered (allocate, register). `cache`: `calls` chains of 32 blocks
        # registered, each call works on its own chain (call i: hashes[i*n:(i+1)*n]).
        self.blocks = blocks
        self.cache = kvbm.BlockManager("G1", block_count=blocks, block_size=BLOCK_SIZE)
        staged = [b.complete(t) for b, t in zip(self.cache.allocate_blocks(blocks), self.tokens)]
        self.held = self.cache.register_blocks(staged)

    def fresh(self) -> kvbm.BlockManager:
        """A new manager for each allocate/register measurement: both sides start from the same
        free list (its order after earlier calls would otherwise differ between them)."""
        return kvbm.BlockManager("G1", block_count=self.blocks, block_size=BLOCK_SIZE)

    def slices(self, n: int):
        return [self.hashes[i * BATCH:i * BATCH + n] for i in range(self.calls)]


def py_allocate(s: Setup, n: int) -> float:
    fresh = s.fresh()
    out = [None] * s.calls
    ns = timed(fresh.allocate_blocks, [n] * s.calls, out)
    del out
    return ns


def cpp_allocate(s: Setup, n: int) -> float:
    return _kvbm._bench.allocate_calls_ns(s.fresh(), n, s.calls)


def py_register(s: Setup, n: int) -> float:
    fresh = s.fresh()
    # As the C++ side: call i's blocks come from their own allocate_blocks(n), staged with
    # hashes[i*n:(i+1)*n] (the same slots in the same order).
    inputs = []
    for i in range(s.calls):
        mutable = fresh.allocate_blocks(n)
        inputs.append([b.stage(h, BLOCK_SIZE) for b, h in zip(mutable, s.hashes[i * n:(i + 1) * n])])
    del mutable
    out = [None] * s.calls
    ns = timed(fresh.register_blocks, inputs, out)
    del out, inputs
    return ns


def cpp_register(s: Setup, n: int) -> float:
    return _kvbm._bench.register_calls_ns(s.fresh(), s.hashes, n, s.calls)


def py_match(s: Setup, n: int) -> float:
    out = [None] * s.calls
    ns = timed(s.cache.match_blocks, s.slices(n), out)
    del out
    return ns


def cpp_match(s: Setup, n: int) -> float:
    return _kvbm._bench.match_calls_ns(s.cache, flat(s, n), n, s.calls)


def py_release(s: Setup, n: int) -> float:
    inputs = [s.cache.match_blocks(h) for h in s.slices(n)]
    out = [None] * s.calls
    ns = timed(s.cache.release_blocks, inputs, out)
    del out, inputs
    return ns


def cpp_release(s: Setup, n: int) -> float:
    return _kvbm._bench.release_calls_ns(s.cache, flat(s, n), n, s.calls)


def py_match_batch(s: Setup, n: int) -> float:
    out = [None] * s.calls
    ns = timed(s.cache.match_blocks_batch, s.slices(n), out)
    del out
    return ns


def flat(s: Setup, n: int) -> list:
    """The hashes of s.slices(n), concatenated: the C++ side's call i takes [i*n, (i+1)*n)."""
    return [h for chunk in s.slices(n) for h in chunk]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=64, help="timed calls per measurement")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--iterations", type=int, help=argparse.SUPPRESS)  # old name of --calls
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    calls = args.iterations or args.calls
    s = Setup(calls)

    # (workload, python side, C++ side, whether the cache manager's chains are held meanwhile)
    workloads = [
        ("allocate_blocks", py_allocate, cpp_allocate, None),
        ("register_blocks", py_register, cpp_register, None),
        ("match_blocks, held", py_match, cpp_match, True),
        ("release_blocks, held", py_release, cpp_release, True),
        ("match_blocks_batch, held", py_match_batch, cpp_match, True),
        ("match_blocks, cached", py_match, cpp_match, False),
        ("release_blocks, cached", py_release, cpp_release, False),
    ]
    samples = {(w[0], side, n): [] for w in workloads for side in ("py", "cpp") for n in (1, BATCH)}
    for _ in range(args.repeats):
        # Interleaved: every repetition runs every workload, Python and C++ alternately.
        for held in (True, False, None):
            if held is False and s.held:
                s.cache.release_blocks(s.held)
                s.held = []
            for name, py_fn, cpp_fn, needs in workloads:
                if needs is not held:
                    continue
                for n in (BATCH, 1):
                    samples[name, "py", n].append(py_fn(s, n))
                    samples[name, "cpp", n].append(cpp_fn(s, n))
        if not s.held:  # hold every chain again for the next repetition's held workloads
            s.held = s.cache.match_blocks(s.hashes)
    s.cache.check_invariants()

    # The median of the repetitions: a best-of on each side would let one lucky C++ repetition
    # decide the verdict.
    best = {key: statistics.median(values) for key, values in samples.items()}
    rows = []
    for name, *_ in workloads:
        py32, cpp32 = best[name, "py", BATCH], best[name, "cpp", BATCH]
        py1, cpp1 = best[name, "py", 1], best[name, "cpp", 1]
        fixed = py1 - cpp1
        rows.append({
            "workload": name, "py32_ns": py32, "cpp32_ns": cpp32, "py1_ns": py1, "cpp1_ns": cpp1,
            "fixed_ns": fixed, "ratio": py32 / cpp32, "ratio_minus_fixed": (py32 - fixed) / cpp32,
            "target_ns": 2 * cpp32 + fixed, "meets_target": py32 <= 2 * cpp32 + fixed,
            # What Python adds per block beyond the fixed cost.
            "py_ns_per_block": (py32 - cpp32 - fixed) / (BATCH - 1),
        })
    if args.json:
        print(json.dumps({"batch": BATCH, "calls": calls, "repeats": args.repeats, "rows": rows},
                         indent=2))
        return
    print(f"batch {BATCH}, {calls} calls per measurement, median of {args.repeats}; "
          "fixed = py(1) - cpp(1); target: py(32) <= 2*cpp(32) + fixed")
    print(f"{'workload':26} {'py(32)':>7} {'cpp(32)':>7} {'py(1)':>6} {'cpp(1)':>6} {'fixed':>6}"
          f" {'ratio':>5} {'(py-fixed)/cpp':>14} {'py ns/block':>11} target")
    for r in rows:
        print(f"{r['workload']:26} {r['py32_ns']:7.0f} {r['cpp32_ns']:7.0f} {r['py1_ns']:6.0f} "
              f"{r['cpp1_ns']:6.0f} {r['fixed_ns']:6.0f} {r['ratio']:5.2f} "
              f"{r['ratio_minus_fixed']:14.2f} {r['py_ns_per_block']:11.1f} "
              f"{'met' if r['meets_target'] else 'MISSED'}")


if __name__ == "__main__":
    main()
