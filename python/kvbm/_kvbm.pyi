from collections.abc import Callable, Sequence
from typing import overload


class SequenceHash:
    """
    The 128-bit positional lineage hash that names a KV block: position, the block's chained 64-bit sequence hash and a fragment of its parent's. Hashable; ordered by as_int().
    """

    @staticmethod
    def from_parts(current: int, parent: int | None, position: int) -> SequenceHash:
        """Packs a hash; raises PositionOutOfRange when position >= 2**24."""

    @staticmethod
    def from_int(value: int) -> SequenceHash:
        """Rebuilds a hash from its 128-bit value (as_int())."""

    @property
    def position(self) -> int:
        """The block's index in its sequence."""

    @property
    def current_fragment(self) -> int:
        """The block's full 64-bit chained sequence hash."""

    @property
    def parent_fragment(self) -> int:
        """The stored fragment of the parent's sequence hash; 0 for position 0."""

    def as_int(self) -> int:
        """The packed 128-bit value as a Python int."""

    def __eq__(self, arg: SequenceHash, /) -> bool: ...

    def __ne__(self, arg: SequenceHash, /) -> bool: ...

    def __lt__(self, arg: SequenceHash, /) -> bool: ...

    def __le__(self, arg: SequenceHash, /) -> bool: ...

    def __gt__(self, arg: SequenceHash, /) -> bool: ...

    def __ge__(self, arg: SequenceHash, /) -> bool: ...

    def __hash__(self) -> int: ...

    def __repr__(self) -> str: ...

class TokenBlock:
    """
    One full block of tokens with its hashes (a value; copies are cheap enough for a block).
    """

    @property
    def tokens(self) -> list[int]:
        """The block's tokens."""

    @property
    def block_size(self) -> int:
        """Number of tokens."""

    @property
    def position(self) -> int:
        """Index of the block in its sequence."""

    @property
    def block_hash(self) -> int:
        """xxh3-64 of the block's tokens, seeded with the salt."""

    @property
    def sequence_hash(self) -> SequenceHash:
        """The block's SequenceHash (what managers match on)."""

    def __repr__(self) -> str: ...

class TokenBlockSequence:
    """
    A token list split into full blocks of `block_size`; the tail that does not fill a block has no hash yet. Not synchronised: one owner at a time.
    """

    def __init__(self, tokens: Sequence[int], block_size: int, salt: int = 0) -> None:
        """Splits and hashes `tokens`; raises ConfigError if block_size is 0."""

    def blocks(self) -> list[TokenBlock]:
        """The full blocks, in order (copies)."""

    def sequence_hashes(self) -> list[SequenceHash]:
        """The full blocks' sequence hashes, in order."""

    def append(self, token: int) -> bool:
        """Appends one token; True when it completed a block."""

    def extend(self, tokens: Sequence[int]) -> None:
        """Appends tokens."""

    def tokens(self) -> list[int]:
        """Every token, the partial tail included."""

    @property
    def total_tokens(self) -> int:
        """Number of tokens."""

    @property
    def block_size(self) -> int:
        """Tokens per block."""

    @property
    def salt(self) -> int:
        """The salt of block 0's hash."""

    def __len__(self) -> int: ...

class Fence:
    """
    One completion of asynchronous work on a stream (host or CUDA). Copies share the completion; Fence() is always ready. Attach one to a block with add_fence so its slot is not reused before the work ends.
    """

    def __init__(self) -> None:
        """An always-ready fence."""

    def ready(self) -> bool:
        """True once the work has finished; never blocks."""

    def wait(self) -> None:
        """Blocks until the work has finished (the GIL is released meanwhile)."""

    def __repr__(self) -> str: ...

class HostGate:
    """
    A gate whose fence is ready once open() is called: holds a HostStream's work in flight deterministically (tests, control). Collecting it opens it.
    """

    def __init__(self) -> None: ...

    def open(self) -> None:
        """Opens the gate (idempotent)."""

    @property
    def is_open(self) -> bool:
        """Whether open() was called."""

    def fence(self) -> Fence:
        """A fence that is ready once the gate is open."""

class HostStream:
    """
    The host backend's stream: enqueued work runs in order on one worker thread; record() gives a Fence ready once everything enqueued before it has run. A context manager: exit drains the queue and joins the worker.
    """

    def __init__(self) -> None: ...

    def enqueue(self, fn: Callable) -> None:
        """
        Enqueues fn() (run on the worker with the GIL taken); an exception it raises is re-raised by synchronize().
        """

    def record(self) -> Fence:
        """A Fence that becomes ready once everything enqueued so far has run."""

    def wait(self, fence: Fence) -> None:
        """Later work starts only once `fence` is ready (does not block)."""

    def synchronize(self) -> None:
        """
        Blocks (GIL released) until everything enqueued has run; re-raises the first task exception.
        """

    def idle(self) -> bool:
        """True when nothing is pending or running; never blocks."""

    @property
    def tasks_completed(self) -> int:
        """Tasks run so far."""

    def close(self) -> None:
        """Drains queued work and joins the worker (idempotent)."""

    def __enter__(self) -> HostStream: ...

    def __exit__(self, exc_type: object | None, exc: object | None, tb: object | None) -> None: ...

class BlockRegistry:
    """
    The sequence-hash registry shared by the managers of every tier (a cheap handle: copies share one registry). Thread-safe.
    """

    def __init__(self, frequency_tracker: str | None = None) -> None:
        """
        frequency_tracker: None, "small", "medium" or "large" (a TinyLFU sketch; required by the multi-lru backend).
        """

    def is_registered(self, hash: SequenceHash) -> bool:
        """True while a block of any tier holds `hash`, or a WeakBlock names it."""

    @property
    def registered_count(self) -> int:
        """Number of registered hashes."""

    @property
    def has_frequency_tracking(self) -> bool:
        """Whether a frequency tracker was configured."""

    def count(self, hash: SequenceHash) -> int:
        """The tracker's usage estimate of `hash` (0 without a tracker)."""

    def touch(self, hash: SequenceHash) -> None:
        """One touch of `hash` in the tracker."""

    def check_presence(self, hashes: Sequence[SequenceHash], tier: str) -> list[bool]:
        """For each hash, whether a block of `tier` holds it."""

    def __eq__(self, arg: BlockRegistry, /) -> bool: ...

class MutableBlock:
    """
    An allocated, writable slot. Closing or collecting it returns the slot to the free list; complete()/stage() consume it.
    """

    @property
    def block_id(self) -> int:
        """The slot's index in its pool."""

    @property
    def block_size(self) -> int:
        """Tokens per block of the pool."""

    @property
    def manager_id(self) -> int:
        """The owning manager's id."""

    def complete(self, token_block: TokenBlock) -> CompleteBlock:
        """
        Stages the block with the token block's sequence hash and consumes this handle. Raises BlockSizeMismatch (this handle untouched) if the sizes differ.
        """

    def stage(self, hash: SequenceHash, block_size: int) -> CompleteBlock:
        """
        Stages the block with an explicit hash; `block_size` is the number of tokens filled.
        """

    def add_fence(self, fence: Fence) -> None:
        """The slot is not handed out again until `fence` is ready."""

    def __repr__(self) -> str: ...

    def close(self) -> None:
        """Releases the handle now (idempotent); later use raises InvalidHandle."""

    def __enter__(self) -> MutableBlock: ...

    def __exit__(self, exc_type: object | None, exc: object | None, tb: object | None) -> None:
        """Releases the handle (the `with` block's end)."""

    @property
    def valid(self) -> bool:
        """False once the handle was released."""

class CompleteBlock:
    """
    A staged slot with its sequence hash, ready for register_blocks. Closing or collecting it returns the slot to the free list.
    """

    @property
    def block_id(self) -> int:
        """The slot's index in its pool."""

    @property
    def sequence_hash(self) -> SequenceHash:
        """The hash it was staged with."""

    def reset(self) -> MutableBlock:
        """Rolls the block back to a MutableBlock, consuming this handle."""

    def add_fence(self, fence: Fence) -> None:
        """The slot is not handed out again until `fence` is ready."""

    def __repr__(self) -> str: ...

    def close(self) -> None:
        """Releases the handle now (idempotent); later use raises InvalidHandle."""

    def __enter__(self) -> CompleteBlock: ...

    def __exit__(self, exc_type: object | None, exc: object | None, tb: object | None) -> None:
        """Releases the handle (the `with` block's end)."""

    @property
    def valid(self) -> bool:
        """False once the handle was released."""

class ImmutableBlock:
    """
    A registered, shareable slot (one strong reference). When the last reference (handles and pins) goes, a primary moves to the inactive pool (cached), a duplicate is freed.
    """

    @property
    def block_id(self) -> int:
        """The slot's index in its pool."""

    @property
    def sequence_hash(self) -> SequenceHash:
        """The block's sequence hash."""

    @property
    def manager_id(self) -> int:
        """The owning manager's id."""

    @property
    def use_count(self) -> int:
        """
        Live strong references to the slot: handles, pins and duplicate keep-alives.
        """

    def downgrade(self) -> WeakBlock:
        """A non-owning reference to this block."""

    def pin(self) -> LifecyclePin:
        """A tier-erased keepalive of this slot (counted in use_count)."""

    def clone(self) -> ImmutableBlock:
        """Another strong reference to the same slot (its own handle to close)."""

    def set_evict_on_reset(self, value: bool) -> None:
        """When True, the last release frees the slot instead of caching it."""

    def add_fence(self, fence: Fence) -> None:
        """The slot is not handed out again until `fence` is ready."""

    def __repr__(self) -> str: ...

    def close(self) -> None:
        """Releases the handle now (idempotent); later use raises InvalidHandle."""

    def __enter__(self) -> ImmutableBlock: ...

    def __exit__(self, exc_type: object | None, exc: object | None, tb: object | None) -> None:
        """Releases the handle (the `with` block's end)."""

    @property
    def valid(self) -> bool:
        """False once the handle was released."""

class WeakBlock:
    """A non-owning reference: upgrade() revives the block if live or cached."""

    @property
    def sequence_hash(self) -> SequenceHash:
        """The named block's sequence hash."""

    def upgrade(self) -> ImmutableBlock | None:
        """The live block, else the cached one revived, else None (evicted)."""

    def __repr__(self) -> str: ...

    def close(self) -> None:
        """Releases the handle now (idempotent); later use raises InvalidHandle."""

    def __enter__(self) -> WeakBlock: ...

    def __exit__(self, exc_type: object | None, exc: object | None, tb: object | None) -> None:
        """Releases the handle (the `with` block's end)."""

    @property
    def valid(self) -> bool:
        """False once the handle was released."""

class LifecyclePin:
    """
    A keepalive naming one slot by (manager_id, block_id, sequence_hash), whatever its tier.
    """

    @property
    def block_id(self) -> int:
        """The slot's index in its pool."""

    @property
    def sequence_hash(self) -> SequenceHash:
        """The slot's sequence hash."""

    @property
    def manager_id(self) -> int:
        """The owning manager's id."""

    @property
    def use_count(self) -> int:
        """Strong references to the slot."""

    def add_fence(self, fence: Fence) -> None:
        """The slot is not handed out again until `fence` is ready."""

    def __repr__(self) -> str: ...

    def close(self) -> None:
        """Releases the handle now (idempotent); later use raises InvalidHandle."""

    def __enter__(self) -> LifecyclePin: ...

    def __exit__(self, exc_type: object | None, exc: object | None, tb: object | None) -> None:
        """Releases the handle (the `with` block's end)."""

    @property
    def valid(self) -> bool:
        """False once the handle was released."""

class BlockBatch:
    """
    The ImmutableBlocks of one match_blocks_batch call, held in C++: one Python object for the whole batch, so no per-block object is made unless asked for. Indexing gives a new ImmutableBlock handle (another reference to the slot); release_blocks(batch) releases all under one pool lock.
    """

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> ImmutableBlock:
        """A new ImmutableBlock handle on the block at `index`."""

    def block_ids(self) -> list[int]:
        """The blocks' ids, in order."""

    def sequence_hashes(self) -> list[SequenceHash]:
        """The blocks' sequence hashes, in order."""

    def __repr__(self) -> str: ...

    def close(self) -> None:
        """Releases the handle now (idempotent); later use raises InvalidHandle."""

    def __enter__(self) -> BlockBatch: ...

    def __exit__(self, exc_type: object | None, exc: object | None, tb: object | None) -> None:
        """Releases the handle (the `with` block's end)."""

    @property
    def valid(self) -> bool:
        """False once the handle was released."""

class BlockManager:
    """
    One tier's fixed pool of KV block slots. Every method may be called from any thread; batch calls take the pool lock once and release the GIL.
    """

    def __init__(self, tier: str, block_count: int, block_size: int = 16, registry: BlockRegistry | None = None, backend: str = 'lineage', duplication: str = 'allow', reset_on_release: bool = False) -> None:
        """
        tier: "G1", "G2" or "G3"; block_size: a power of two in 1..1024; registry: shared across tiers (None: a private one); backend: "lineage", "lru", "fifo" or "multi-lru"; duplication: "allow" or "reject". Bad arguments raise ConfigError (a ValueError) naming the problem.
        """

    def allocate_blocks(self, n: int) -> list[MutableBlock] | None:
        """
        All-or-nothing: n blocks (free list first, then evicting cached blocks), or None with nothing taken.
        """

    def allocate_blocks_blocking(self, n: int) -> list[MutableBlock] | None:
        """
        Like allocate_blocks, but waits (GIL released) for fenced slots; None only if the pool cannot hold n.
        """

    def register_blocks(self, blocks: Sequence[CompleteBlock]) -> list[ImmutableBlock]:
        """
        Registers staged blocks (consuming their handles), results in input order. Raises ForeignBlock, consuming nothing, for a block of another manager.
        """

    def match_blocks(self, hashes: Sequence[SequenceHash]) -> list[ImmutableBlock]:
        """
        The longest contiguous cached prefix of `hashes` (cached blocks are revived).
        """

    def scan_matches(self, hashes: Sequence[SequenceHash], touch: bool = True) -> dict[SequenceHash, ImmutableBlock]:
        """
        Every hash independently (no stop at a miss); one entry per distinct hash found.
        """

    def match_blocks_batch(self, hashes: Sequence[SequenceHash]) -> BlockBatch:
        """
        match_blocks, with the result kept in C++ as one BlockBatch (no per-block Python object): the fast path when the caller needs the count, ids or hashes.
        """

    @overload
    def release_blocks(self, blocks: BlockBatch) -> None:
        """Releases every block of a BlockBatch under one pool lock."""

    @overload
    def release_blocks(self, blocks: Sequence[ImmutableBlock]) -> None:
        """
        Releases the handles under one pool lock, exactly as closing them in order. Raises ForeignBlock, releasing nothing, for a block of another manager.
        """

    def reset_inactive_pool(self) -> int:
        """Evicts every cached block to the free list; returns how many."""

    def check_invariants(self) -> None:
        """
        Raises RuntimeError if the pool's bookkeeping is inconsistent (O(pool size)).
        """

    def metrics(self) -> dict[str, int]:
        """The manager's metrics snapshot: the C++ field names."""

    @property
    def id(self) -> int:
        """Process-unique id of the pool."""

    @property
    def tier(self) -> str:
        """"G1", "G2" or "G3"."""

    @property
    def total_blocks(self) -> int:
        """Number of slots."""

    @property
    def available_blocks(self) -> int:
        """Free + inactive slots (fenced ones excluded), one consistent snapshot."""

    @property
    def block_size(self) -> int:
        """Tokens per block."""

    @property
    def registry(self) -> BlockRegistry:
        """The registry this manager uses."""
