"""kvbm's exceptions: the C++ exception classes of the same names, raised by the extension.

KvbmError is the base of all. Errors about bad arguments also derive from ValueError, so generic
callers can catch them as such; CudaError derives from RuntimeError. A call that raises leaves
the caller's handles with the caller (or returned to their pool), never consumed half-way.
"""


class KvbmError(Exception):
    """Base of every error kvbm raises."""


class ConfigError(KvbmError, ValueError):
    """Invalid configuration; the message names the offending setting."""


class BlockSizeMismatch(KvbmError, ValueError):
    """A block was completed or staged with a size other than its pool's.

    The block is untouched and still the caller's. ``expected`` is the pool's block size,
    ``actual`` the size given.
    """

    expected: int
    actual: int


class InvalidHandle(KvbmError):
    """A handle was used after it was released (closed, consumed by a transition or passed to a
    batch call): it names no slot."""


class PositionOutOfRange(KvbmError, ValueError):
    """A sequence-hash position outside the representable range (>= 2**24)."""


class ForeignBlock(KvbmError, ValueError):
    """A block handed to a manager that does not own it; nothing was consumed."""


class AttachmentError(KvbmError):
    """A registry attachment was used in two incompatible modes."""


class CudaError(KvbmError, RuntimeError):
    """A CUDA runtime call failed (only raised by builds with CUDA)."""


class ScheduleError(KvbmError):
    """A SchedulableSequence.schedule_* (or match) call was refused; nothing changed.

    ``kind`` is a ``kvbm.ScheduleErrorKind``; ``needed`` is how many blocks an
    ``AllocationFailed`` schedule needed (0 for other kinds).
    """

    kind: object
    needed: int


class ApplyError(KvbmError):
    """An apply_*, revert, release, reacquire or append on a sequence was refused; nothing
    changed. ``kind`` is a ``kvbm.ApplyErrorKind``."""

    kind: object


class KvEventsError(KvbmError, RuntimeError):
    """A ZmqEventPublisher could not be set up (bad endpoint, address in use; the message names
    it), or this kvbm was built without ZeroMQ (``kvbm.HAS_ZMQ`` is False)."""
