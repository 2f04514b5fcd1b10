#!/usr/bin/env python3
"""A vLLM-style KV-cache manager over kvbm, driving a small simulated batch.

The adapter has the three calls a vLLM scheduler makes on its KV-cache manager:

- ``get_computed_blocks(request)``: the longest cached prefix of the prompt, as blocks, and the
  number of tokens they cover. The ``num_tokens - 1`` rule: only blocks lying entirely within the
  first ``num_tokens - 1`` tokens may be reused, because the last prompt token must still be
  computed to produce the logits of the first generated token.
- ``allocate_slots(request, num_new_tokens, computed_blocks)``: takes the computed blocks and
  enough new blocks for ``num_new_tokens`` more tokens, or returns None (taking nothing) when
  the pool cannot hold them, so the scheduler can preempt or wait.
- ``free(request)``: releases the request's blocks, tail first, in one pool-lock acquisition;
  registered blocks stay cached for later requests with the same prefix.

Full blocks are completed and registered as soon as their tokens are known, so a later request
sharing the prefix hits them even while this one still runs. Run directly to simulate a batch;
the test suite runs ``main()`` and checks its result.
"""

from __future__ import annotations

import dataclasses
import random

import kvbm


@dataclasses.dataclass
class Request:
    request_id: str
    prompt_token_ids: list[int]
    max_new_tokens: int
    output_token_ids: list[int] = dataclasses.field(default_factory=list)

    @property
    def all_token_ids(self) -> list[int]:
        return self.prompt_token_ids + self.output_token_ids

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_token_ids) + len(self.output_token_ids)


class KvbmKVCacheManager:
    """The scheduler-facing calls, over one G1 kvbm.BlockManager."""

    def __init__(self, num_blocks: int, block_size: int) -> None:
        self.block_size = block_size
        self.pool = kvbm.BlockManager("G1", num_blocks, block_size=block_size,
                                      registry=kvbm.BlockRegistry("small"))
        # Per request: its blocks in order (ImmutableBlock for full, registered blocks;
        # MutableBlock for the block being filled), and its token sequence with hashes.
        self.blocks: dict[str, list] = {}
        self.sequences: dict[str, kvbm.TokenBlockSequence] = {}
        self.num_computed: dict[str, int] = {}

    def get_computed_blocks(self, request: Request) -> tuple[list[kvbm.ImmutableBlock], int]:
        usable = (request.num_tokens - 1) // self.block_size  # the num_tokens - 1 rule
        seq = kvbm.TokenBlockSequence(request.all_token_ids, self.block_size)
        hits = self.pool.match_blocks(seq.sequence_hashes()[:usable])
        return hits, len(hits) * self.block_size

    def allocate_slots(self, request: Request, num_new_tokens: int,
                       computed_blocks: list[kvbm.ImmutableBlock] | None = None) -> list | None:
        rid = request.request_id
        held = self.blocks.get(rid, [])
        computed = self.num_computed.get(rid, 0)
        if computed_blocks:
            computed = len(computed_blocks) * self.block_size
        total = computed + num_new_tokens
        needed = -(-total // self.block_size) - len(held) - len(computed_blocks or [])
        fresh = self.pool.allocate_blocks(max(needed, 0))
        if fresh is None:
            return None  # nothing was taken; the caller keeps its computed blocks to release
        if rid not in self.blocks:
            self.blocks[rid] = list(computed_blocks or [])
            self.sequences[rid] = kvbm.TokenBlockSequence([], self.block_size)
        self.blocks[rid].extend(fresh)
        self.num_computed[rid] = computed
        return fresh

    def commit(self, request: Request, num_tokens: int) -> None:
        """The model computed `num_tokens` more tokens: register the blocks they filled."""
        rid = request.request_id
        seq, blocks = self.sequences[rid], self.blocks[rid]
        seq.extend(request.all_token_ids[seq.total_tokens:self.num_computed[rid] + num_tokens])
        self.num_computed[rid] += num_tokens
        full = seq.blocks()
        staged, slots = [], []
        for i in range(len(full)):
            if isinstance(blocks[i], kvbm.MutableBlock):
                staged.append(blocks[i].complete(full[i]))
                slots.append(i)
        for i, block in zip(slots, self.pool.register_blocks(staged)):
            blocks[i] = block

    def free(self, request: Request) -> None:
        blocks = self.blocks.pop(request.request_id, [])
        self.sequences.pop(request.request_id, None)
        self.num_computed.pop(request.request_id, None)
        registered = [b for b in reversed(blocks) if isinstance(b, kvbm.ImmutableBlock)]
        self.pool.release_blocks(registered)  # tail first, one pool lock
        for block in blocks:
            if isinstance(block, kvbm.MutableBlock):
                block.close()


def simulate(num_requests: int = 12, num_blocks: int = 64, block_size: int = 4,
             seed: int = 7) -> dict:
    """Runs a batch of requests (shared system prompt, a few repeated prompts) to completion
    with continuous batching; returns counters the test suite checks."""
    rng = random.Random(seed)
    system = [rng.randrange(1000) for _ in range(3 * block_size + 1)]
    prompts = [system + [rng.randrange(1000) for _ in range(rng.randrange(2, 9))]
               for _ in range(num_requests // 2)]
    waiting = [Request(f"r{i}", list(prompts[i % len(prompts)]), rng.randrange(2, 8))
               for i in range(num_requests)]
    kv = KvbmKVCacheManager(num_blocks, block_size)
    running: list[Request] = []
    stats = {"finished": 0, "prefix_hit_tokens": 0, "prompt_tokens": 0, "steps": 0,
             "waits": 0}
    while waiting or running:
        stats["steps"] += 1
        # Admit what fits: prefix hits first, then new blocks for the rest of the prompt.
        while waiting and len(running) < 4:
            request = waiting[0]
            hits, num_computed = kv.get_computed_blocks(request)
            new_tokens = request.num_tokens - num_computed
            if kv.allocate_slots(request, new_tokens, hits) is None:
                kv.pool.release_blocks(hits)
                stats["waits"] += 1
                break
            waiting.pop(0)
            stats["prefix_hit_tokens"] += num_computed
            stats["prompt_tokens"] += request.num_tokens
            kv.commit(request, new_tokens)  # prefill
            running.append(request)
        # One decode step for every running request.
        for request in list(running):
            if kv.allocate_slots(request, 1) is None:
                continue  # a real scheduler would preempt; here the request waits a step
            request.output_token_ids.append(rng.randrange(1000))
            kv.commit(request, 1)
            if len(request.output_token_ids) >= request.max_new_tokens:
                kv.free(request)
                running.remove(request)
                stats["finished"] += 1
    kv.pool.check_invariants()
    stats["available_blocks"] = kv.pool.available_blocks
    stats["total_blocks"] = kv.pool.total_blocks
    stats["metrics"] = kv.pool.metrics()
    return stats


def main() -> dict:
    stats = simulate()
    print(f"finished {stats['finished']} requests in {stats['steps']} steps; "
          f"prefix hits {stats['prefix_hit_tokens']}/{stats['prompt_tokens']} prompt tokens; "
          f"{stats['available_blocks']}/{stats['total_blocks']} blocks available at the end")
    return stats


if __name__ == "__main__":
    main()
