"""kvbm: a KV-cache block manager for LLM inference (bindings of the C++ library).

See docs/python.md. Every handle (MutableBlock, CompleteBlock, ImmutableBlock, WeakBlock,
LifecyclePin) owns its C++ handle: closing it (``close()`` or the end of a ``with`` block)
releases it at once, and collecting it does the same. Batch calls release the GIL.
"""

from ._kvbm import (
    AttachmentError,
    BlockManager,
    BlockRegistry,
    BlockSizeMismatch,
    CompleteBlock,
    ConfigError,
    CudaError,
    Fence,
    ForeignBlock,
    HostGate,
    HostStream,
    ImmutableBlock,
    InvalidHandle,
    KvbmError,
    LifecyclePin,
    MutableBlock,
    PositionOutOfRange,
    SequenceHash,
    TokenBlock,
    TokenBlockSequence,
    WeakBlock,
)

__all__ = [
    "AttachmentError",
    "BlockManager",
    "BlockRegistry",
    "BlockSizeMismatch",
    "CompleteBlock",
    "ConfigError",
    "CudaError",
    "Fence",
    "ForeignBlock",
    "HostGate",
    "HostStream",
    "ImmutableBlock",
    "InvalidHandle",
    "KvbmError",
    "LifecyclePin",
    "MutableBlock",
    "PositionOutOfRange",
    "SequenceHash",
    "TokenBlock",
    "TokenBlockSequence",
    "WeakBlock",
]
