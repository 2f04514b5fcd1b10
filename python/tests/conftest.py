"""Shared fixtures: small pools and token sequences."""

from __future__ import annotations

import gc
import pathlib

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
