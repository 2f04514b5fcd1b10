"""kvbm: a KV-cache block manager for LLM inference (bindings of the C++ library).

See docs/python.md. Every handle (MutableBlock, CompleteBlock, ImmutableBlock, WeakBlock,
LifecyclePin) owns its C++ handle: closing it (``close()`` or the end of a ``with`` block)
releases it at once, and collecting it does the same. Batch calls release the GIL.
"""

from ._errors import (
    AttachmentError,
    BlockSizeMismatch,
    ConfigError,
    CudaError,
    ForeignBlock,
    InvalidHandle,
    KvbmError,
    PositionOutOfRange,
)
from ._kvbm import (
    BlockBatch,
    BlockManager,
    BlockRegistry,
    CompleteBlock,
    Fence,
    HostGate,
    HostStream,
    ImmutableBlock,
    LifecyclePin,
    MutableBlock,
    SequenceHash,
    TokenBlock,
    TokenBlockSequence,
    WeakBlock,
)

__all__ = [
    "AttachmentError",
    "BlockBatch",
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
