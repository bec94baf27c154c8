"""How the data checks read a column: its type as the schema names it ("integer", "float",
"boolean", "string", "datetime"), its values as floats or strings, and its share of nulls.
Separate because the schema and quality checks (data.py) and the drift checks (drift.py) must
read a column the same way, and neither should import the other for it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NUMERIC = ("integer", "float")
_OBJECT_TYPES = {
    "boolean": "boolean",
    "integer": "integer",
    "floating": "float",
    "mixed-integer-float": "float",
    "decimal": "float",
    "datetime64": "datetime",
    "datetime": "datetime",
    "date": "datetime",
}


def column_type(series: pd.Series) -> str:
    """ "integer" | "float" | "boolean" | "string" | "datetime" (categories count as strings)."""
    dtype = series.dtype
    if isinstance(dtype, (pd.CategoricalDtype, pd.StringDtype)):
        return "string"
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_object_dtype(dtype):
        return _OBJECT_TYPES.get(pd.api.types.infer_dtype(series, skipna=True), "string")
    return "string"


def as_floats(values: pd.Series) -> np.ndarray:
    return np.asarray(values.to_numpy(dtype=np.float64, na_value=np.nan))


def as_strings(values: pd.Series) -> pd.Series:
    return values if isinstance(values.dtype, pd.StringDtype) else values.astype(str)


def null_rate_of(series: pd.Series) -> float:
    return float(series.isna().mean()) if len(series) else 0.0
