"""The vLLM-style adapter example runs and leaves the pool consistent."""

from __future__ import annotations

import runpy

from conftest import REPO


def test_vllm_adapter_example_runs_a_batch():
    example = runpy.run_path(str(REPO / "examples/python/vllm_adapter.py"))
    stats = example["main"]()
    assert stats["finished"] == 12
    assert stats["prefix_hit_tokens"] > 0  # the shared system prompt is reused
    assert stats["available_blocks"] == stats["total_blocks"]
    assert stats["metrics"]["inflight_immutable"] == 0
    assert stats["metrics"]["inflight_mutable"] == 0
    # The num_tokens - 1 rule: a prompt of whole blocks never matches its last block.
    adapter = example["KvbmKVCacheManager"](8, 4)
    request = example["Request"]("x", list(range(8)), 1)
    assert adapter.allocate_slots(request, 8) is not None
    adapter.commit(request, 8)
    again = example["Request"]("y", list(range(8)), 1)
    hits, computed = adapter.get_computed_blocks(again)
    assert (len(hits), computed) == (1, 4)
    adapter.pool.release_blocks(hits)
    adapter.free(request)
