#!/usr/bin/env python3
"""Python-binding overhead of kvbm's batch calls: the same 32-block call from Python and from C++.

Each workload runs the same call on the same manager, from Python (a loop timed with
time.thread_time_ns) and from C++ (kvbm._kvbm._bench, a loop in the extension with the same
inputs, timed with the same per-thread CPU clock), interleaved in one run, best of --repeats
each. Thread CPU time keeps other processes on a shared machine out of both figures.
The fixed per-call cost is the Python time of the same call with an empty batch
(match_blocks([])): argument parsing, the GIL release/reacquire, the result list. The target is
    python_ns <= 2 * cpp_ns + calls * fixed_ns   (per iteration of `calls` calls on 32 blocks)
Output: one line per workload, and a JSON summary with --json. Never run in the test suite.

Usage: python bench/python_overhead.py [--iterations N] [--repeats R] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

import kvbm
from kvbm import _kvbm

BATCH = 32


def best_ns(fn, iterations: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.thread_time_ns()
        fn(iterations)
        best = min(best, (time.thread_time_ns() - start) / iterations)
    return best


def setup(batch: int):
    manager = kvbm.BlockManager("G1", block_count=4 * batch, block_size=16)
    seq = kvbm.TokenBlockSequence(list(range(batch * 16)), 16)
    hashes = seq.sequence_hashes()
    blocks = manager.allocate_blocks(batch)
    held = manager.register_blocks([b.complete(t) for b, t in zip(blocks, seq.blocks())])
    return manager, hashes, held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    it, rep = args.iterations, args.repeats
    bench = _kvbm._bench

    manager, hashes, held = setup(BATCH)
    empty: list = []

    def py_empty(n):
        match = manager.match_blocks
        for _ in range(n):
            match(empty)

    def py_match(n):
        match = manager.match_blocks
        for _ in range(n):
            match(hashes)  # result list dropped at once: 32 handle releases

    def py_match_release(n):
        match, release = manager.match_blocks, manager.release_blocks
        for _ in range(n):
            release(match(hashes))

    def py_match_batch(n):
        match = manager.match_blocks_batch
        for _ in range(n):
            match(hashes)

    def py_match_batch_release(n):
        match, release = manager.match_blocks_batch, manager.release_blocks
        for _ in range(n):
            release(match(hashes))

    def py_allocate(n):
        allocate = manager.allocate_blocks
        for _ in range(n):
            allocate(BATCH)

    fixed = best_ns(py_empty, it, rep)
    rows = []

    def row(name, py_fn, cpp_fn, calls=1):
        # `calls`: Python calls per iteration (match + release is two), each with the fixed cost.
        # Interleaved, best of `rep` each: on a shared machine both sides see the same load.
        py = cpp = float("inf")
        for _ in range(rep):
            py = min(py, best_ns(py_fn, it, 1))
            cpp = min(cpp, cpp_fn())
        rows.append({
            "workload": name, "python_ns": py, "cpp_ns": cpp, "ratio": py / cpp,
            "ratio_minus_fixed": (py - calls * fixed) / cpp, "target_ns": 2 * cpp + calls * fixed,
            "meets_target": py <= 2 * cpp + calls * fixed,
            # What Python adds per block once the fixed cost is paid: the handle objects.
            "python_ns_per_block": (py - calls * fixed - cpp) / BATCH,
        })

    # Held path: every matched block is also held by `held`, so a match is one increment each.
    row("match_blocks(32), held", py_match, lambda: bench.match_ns(manager, hashes, it))
    row("match_blocks(32) + release_blocks, held", py_match_release,
        lambda: bench.match_release_ns(manager, hashes, it), calls=2)
    row("match_blocks_batch(32), held", py_match_batch, lambda: bench.match_ns(manager, hashes, it))
    row("match_blocks_batch(32) + release_blocks, held", py_match_batch_release,
        lambda: bench.match_release_ns(manager, hashes, it), calls=2)
    # Cached path: nothing else holds the blocks; each match revives 32 cached blocks and the
    # drop returns them to the inactive pool.
    manager.release_blocks(held)
    row("match_blocks(32), cached", py_match, lambda: bench.match_ns(manager, hashes, it))
    row("match_blocks(32) + release_blocks, cached", py_match_release,
        lambda: bench.match_release_ns(manager, hashes, it), calls=2)
    row("match_blocks_batch(32) + release_blocks, cached", py_match_batch_release,
        lambda: bench.match_release_ns(manager, hashes, it), calls=2)
    row("allocate_blocks(32) + drop", py_allocate, lambda: bench.allocate_ns(manager, BATCH, it))
    manager.check_invariants()

    if args.json:
        print(json.dumps({"batch": BATCH, "fixed_ns": fixed, "rows": rows}, indent=2))
        return
    print(f"batch {BATCH}; fixed per-call cost (match_blocks([]) from Python): {fixed:.0f} ns")
    print(f"{'workload':48} {'python ns':>10} {'C++ ns':>9} {'ratio':>6} {'(py-fixed)/C++':>15}"
          f" {'py ns/block':>11} target")
    for r in rows:
        print(f"{r['workload']:48} {r['python_ns']:10.0f} {r['cpp_ns']:9.0f} {r['ratio']:6.2f} "
              f"{r['ratio_minus_fixed']:15.2f} {r['python_ns_per_block']:11.1f} "
              f"{'met' if r['meets_target'] else 'MISSED'}")


if __name__ == "__main__":
    main()
