"""C++ exceptions map to Python classes of the same names under kvbm.KvbmError."""

from __future__ import annotations

import pytest

import kvbm

HIERARCHY = {
    "ConfigError": (ValueError,),
    "BlockSizeMismatch": (ValueError,),
    "PositionOutOfRange": (ValueError,),
    "ForeignBlock": (ValueError,),
    "InvalidHandle": (),
    "AttachmentError": (),
    "CudaError": (RuntimeError,),
    "ScheduleError": (),
    "ApplyError": (),
}


@pytest.mark.parametrize("name,bases", HIERARCHY.items())
def test_every_error_is_a_kvbm_error(name, bases):
    cls = getattr(kvbm, name)
    assert issubclass(cls, kvbm.KvbmError)
    assert cls.__name__ == name
    for base in bases:
        assert issubclass(cls, base)
    assert cls.__doc__


def test_each_cpp_error_arrives_as_its_class(manager, seq):
    with pytest.raises(kvbm.ConfigError):
        kvbm.BlockManager("G1", 4, block_size=3)
    with pytest.raises(kvbm.PositionOutOfRange):
        kvbm.SequenceHash.from_parts(0, 0, 1 << 24)
    other = kvbm.BlockManager("G1", 4, block_size=8)
    block = other.allocate_blocks(1)[0]
    with pytest.raises(kvbm.BlockSizeMismatch) as info:
        block.complete(seq.blocks()[0])
    assert (info.value.expected, info.value.actual) == (8, 4)
    assert "expected 8" in str(info.value)
    staged = [block.stage(seq.sequence_hashes()[0], 8)]
    with pytest.raises(kvbm.ForeignBlock):
        manager.register_blocks(staged)
    staged[0].close()
    with pytest.raises(kvbm.InvalidHandle, match="MutableBlock.block_id"):
        block.block_id
    with pytest.raises(kvbm.KvbmError):  # caught through the base
        block.block_id
