"""Small Arrow arrays built from Python values without importing pandas.

pyarrow 26's ``pa.array()`` (and ``pa.scalar()``, and every constructor that goes through them)
imports pandas on its first call, to ask whether the input is a pandas object: 0.8–2.7 s in each
task process that only needs a handful of query parameters. These arrays come from their buffers
(``pa.Array.from_buffers``, a public constructor), for the few types the readers bind: strings,
64-bit integers, doubles and naive timestamps in microseconds. Rows of History never pass through
here: the drivers hand those over as Arrow already.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)


def arrow_array(values: Sequence[Any], type_: pa.DataType) -> pa.Array:
    """``values`` (``None`` for a null) as an array of ``type_``: string, int64, float64 or timestamp("us").

    Timestamps are naive datetimes (UTC wall time, as History holds it).
    """
    import pyarrow as pa

    n = len(values)
    validity = _validity(values)
    if pa.types.is_string(type_):
        encoded = [b"" if v is None else str(v).encode() for v in values]
        offsets = array("i", [0])
        for item in encoded:
            offsets.append(offsets[-1] + len(item))
        buffers = [validity, pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"".join(encoded))]
    elif pa.types.is_int64(type_):
        buffers = [validity, pa.py_buffer(array("q", [0 if v is None else int(v) for v in values]).tobytes())]
    elif pa.types.is_float64(type_):
        buffers = [
            validity,
            pa.py_buffer(array("d", [0.0 if v is None else float(v) for v in values]).tobytes()),
        ]
    elif pa.types.is_timestamp(type_) and type_.unit == "us" and type_.tz is None:
        micros = [0 if v is None else _micros(v) for v in values]
        buffers = [validity, pa.py_buffer(array("q", micros).tobytes())]
    else:
        raise TypeError(f"arrow_array builds string, int64, float64 and timestamp('us') arrays, not {type_}.")
    return pa.Array.from_buffers(type_, n, buffers, null_count=sum(v is None for v in values))


def arrow_type_of(value: Any) -> pa.DataType:
    """The Arrow type :func:`arrow_array` uses for one Python value (``None``: a null string)."""
    import pyarrow as pa

    if isinstance(value, int):  # bool too: SQLite has no boolean
        return pa.int64()
    if isinstance(value, float):
        return pa.float64()
    if isinstance(value, datetime):
        return pa.timestamp("us")
    return pa.string()


def _micros(value: datetime) -> int:
    if value.tzinfo is not None:
        raise ValueError(f"arrow_array takes naive (UTC wall time) datetimes, got {value!r}.")
    return (value - _EPOCH) // _MICROSECOND


def _validity(values: Sequence[Any]):
    """The validity bitmap (bit i set: value i is not null), or ``None`` when nothing is null."""
    import pyarrow as pa

    if all(v is not None for v in values):
        return None
    bits = bytearray((len(values) + 7) // 8)
    for i, v in enumerate(values):
        if v is not None:
            bits[i // 8] |= 1 << (i % 8)
    return pa.py_buffer(bytes(bits))
