from collections.abc import Callable, Sequence
import enum
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

    def __init__(self, tier: str, block_count: int, block_size: int = 16, registry: BlockRegistry | None = None, backend: str = 'lineage', duplication: str = 'allow', reset_on_release: bool = False, event_sink: KvEventSink | None = None, event_policy: str = 'all', event_medium: str | None = None) -> None:
        """
        tier: "G1", "G2" or "G3"; block_size: a power of two in 1..1024; registry: shared across tiers (None: a private one); backend: "lineage", "lru", "fifo" or "multi-lru"; duplication: "allow" or "reject"; event_sink: a KvEventSink the pool reports its KV events to (None: no events, no cost); event_policy: "all" or "power-of-two" (only blocks at positions 16, 32, ..., 65536); event_medium: the medium events name (None: "GPU", "CPU", "DISK" by tier; "": none). Bad arguments raise ConfigError (a ValueError) naming the problem.
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

class SequenceStateKind(enum.Enum):
    """Where a SchedulableSequence is in its two-phase protocol."""

    Idle = 0
    """Nothing scheduled."""

    PrefillScheduled = 1
    """A prefill chunk is scheduled (apply_prefill or revert_schedule next)."""

    DecodeScheduled = 2
    """A decode step is scheduled (apply_decode or revert_schedule next)."""

    SpeculativeScheduled = 3
    """
    A speculative step is scheduled (apply_speculative or revert_schedule next).
    """

class DecodeOutcome(enum.Enum):
    """What apply_decode / apply_speculative did."""

    Continue = 0
    """No block completed; output remains."""

    BlockCompleted = 1
    """A block's KV became complete and the block was registered."""

    MaxLength = 2
    """max_output_tokens reached."""

    BlockCompletedAndMaxLength = 3
    """Both: a block was registered and max_output_tokens reached."""

class SequenceEventKind(enum.Enum):
    """The transition a SequenceEvent reports."""

    Created = 0
    """The sequence was built."""

    PrefixMatched = 1
    """match_and_add_prefix ran."""

    PrefillScheduled = 2
    """schedule_prefill ran."""

    PrefillApplied = 3
    """apply_prefill ran."""

    DecodeScheduled = 4
    """schedule_decode ran."""

    DecodeApplied = 5
    """apply_decode ran."""

    SpeculativeScheduled = 6
    """schedule_speculative ran."""

    SpeculativeApplied = 7
    """apply_speculative ran."""

    ScheduleReverted = 8
    """revert_schedule ran."""

    UnassignedDropped = 9
    """drop_unassigned released blocks."""

    Released = 10
    """release ran (preemption)."""

    Reacquired = 11
    """reacquire ran (see `success`)."""

class ScheduleErrorKind(enum.Enum):
    """Why a schedule_* call was refused."""

    NotIdle = 0
    """A schedule or match while another operation is scheduled."""

    PrefillOverrun = 1
    """The chunk would go past the tokens to prefill."""

    PrefillComplete = 2
    """schedule_prefill with nothing left to prefill."""

    PrefillNotComplete = 3
    """Decode or speculative before prefill finished."""

    AllocationFailed = 4
    """The manager could not supply the blocks (`needed`); nothing was taken."""

    GenerationComplete = 5
    """max_output_tokens already generated."""

    WrongDanglingCount = 6
    """Decode or speculative need exactly one token whose KV is not computed."""

class ApplyErrorKind(enum.Enum):
    """Why an apply_*, revert, release, reacquire or append was refused."""

    WrongState = 0
    """The operation is not valid in the current state."""

    TokenOnNonFinalChunk = 1
    """apply_prefill got a token on a chunk that does not end prefill."""

    MissingTokenOnFinalChunk = 2
    """apply_prefill got no token on the chunk that ends prefill."""

    AcceptedExceedsScheduled = 3
    """apply_speculative accepted more tokens than drafts scheduled."""

    AppendExceedsRemaining = 4
    """Appending would go past max_output_tokens."""

class SequenceState:
    """
    A SchedulableSequence's state: `kind`, `num_tokens` (the scheduled chunk, or the drafts), `blocks_allocated` (what the schedule call allocated). Both 0 when Idle.
    """

    def __init__(self) -> None:
        """The Idle state (for comparisons)."""

    @property
    def kind(self) -> SequenceStateKind:
        """The SequenceStateKind."""

    @property
    def num_tokens(self) -> int:
        """Prefill: the chunk; speculative: the drafts; otherwise 0."""

    @property
    def blocks_allocated(self) -> int:
        """Blocks the schedule call allocated (what revert_schedule gives back)."""

    def __eq__(self, arg: object, /) -> bool: ...

    def __repr__(self) -> str: ...

class SequenceEvent:
    """
    One transition of a SchedulableSequence, passed to its delegate. Fields that do not apply to `kind` are zero / empty / None.
    """

    @property
    def kind(self) -> SequenceEventKind:
        """The SequenceEventKind."""

    @property
    def num_tokens(self) -> int:
        """
        Created: prompt tokens; Prefill*: the chunk; SpeculativeScheduled: drafts; SpeculativeApplied: tokens accepted.
        """

    @property
    def blocks_allocated(self) -> int:
        """*Scheduled, Reacquired."""

    @property
    def blocks_registered(self) -> int:
        """*Applied (Reacquired: always 0, the KV must be recomputed)."""

    @property
    def blocks_released(self) -> int:
        """SpeculativeApplied, ScheduleReverted, UnassignedDropped, Released."""

    @property
    def blocks_matched(self) -> int:
        """PrefixMatched, Reacquired."""

    @property
    def token(self) -> int | None:
        """
        PrefillApplied (final chunk) and DecodeApplied: the token; otherwise None.
        """

    @property
    def success(self) -> bool:
        """Reacquired: whether it succeeded."""

    @property
    def evicted(self) -> list[SequenceHash]:
        """
        Cached blocks the allocation of a *Scheduled or Reacquired event evicted, in eviction order (what a tiered cache offloads).
        """

    def __repr__(self) -> str: ...

class MultimodalItem:
    """
    One multimodal item spliced into the prompt as placeholder tokens: `hash` identifies its content; it covers prompt tokens [offset, offset + length).
    """

    def __init__(self, hash: int, offset: int, length: int) -> None:
        """An item (a zero length is refused when added)."""

    @property
    def hash(self) -> int:
        """The content hash (64-bit)."""

    @hash.setter
    def hash(self, arg: int, /) -> None: ...

    @property
    def offset(self) -> int:
        """First prompt token covered."""

    @offset.setter
    def offset(self, arg: int, /) -> None: ...

    @property
    def length(self) -> int:
        """Tokens covered."""

    @length.setter
    def length(self, arg: int, /) -> None: ...

    def __eq__(self, arg: object, /) -> bool: ...

    def __repr__(self) -> str: ...

class HashKeys:
    """
    What besides the tokens names a KV block: tenant salt, LoRA adapter and multimodal items, folded into every block's hash so blocks computed under different keys never match. Empty keys hash exactly as TokenBlockSequence(tokens, block_size, salt=0). A value: sequences keep a copy.
    """

    def __init__(self, cache_salt: str = '', lora_name: str = '', multimodal_items: Sequence[MultimodalItem] = []) -> None:
        """
        cache_salt: a tenant's secret (requests with different salts share no block); lora_name: the adapter (empty: the base model); multimodal_items: MultimodalItems, in any order. A zero-length item raises ConfigError.
        """

    def set_cache_salt(self, salt: str) -> HashKeys:
        """Sets the tenant salt (empty: none); returns self."""

    def set_lora_name(self, name: str) -> HashKeys:
        """Sets the LoRA adapter name (empty: the base model); returns self."""

    def add_multimodal_item(self, item: MultimodalItem) -> HashKeys:
        """
        Adds an item (kept sorted by offset); a zero length raises ConfigError. Returns self.
        """

    @property
    def cache_salt(self) -> str:
        """The tenant salt."""

    @property
    def lora_name(self) -> str:
        """The LoRA adapter name."""

    @property
    def multimodal_items(self) -> list[MultimodalItem]:
        """The items, sorted by offset (a new list)."""

    @property
    def empty(self) -> bool:
        """True when the keys change no hash."""

    @property
    def seed(self) -> int:
        """The seed of every block's token hash (0 for no salt and no LoRA)."""

    def block_extra_keys(self, block_index: int, block_size: int) -> list[int]:
        """
        Hashes of the items overlapping block `block_index`, in offset order (a KV event's extra_keys for that block).
        """

    def block_hash(self, tokens: Sequence[int], block_index: int) -> int:
        """
        The keyed block hash of one full block whose first token is at block_index * len(tokens).
        """

    def validate(self, prompt_tokens: int) -> None:
        """
        Raises ConfigError when an item does not lie inside a prompt of that many tokens.
        """

    def __eq__(self, arg: object, /) -> bool: ...

    def __repr__(self) -> str: ...

def keyed_sequence_hashes(tokens: Sequence[int], block_size: int, keys: HashKeys) -> list[SequenceHash]:
    """
    The sequence hashes of the full blocks of `tokens` under `keys` (position 0 first); with empty keys equal to TokenBlockSequence(tokens, block_size).sequence_hashes().
    """

class RequestSequence:
    """
    One request's tokens and the blocks that hold its KV, managed directly through a BlockManager of its tier. The blocks form one row in token order (page_indices()): assigned (registered) ++ staged ++ unassigned (fresh). A block is registered only when the caller says its KV exists; a partial block never is. A call that raises changed nothing. Closing (or collecting) it gives every block back, last first. Use one sequence from one thread at a time; manager calls release the GIL.
    """

    def __init__(self, prompt: Sequence[int], max_output_tokens: int, block_size: int, hash_keys: HashKeys | None = None, tier: str = 'G1') -> None:
        """
        prompt: token ids; block_size: a power of two equal to the manager's; tier: the tier of the managers it will use. Bad settings raise ConfigError.
        """

    def match_and_add_prefix(self, manager: BlockManager) -> int:
        """
        Adopts the longest cached prefix (never covering the last token) as assigned blocks; returns how many. ApplyError(WrongState) if blocks are held.
        """

    def allocate_blocks(self, n: int, manager: BlockManager) -> bool:
        """
        Appends `n` fresh blocks to the row, all or nothing: False (nothing taken) when the pool cannot supply them.
        """

    def stage_pending(self) -> int:
        """
        Stages every unassigned block whose tokens are complete; returns how many.
        """

    def register_staged(self, manager: BlockManager) -> int:
        """
        Registers every staged block (they become matchable); returns how many.
        """

    def complete_and_register_pending(self, manager: BlockManager, max_blocks: int | None = None) -> int:
        """
        Stages and registers every block whose tokens are complete (only among the first `max_blocks` of the row when given): call it once their KV is computed. Returns how many were registered.
        """

    def append_token(self, token: int) -> int | None:
        """
        Appends one generated token; returns the index of the block it filled, or None. Allocates and registers nothing. ApplyError(AppendExceedsRemaining) past max_output_tokens.
        """

    def release(self) -> None:
        """
        Gives every block back, last block first (unassigned, staged, assigned). Idempotent; the sequence stays usable (see reacquire).
        """

    def reacquire(self, manager: BlockManager) -> bool:
        """
        After release(): re-matches what is still cached and allocates blocks for the rest, all or nothing (False: nothing held). ApplyError(WrongState) while blocks are held.
        """

    def drop_last_unassigned(self, n: int) -> int:
        """Drops up to `n` unassigned blocks, last first; returns how many."""

    def full_blocks(self, tokens: int) -> int:
        """Full blocks in `tokens` tokens (floor)."""

    def blocks_for(self, tokens: int) -> int:
        """Blocks needed to hold `tokens` tokens (ceil)."""

    @property
    def tier(self) -> str:
        """
        The tier ("G1", "G2", "G3") of the managers this sequence works with; "released" after close().
        """

    @property
    def valid(self) -> bool:
        """False once the sequence was closed."""

    def close(self) -> None:
        """
        Drops the sequence now: every block it holds goes back, last block first (idempotent); later use raises InvalidHandle.
        """

    def __enter__(self) -> RequestSequence: ...

    def __exit__(self, exc_type: object | None, exc: object | None, tb: object | None) -> None:
        """Closes the sequence (the `with` block's end)."""

    @property
    def num_input_tokens(self) -> int:
        """Prompt tokens."""

    @property
    def total_tokens(self) -> int:
        """Tokens held: prompt plus generated."""

    @property
    def generated_tokens(self) -> int:
        """Tokens generated so far."""

    @property
    def max_output_tokens(self) -> int:
        """The most tokens the request may generate."""

    @property
    def remaining_tokens(self) -> int:
        """max_output_tokens - generated_tokens."""

    @property
    def num_blocks(self) -> int:
        """Full token blocks (each has a sequence hash)."""

    @property
    def assigned_blocks(self) -> int:
        """Registered blocks held (matchable by other requests)."""

    @property
    def staged_blocks(self) -> int:
        """Staged (complete, not yet registered) blocks held."""

    @property
    def unassigned_blocks(self) -> int:
        """Fresh (mutable) blocks held."""

    @property
    def num_held(self) -> int:
        """Blocks held: the length of page_indices()."""

    @property
    def prefix_matched_blocks(self) -> int:
        """Blocks the last prefix match (or reacquire) adopted from the cache."""

    @property
    def new_tokens_for_prefill(self) -> int:
        """Tokens not covered by the cache hit (what prefill must compute)."""

    @property
    def block_size(self) -> int:
        """Tokens per block (a power of two, equal to the manager's)."""

    @property
    def is_complete(self) -> bool:
        """True once max_output_tokens were generated."""

    @property
    def hash_keys(self) -> HashKeys:
        """A copy of the sequence's HashKeys."""

    def tokens(self) -> list[int]:
        """Every token held (prompt, then generated), as a new list."""

    def sequence_hashes(self) -> list[SequenceHash]:
        """Sequence hashes of the full token blocks, position 0 first."""

    def page_indices(self) -> list[int]:
        """
        The row a device block table needs: the held blocks' ids in token order (re-read it after each registration: under duplication="reject" a block may be answered with the existing primary).
        """

    def __repr__(self) -> str: ...

class SchedulableSequence:
    """
    The two-phase protocol an engine drives every step over a request: schedule_* before the forward pass (allocates the blocks the step's KV needs, all or nothing), apply_* after it (registers exactly the blocks whose KV is now complete), or revert_schedule. A refused call raises ScheduleError / ApplyError with its `kind` and changes nothing. Closing (or collecting) it gives every block back, last first. Use one sequence from one thread at a time; manager calls release the GIL.
    """

    def __init__(self, tokens: Sequence[int], max_output_tokens: int, block_size: int, hash_keys: HashKeys | None = None, delegate: Callable[[SequenceEvent], None] | None = None, tier: str = 'G1') -> None:
        """
        tokens: the prompt (non-empty); block_size: a power of two equal to the manager's; delegate: called with each SequenceEvent, on the calling thread, after the transition (its exceptions go to sys.unraisablehook; it must not call back into this sequence); tier: the tier of the managers it will use. Bad settings raise ConfigError.
        """

    def match_and_add_prefix(self, manager: BlockManager) -> int:
        """
        Idle, before prefill and holding nothing: adopts the longest cached prefix (never the last token) and advances prefill_position / kv_position over it; returns the blocks matched.
        """

    def schedule_prefill(self, n_tokens: int, manager: BlockManager) -> None:
        """
        Schedules the next `n_tokens` of the prefill target and allocates the blocks their KV needs.
        """

    def apply_prefill(self, token: int | None, manager: BlockManager) -> None:
        """
        Commits the scheduled chunk and registers the blocks its KV completed. `token` (the first sampled token) is required on the chunk that ends prefill while output remains, and must be None otherwise.
        """

    def schedule_decode(self, manager: BlockManager) -> None:
        """
        Schedules one decode step (the dangling token's KV); allocates a block when that token starts one.
        """

    def apply_decode(self, token: int, manager: BlockManager) -> DecodeOutcome:
        """
        Commits the step: the dangling token's KV is computed, `token` becomes the dangling token. Returns a DecodeOutcome.
        """

    def schedule_speculative(self, n: int, manager: BlockManager) -> None:
        """
        Schedules the dangling token plus `n` drafts (clamped to the remaining output) and allocates the blocks their KV needs.
        """

    def apply_speculative(self, accepted: Sequence[int], manager: BlockManager) -> DecodeOutcome:
        """
        Commits the accepted tokens (at most the drafts scheduled): registers the blocks whose KV completed and releases blocks beyond the tokens now held. Returns a DecodeOutcome.
        """

    def revert_schedule(self) -> None:
        """
        Undoes the scheduled operation: the blocks it allocated go back, last first.
        """

    def drop_unassigned(self, n: int) -> int:
        """
        Idle: releases up to `n` unassigned blocks, last first, never one holding computed KV; returns how many.
        """

    def release(self) -> None:
        """
        Idle: gives every block back, last first (preemption). Positions go back to 0 and the prefill target becomes every token held, to be recomputed.
        """

    def reacquire(self, manager: BlockManager) -> bool:
        """
        Idle and holding nothing: re-matches what is still cached and allocates blocks for the rest of the prefill target, all or nothing (False: nothing changed). Continue with schedule_prefill.
        """

    def append_tokens(self, tokens: Sequence[int]) -> None:
        """
        Idle: appends tokens whose KV is not computed; ApplyError(AppendExceedsRemaining), appending nothing, past max_output_tokens.
        """

    @property
    def state(self) -> SequenceState:
        """The SequenceState."""

    @property
    def prefill_position(self) -> int:
        """Tokens of the prefill target processed."""

    @property
    def prefill_target(self) -> int:
        """
        Tokens prefill must process: the prompt, or every token held at the last release().
        """

    @property
    def is_prefill_complete(self) -> bool:
        """prefill_position >= prefill_target."""

    @property
    def kv_position(self) -> int:
        """Tokens whose KV is computed."""

    @property
    def tail_tokens(self) -> int:
        """total_tokens - kv_position (decode needs exactly 1)."""

    @property
    def tier(self) -> str:
        """
        The tier ("G1", "G2", "G3") of the managers this sequence works with; "released" after close().
        """

    @property
    def valid(self) -> bool:
        """False once the sequence was closed."""

    def close(self) -> None:
        """
        Drops the sequence now: every block it holds goes back, last block first (idempotent); later use raises InvalidHandle.
        """

    def __enter__(self) -> SchedulableSequence: ...

    def __exit__(self, exc_type: object | None, exc: object | None, tb: object | None) -> None:
        """Closes the sequence (the `with` block's end)."""

    @property
    def num_input_tokens(self) -> int:
        """Prompt tokens."""

    @property
    def total_tokens(self) -> int:
        """Tokens held: prompt plus generated."""

    @property
    def generated_tokens(self) -> int:
        """Tokens generated so far."""

    @property
    def max_output_tokens(self) -> int:
        """The most tokens the request may generate."""

    @property
    def remaining_tokens(self) -> int:
        """max_output_tokens - generated_tokens."""

    @property
    def num_blocks(self) -> int:
        """Full token blocks (each has a sequence hash)."""

    @property
    def assigned_blocks(self) -> int:
        """Registered blocks held (matchable by other requests)."""

    @property
    def staged_blocks(self) -> int:
        """Staged (complete, not yet registered) blocks held."""

    @property
    def unassigned_blocks(self) -> int:
        """Fresh (mutable) blocks held."""

    @property
    def num_held(self) -> int:
        """Blocks held: the length of page_indices()."""

    @property
    def prefix_matched_blocks(self) -> int:
        """Blocks the last prefix match (or reacquire) adopted from the cache."""

    @property
    def new_tokens_for_prefill(self) -> int:
        """Tokens not covered by the cache hit (what prefill must compute)."""

    @property
    def block_size(self) -> int:
        """Tokens per block (a power of two, equal to the manager's)."""

    @property
    def is_complete(self) -> bool:
        """True once max_output_tokens were generated."""

    @property
    def hash_keys(self) -> HashKeys:
        """A copy of the sequence's HashKeys."""

    def tokens(self) -> list[int]:
        """Every token held (prompt, then generated), as a new list."""

    def sequence_hashes(self) -> list[SequenceHash]:
        """Sequence hashes of the full token blocks, position 0 first."""

    def page_indices(self) -> list[int]:
        """
        The row a device block table needs: the held blocks' ids in token order (re-read it after each registration: under duplication="reject" a block may be answered with the existing primary).
        """

    def __repr__(self) -> str: ...

def wire_hash(hash: SequenceHash) -> int:
    """
    The u64 a router sees for a block: mixes its position with the part of its chained hash its child keeps, so parent_wire_hash(child) == wire_hash(parent). Stable across runs and processes.
    """

def parent_wire_hash(hash: SequenceHash) -> int | None:
    """
    wire_hash of the block's parent, computed from the block alone; None at position 0.
    """

class KvEvent:
    """
    One KV event (immutable). kind: "stored" (the hash became matchable), "removed" (it stopped being matchable) or "cleared" (every hash of the pool stopped being matchable; the block fields are then empty: sequence_hash None, block_hash 0, no tokens).
    """

    @property
    def kind(self) -> str:
        """"stored", "removed" or "cleared"."""

    @property
    def sequence_hash(self) -> SequenceHash | None:
        """The block's SequenceHash (None for "cleared")."""

    @property
    def block_hash(self) -> int:
        """wire_hash(sequence_hash); 0 for "cleared"."""

    @property
    def parent_hash(self) -> int | None:
        """
        "stored": wire hash of the parent block, None at position 0; None otherwise.
        """

    @property
    def position(self) -> int:
        """The block's index in its sequence."""

    @property
    def token_ids(self) -> list[int]:
        """
        "stored": the block's tokens when it was completed from a TokenBlock and the sink wants tokens; empty otherwise.
        """

    @property
    def block_size(self) -> int:
        """Tokens per block of the reporting pool."""

    @property
    def medium(self) -> str | None:
        """
        The pool's medium ("GPU", "CPU", "DISK" by tier, or the manager's event_medium); None when the manager has none.
        """

    @property
    def manager_id(self) -> int:
        """The reporting manager's id."""

    @property
    def lora_name(self) -> str | None:
        """
        "stored": the LoRA name of the HashKeys the block was staged with, else None.
        """

    @property
    def cache_salt(self) -> str | None:
        """"stored": the cache salt of the block's HashKeys, else None."""

    @property
    def extra_keys(self) -> tuple[int | str, ...] | None:
        """
        "stored" with HashKeys: vLLM's per-block extra_keys, as on the wire: the hashes of the multimodal items overlapping the block, then the LoRA name, then the cache salt on block 0; None when none applies or the block has no keys.
        """

    def __repr__(self) -> str: ...

class KvEventSink:
    """
    Where a BlockManager built with event_sink=... reports its KV events. Not constructible: use CallbackEventSink, BatchingEventSink or ZmqEventPublisher. One sink may serve several managers (events name their manager).
    """

    @property
    def wants_tokens(self) -> bool:
        """
        Whether managers copy token ids into stored events (fixed when a manager is built).
        """

class CallbackEventSink(KvEventSink):
    """
    Calls fn(events), events a list of KvEvent, in the order the pool changed, once per delivery. It runs on the thread that changed the pool (any thread, also a C++ one), with the GIL taken; one pool's deliveries never overlap. fn must be quick; it may call the manager (those events are delivered after it returns). An exception it raises goes to sys.unraisablehook; the pool is unaffected.
    """

    def __init__(self, fn: Callable[[list[KvEvent]], None], wants_tokens: bool = True) -> None:
        """
        wants_tokens=False: stored events carry no token ids (the managers skip copying them).
        """

class BatchingEventSink(KvEventSink):
    """
    Coalesces events into batches of at most max_events, delivered to `downstream` on a thread of its own when the oldest event is window_ms old or a batch is full, on flush() and when the sink is destroyed. Managers reporting to it only record their events; its thread drains them.
    """

    def __init__(self, downstream: KvEventSink, window_ms: float = 10.0, max_events: int = 1024, drain_threshold: int = 0) -> None:
        """
        downstream: any KvEventSink. drain_threshold: a manager holding this many undrained events asks for an early drain (0: 4 * max_events). Bad values raise ConfigError (a ValueError) naming the argument.
        """

    def flush(self) -> None:
        """
        Returns (GIL released) once every event received before the call was delivered downstream. Must not be called from the downstream's own delivery (it would wait for itself).
        """

    @property
    def batches_delivered(self) -> int:
        """Batches delivered downstream so far."""

class KvEventBatching:
    """How a publisher coalesces events into batches."""

    def __init__(self, window_ms: float = 10.0, max_events: int = 1024) -> None: ...

    @property
    def window_ms(self) -> float:
        """The oldest event waits at most this long (milliseconds)."""

    @window_ms.setter
    def window_ms(self, arg: float, /) -> None: ...

    @property
    def max_events(self) -> int:
        """At most this many events per batch."""

    @max_events.setter
    def max_events(self, arg: int, /) -> None: ...

class KvEventsConfig:
    """
    vLLM's KVEventsConfig fields and defaults for ZmqEventPublisher (plus batching and the socket linger).
    """

    def __init__(self, endpoint: str = 'tcp://*:5557', replay_endpoint: str = '', buffer_steps: int = 10000, hwm: int = 100000, max_queue_size: int = 100000, topic: str = '', data_parallel_rank: int = 0, batching: KvEventBatching | None = None, linger_ms: int = 1000) -> None:
        """
        endpoint: bound if it contains "*" or "::" or is ipc:// or inproc://, else connected (vLLM's rule); replay_endpoint "": no replay socket; batching None: KvEventBatching().
        """

    @property
    def endpoint(self) -> str: ...

    @endpoint.setter
    def endpoint(self, arg: str, /) -> None: ...

    @property
    def replay_endpoint(self) -> str: ...

    @replay_endpoint.setter
    def replay_endpoint(self, arg: str, /) -> None: ...

    @property
    def buffer_steps(self) -> int: ...

    @buffer_steps.setter
    def buffer_steps(self, arg: int, /) -> None: ...

    @property
    def hwm(self) -> int: ...

    @hwm.setter
    def hwm(self, arg: int, /) -> None: ...

    @property
    def max_queue_size(self) -> int: ...

    @max_queue_size.setter
    def max_queue_size(self, arg: int, /) -> None: ...

    @property
    def topic(self) -> str: ...

    @topic.setter
    def topic(self, arg: str, /) -> None: ...

    @property
    def data_parallel_rank(self) -> int: ...

    @data_parallel_rank.setter
    def data_parallel_rank(self, arg: int, /) -> None: ...

    @property
    def batching(self) -> KvEventBatching: ...

    @batching.setter
    def batching(self, arg: KvEventBatching, /) -> None: ...

    @property
    def linger_ms(self) -> int: ...

    @linger_ms.setter
    def linger_ms(self, arg: int, /) -> None: ...

class ZmqEventPublisher(KvEventSink):
    """
    Publishes vLLM-format KV event batches on a ZeroMQ PUB socket (and answers replay requests on a ROUTER socket), from a thread of its own: reporting managers only queue. Only in builds with kvbm::events (kvbm.HAS_ZMQ); otherwise construction raises KvEventsError.
    """

    def __init__(self, config: KvEventsConfig) -> None:
        """
        Binds or connects both sockets now; raises KvEventsError naming a bad endpoint.
        """

    def flush(self) -> None:
        """
        Returns (GIL released) once everything queued before the call has been sent.
        """

    def stats(self) -> dict[str, int]:
        """events_published, batches_published, batches_dropped, events_dropped."""

    @property
    def endpoint(self) -> str:
        """The PUB endpoint after the rank offset (tcp port 0: the port bound)."""

    @property
    def replay_endpoint(self) -> str:
        """The replay endpoint after the rank offset; "" without one."""
