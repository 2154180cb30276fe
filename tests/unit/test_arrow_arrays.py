"""Arrow arrays from Python values without pandas: equal to pyarrow's own, and pandas stays unloaded."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime

import pyarrow as pa
import pytest

from airflow_backfill_provider.historian.arrow_arrays import arrow_array, arrow_type_of


@pytest.mark.parametrize(
    ("values", "type_"),
    [
        (["Line1.Flow", "Tag-ä€😀", "", None, "x" * 300], pa.string()),
        ([0, -(2**63), 2**63 - 1, None, 7], pa.int64()),
        ([0.5, -1e308, None, float("inf")], pa.float64()),
        (
            [datetime(2025, 1, 1), datetime(1900, 1, 1, 0, 0, 0, 1), None, datetime(2999, 12, 31, 23, 59)],
            pa.timestamp("us"),
        ),
        ([], pa.string()),
        ([None] * 9, pa.int64()),
    ],
)
def test_equal_to_pyarrows_own_array(values, type_):
    built = arrow_array(values, type_)
    built.validate(full=True)
    assert built.equals(pa.array(values, type_)) and built.null_count == sum(v is None for v in values)
    assert built.to_pylist() == values


def test_types_of_bind_values():
    assert [arrow_type_of(v) for v in ("a", 1, True, 1.5, datetime(2025, 1, 1), None)] == [
        pa.string(), pa.int64(), pa.int64(), pa.float64(), pa.timestamp("us"), pa.string(),
    ]  # fmt: skip


def test_refuses_what_it_cannot_build():
    with pytest.raises(TypeError, match="not bool"):
        arrow_array([True], pa.bool_())
    with pytest.raises(ValueError, match="naive"):
        arrow_array([datetime.now().astimezone()], pa.timestamp("us"))


def test_pandas_is_not_imported():
    """The point of the module: pa.array() would import pandas (seconds per task process)."""
    probe = (
        "import sys, pyarrow as pa\n"
        "from datetime import datetime\n"
        "from airflow_backfill_provider.historian.arrow_arrays import arrow_array\n"
        "arrow_array(['a', None], pa.string()); arrow_array([datetime(2025, 1, 1)], pa.timestamp('us'))\n"
        "print('pandas' in sys.modules)\n"
        "pa.array([1])\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]  # ours does not; pyarrow's own does (the check can fail)
