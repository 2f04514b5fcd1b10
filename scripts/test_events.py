"""Wire test of kvbm-replay's KV events, decoded as a vLLM-format subscriber would.

Runs kvbm-replay with --kv-events/--kv-events-replay on ipc endpoints and checks, with msgspec
structs written from vLLM's published schema (vllm/distributed/kv_events.py, map-encoded events
tagged under "type", the batch a positional array):
  framing (3 frames: topic, 8-byte big-endian sequence number, payload), sequence numbers from 0
  without gaps, live frames byte-equal to the replay buffer, replay from a start sequence, the
  snapshot (AllBlocksCleared + every stored block, parents first, at sequence S = next batch),
  the stream applied in order rebuilding --cache-dump exactly, parents stored before children,
  removals only of stored hashes, token_ids of block_size ids; and that subscribers (one that never
  reads, one that disconnects midway) change nothing in the replay's results.
Usage: python test_events.py BUILD_DIR
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from typing import Union

import msgspec
import zmq


class BlockStored(msgspec.Struct, tag=True, omit_defaults=True):
    block_hashes: list[int]
    parent_block_hash: Union[int, None]
    token_ids: list[int]
    block_size: int
    lora_id: Union[int, None]
    medium: Union[str, None]
    lora_name: Union[str, None]
    extra_keys: Union[list, None] = None
    group_idx: Union[int, None] = None
    kv_cache_spec_kind: Union[str, None] = None
    kv_cache_spec_sliding_window: Union[int, None] = None


class BlockRemoved(msgspec.Struct, tag=True, omit_defaults=True):
    block_hashes: list[int]
    medium: Union[str, None]
    group_idx: Union[int, None] = None


class AllBlocksCleared(msgspec.Struct, tag=True, omit_defaults=True):
    pass


class KVEventBatch(msgspec.Struct, array_like=True, omit_defaults=True):
    ts: float
    events: list[Union[BlockStored, BlockRemoved, AllBlocksCleared]]
    data_parallel_rank: Union[int, None] = None


DECODER = msgspec.msgpack.Decoder(KVEventBatch)
REQUIRED_KEYS = {
    "BlockStored": {"type", "block_hashes", "parent_block_hash", "token_ids", "block_size",
                    "lora_id", "medium", "lora_name"},
    "BlockRemoved": {"type", "block_hashes", "medium"},
    "AllBlocksCleared": {"type"},
}
END = (-1).to_bytes(8, "big", signed=True)
failures: list[str] = []


def check(cond: bool, what: str) -> None:
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def decode(payload: bytes) -> KVEventBatch:
    raw = msgspec.msgpack.decode(payload)
    check(isinstance(raw, list) and len(raw) == 3, "batch is a 3-element array")
    for event in raw[1]:
        check(isinstance(event, dict), "event is a map")
        check(set(event) == REQUIRED_KEYS[event["type"]],
              f"{event['type']} has exactly vLLM's non-default keys: {sorted(event)}")
    return DECODER.decode(payload)


class Applied:
    """The stream applied in order, per medium; checks parents and removals as it goes."""

    # Live: a G1 block is registered only with its prefix held, so its parent is stored first.
    # G2 takes G1's evictions in any order (orphans are legitimate there), and in a snapshot a
    # cached child may outlive its evicted parent: there, a parent that is present comes first.
    def __init__(self, snapshot: bool = False) -> None:
        self.snapshot = snapshot
        self.by_medium: dict[str, set[int]] = {}
        self.tokens: dict[int, list[int]] = {}
        self.events = 0

    def apply(self, batch: KVEventBatch, block_size: int) -> None:
        everything = {(e.medium, h) for e in batch.events if isinstance(e, BlockStored)
                      for h in e.block_hashes}
        for event in batch.events:
            self.events += 1
            if isinstance(event, AllBlocksCleared):
                self.by_medium.clear()
                continue
            held = self.by_medium.setdefault(event.medium, set())
            if isinstance(event, BlockStored):
                parent = event.parent_block_hash
                if self.snapshot:
                    check(parent is None or (event.medium, parent) not in everything or parent in held,
                          "snapshot: a present parent comes before its child")
                elif event.medium == "GPU":
                    check(parent is None or parent in held, "parent stored before child")
                check(len(event.token_ids) == block_size * len(event.block_hashes),
                      "token_ids: block_size ids per block")
                check(event.block_size == block_size, "block_size")
                for h in event.block_hashes:
                    check(0 <= h < 2**64, "hash is a u64")
                    check(h not in held, "stored hash not already held")
                    held.add(h)
                    known = self.tokens.setdefault(h, event.token_ids)
                    check(known == event.token_ids, "a hash always carries the same tokens")
            else:
                for h in event.block_hashes:
                    check(h in held, "removed hash was stored")
                    held.discard(h)


def request(ctx: zmq.Context, endpoint: str, body: bytes) -> list[tuple[int, bytes]]:
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.RCVTIMEO, 20000)
    dealer.connect(endpoint)
    dealer.send_multipart([b"", body])
    out = []
    while True:
        frames = dealer.recv_multipart()
        check(len(frames) == 3 and frames[0] == b"", "replay reply is ['', seq, payload]")
        if frames[1] == END:
            check(frames[2] == b"", "end marker has an empty payload")
            break
        out.append((int.from_bytes(frames[1], "big"), frames[2]))
    dealer.close()
    return out


def run(binary: str, args: list[str]) -> dict:
    proc = subprocess.run([binary, *args, "--json", "--no-progress"], check=True,
                          capture_output=True, text=True, timeout=600)
    return json.loads(proc.stdout)


def results(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in ("wall_seconds", "kv_events")}


def scenario(binary: str, tmp: str, name: str, args: list[str], block_size: int, media: set[str]):
    ctx = zmq.Context()
    pub, rep = f"ipc://{tmp}/{name}-pub", f"ipc://{tmp}/{name}-replay"
    dump = os.path.join(tmp, f"{name}-dump.txt")
    live = ctx.socket(zmq.SUB)
    live.setsockopt(zmq.RECONNECT_IVL, 10)  # join soon after the replay binds
    live.setsockopt(zmq.RCVHWM, 0)
    live.setsockopt(zmq.SUBSCRIBE, b"kvbm")
    live.connect(pub)
    idle = ctx.socket(zmq.SUB)  # subscribes and never reads
    idle.setsockopt(zmq.SUBSCRIBE, b"")
    idle.connect(pub)
    leaver = ctx.socket(zmq.SUB)  # reads one batch, then disconnects

    leaver.setsockopt(zmq.SUBSCRIBE, b"")
    leaver.setsockopt(zmq.RECONNECT_IVL, 10)
    leaver.setsockopt(zmq.RCVTIMEO, 30000)
    leaver.connect(pub)

    def leave() -> None:
        try:
            leaver.recv_multipart()
        except zmq.Again:
            pass
        leaver.close(linger=0)

    leaving = threading.Thread(target=leave)
    leaving.start()

    cmd = [binary, *args, "--json", "--no-progress", "--kv-events", pub, "--kv-events-replay", rep,
           "--kv-events-topic", "kvbm", "--kv-events-linger-ms", "20000", "--cache-dump", dump,
           # the live subscribers below connect before the replay binds; without a wait, a short
           # replay could publish everything before they join (ZeroMQ's slow joiner)
           "--kv-events-wait-ms", "1500"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    text = ""
    for line in proc.stdout:  # the report is printed before the sockets linger
        text += line
        if line.rstrip() == "}":
            break
    report = json.loads(text)
    leaving.join()

    everything = request(ctx, rep, (0).to_bytes(8, "big"))
    seqs = [s for s, _ in everything]
    check(seqs == list(range(len(seqs))), f"{name}: sequence numbers 0..N-1 without gaps")
    check(len(everything) > 1, f"{name}: several batches")
    applied = Applied()
    for _, payload in everything:
        applied.apply(decode(payload), block_size)
    check(applied.events >= 1, f"{name}: events")
    check(report["kv_events"]["batches_dropped"] == 0, f"{name}: nothing dropped")
    with open(dump) as f:
        dumped = [int(line) for line in f]
    check(dumped == sorted(dumped), f"{name}: dump sorted")
    check(set(dumped) == applied.by_medium.get("GPU", set()),
          f"{name}: stream rebuilds the cache dump exactly ({len(dumped)} blocks)")
    check(set(applied.by_medium) <= media, f"{name}: media {sorted(applied.by_medium)}")
    if "CPU" in media:
        check(bool(applied.by_medium.get("CPU")), f"{name}: G2 events carry CPU")

    # Live frames: 3 frames, topic, and byte-equal to the replay buffer from the first one seen.
    got = []
    while live.poll(1000):
        frames = live.recv_multipart()
        check(len(frames) == 3 and frames[0] == b"kvbm" and len(frames[1]) == 8,
              f"{name}: 3 frames (topic, 8-byte seq, payload)")
        got.append((int.from_bytes(frames[1], "big"), frames[2]))
    check(bool(got), f"{name}: live batches received")
    if got:
        first = got[0][0]
        check(got == everything[first:], f"{name}: live stream equals the replay buffer")
    tail = request(ctx, rep, (len(everything) - 1).to_bytes(8, "big"))
    check(tail == everything[-1:], f"{name}: replay from a start sequence")

    snap = request(ctx, rep, b"snapshot")
    check(len(snap) == 1 and snap[0][0] == len(everything), f"{name}: snapshot at S = next seq")
    batch = decode(snap[0][1])
    check(isinstance(batch.events[0], AllBlocksCleared), f"{name}: snapshot starts with a clear")
    rebuilt = Applied(snapshot=True)
    rebuilt.by_medium = {"GPU": {123}}
    rebuilt.apply(batch, block_size)
    check(rebuilt.by_medium.get("GPU", set()) == set(dumped), f"{name}: snapshot equals the dump")
    check(rebuilt.by_medium == applied.by_medium, f"{name}: snapshot equals the applied stream")

    proc.terminate()  # end the linger early
    proc.wait(timeout=60)
    for s in (live, idle):
        s.close(linger=0)
    ctx.term()
    plain = run(binary, args)
    check(results(plain) == results(report),
          f"{name}: results unchanged by events and subscribers")
    print(f"{name}: {len(everything)} batches, {applied.events} events, {len(dumped)} blocks "
          f"in the dump, snapshot {len(batch.events) - 1} blocks")


def main() -> int:
    build = sys.argv[1]
    binary = os.path.join(build, "tools", "kvbm-replay")
    with tempfile.TemporaryDirectory(prefix="kvbm-events-") as tmp:
        scenario(binary, tmp, "cache", ["--mode", "cache", "--blocks", "512", "--block-size", "16",
                                        "--max-requests", "400"], 16, {"GPU"})
        scenario(binary, tmp, "serve", ["--mode", "serve", "--blocks", "512", "--g2-blocks", "1024",
                                        "--block-size", "64", "--max-requests", "300"], 64,
                 {"GPU", "CPU"})
    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("kv events wire test: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
