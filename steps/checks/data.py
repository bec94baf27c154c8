"""Data checks of ``mlsteps gate``: the schema of the training data and quality rules.

The gate infers a schema from the training data and stores it with the model, so that later
gates judge new data against what the model was trained on (``check_schema``); and it applies
the team's quality rules to the evaluation data (``check_quality``). Its third data check,
drift between training and evaluation data, lives in drift.py (with its scipy import).
Every check is a ``Check`` (checks.py) with ``enforced=True``: the gate applies
``--warn-only``.

This module is imported only on a real run with data, so pandas and numpy are imported at its
top; the rules it applies (and their parsers) live in data_rules.py, which imports none.
Everything is vectorised per column: 100,000 rows × 20 features take a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from steps.checks.columns import NUMERIC, as_floats, as_strings, column_type, null_rate_of
from steps.checks.data_rules import ColumnRule, QualityRules, SchemaRules
from steps.checks.verdict import Check

SCHEMA_VERSION = 1


def infer_schema(df: pd.DataFrame, *, max_categories: int = 50) -> dict[str, Any]:
    """The schema of ``df`` as plain JSON values: ``{"version": 1, "rows": n, "columns": {name:
    {"type", "null_rate", "min"/"max" (numbers with a finite value), "values" (strings with at
    most ``max_categories`` distinct values)}}}``. Datetimes get no range: new data is later."""
    columns: dict[str, Any] = {}
    for name in df.columns:
        series = df[name]
        kind = column_type(series)
        values = series.dropna()
        spec: dict[str, Any] = {"type": kind, "null_rate": null_rate_of(series)}
        if kind in NUMERIC:
            finite = values[np.isfinite(as_floats(values))]
            if len(finite):
                convert = int if kind == "integer" else float
                spec["min"], spec["max"] = convert(finite.min()), convert(finite.max())
        elif kind == "string":
            distinct = as_strings(values).unique()
            if len(distinct) <= max_categories:
                spec["values"] = sorted(str(value) for value in distinct)
        columns[str(name)] = spec
    return {"version": SCHEMA_VERSION, "rows": len(df), "columns": columns}


def check_schema(
    schema: dict[str, Any], df: pd.DataFrame, rules: SchemaRules, *, ignore: Sequence[str] = ()
) -> list[Check]:
    """One Check per schema column (named after it), failing when the column is missing, has
    another type, has more values outside the training range or more unseen categories than
    the tolerances allow, or more nulls than in training plus the tolerance; the detail lists
    every violation. Columns of ``df`` the schema does not have get a passing Check each
    ("not in the training schema"), so a column added upstream shows in the report.
    ValueError when ``schema`` is not one infer_schema wrote."""
    if not isinstance(schema, dict) or schema.get("version") != SCHEMA_VERSION:
        raise ValueError(
            f"the stored schema is not a version-{SCHEMA_VERSION} schema written by mlsteps "
            "gate; infer it again from the training data."
        )
    by_name = {str(name): name for name in df.columns}
    checks: list[Check] = []
    for name, spec in schema["columns"].items():
        if name in ignore:
            continue
        if name not in by_name:
            checks.append(
                _schema(name, False, spec["type"], "missing", "the data has no such column")
            )
        else:
            checks.append(_column_against(name, spec, df[by_name[name]], rules))
    for name in by_name:
        if name not in schema["columns"] and name not in ignore:
            kind = column_type(df[by_name[name]])
            checks.append(_schema(name, True, "—", kind, "not in the training schema"))
    return checks


def _column_against(
    name: str, spec: dict[str, Any], series: pd.Series, rules: SchemaRules
) -> Check:
    expected, actual = spec["type"], column_type(series)
    values = series.dropna()
    limits, measured, violations = [expected], [actual], []
    if len(values) and not _same_type(expected, actual, values):
        violations.append(f"holds {actual} values, the training data held {expected}")
    elif expected in NUMERIC and "min" in spec and len(values):
        low, high = spec["min"], spec["max"]
        numbers = as_floats(values)
        below, above = int((numbers < low).sum()), int((numbers > high).sum())
        share = (below + above) / len(numbers)
        limits.append(f"≤ {_pct(rules.range_tolerance)} outside [{low:g}, {high:g}]")
        measured.append(f"{_pct(share)} outside")
        if share > rules.range_tolerance:
            violations.append(
                f"{_pct(share)} of values outside the training range [{low:g}, {high:g}] "
                f"({below:,} below, {above:,} above; seen {numbers.min():g} to "
                f"{numbers.max():g}; tolerance {_pct(rules.range_tolerance)})"
            )
    elif expected == "string" and "values" in spec and len(values):
        strings = as_strings(values)
        unseen = strings[~strings.isin(spec["values"])]
        share = len(unseen) / len(strings)
        limits.append(f"≤ {_pct(rules.unseen_tolerance)} unseen")
        measured.append(f"{_pct(share)} unseen")
        if share > rules.unseen_tolerance:
            violations.append(
                f"{_pct(share)} of values are categories training never saw "
                f"({_examples(unseen.value_counts().index)}; "
                f"tolerance {_pct(rules.unseen_tolerance)})"
            )
    null_rate, null_limit = null_rate_of(series), spec["null_rate"] + rules.null_tolerance
    limits.append(f"nulls ≤ {_pct(null_limit)}")
    measured.append(f"nulls {_pct(null_rate)}")
    if null_rate > null_limit:
        violations.append(
            f"{_pct(null_rate)} nulls, training had {_pct(spec['null_rate'])} "
            f"(tolerance +{_pct(rules.null_tolerance)})"
        )
    return Check(
        kind="schema",
        name=name,
        passed=not violations,
        threshold="; ".join(limits),
        candidate="; ".join(measured),
        detail="; ".join(violations) or "matches the training schema",
    )


def _same_type(expected: str, actual: str, values: pd.Series) -> bool:
    if expected == actual or (expected, actual) == ("float", "integer"):
        return True
    if (expected, actual) == ("integer", "float"):
        # A column of integers with a null in it arrives as floats: whole floats are integers.
        numbers = as_floats(values)
        return bool(np.all(np.isfinite(numbers) & (numbers == np.floor(numbers))))
    return False


def _schema(name: str, passed: bool, threshold: str, candidate: str, detail: str) -> Check:
    return Check(
        kind="schema",
        name=name,
        passed=passed,
        threshold=threshold,
        candidate=candidate,
        detail=detail,
    )


def check_quality(rules: QualityRules, df: pd.DataFrame) -> list[Check]:
    """The row count, every column's null rate (where a maximum is set, a column's own before
    the global one), then each column rule as its own Check ("age (min)", "id (unique)", …).
    A rule on a column the data does not have is a failing Check named after the column."""
    checks: list[Check] = []
    rows = len(df)
    if rules.min_rows is not None:
        checks.append(
            _quality(
                "rows",
                rows >= rules.min_rows,
                f"≥ {rules.min_rows:,}",
                rows,
                f"{rows:,} rows, at least {rules.min_rows:,} wanted",
            )
        )
    for column in df.columns:
        own = rules.columns.get(str(column), ColumnRule())
        limit = own.max_null_rate if own.max_null_rate is not None else rules.max_null_rate
        if limit is not None:
            series = df[column]
            rate, nulls = null_rate_of(series), int(series.isna().sum())
            detail = f"{nulls:,} of {rows:,} rows are null"
            checks.append(
                _quality(f"{column} (null rate)", rate <= limit, f"≤ {limit:g}", rate, detail)
            )
    by_name = {str(name): name for name in df.columns}
    for name, rule in rules.columns.items():
        if name in by_name:
            checks.extend(_column_rules(name, rule, df[by_name[name]]))
        else:
            detail = f"the data has no column {name!r}, which the quality rules name"
            checks.append(_quality(name, False, "present", "missing", detail))
    return checks


def _column_rules(name: str, rule: ColumnRule, series: pd.Series) -> Iterable[Check]:
    values = series.dropna()
    kind = column_type(series)
    if rule.not_null:
        nulls = len(series) - len(values)
        yield _quality(f"{name} (not-null)", nulls == 0, "no nulls", nulls, f"{nulls:,} null rows")
    for label, bound in (("min", rule.min), ("max", rule.max)):
        if bound is None:
            continue
        check_name, threshold = f"{name} ({label})", f"{'≥' if label == 'min' else '≤'} {bound:g}"
        if kind not in NUMERIC and len(values):
            yield _quality(check_name, False, threshold, kind, f"holds {kind} values, not numbers")
            continue
        numbers = as_floats(values)
        bad = int((numbers < bound).sum() if label == "min" else (numbers > bound).sum())
        seen = float(numbers.min() if label == "min" else numbers.max()) if len(numbers) else None
        side = "below" if label == "min" else "above"
        detail = f"{bad:,} of {len(numbers):,} values {side} {bound:g}"
        yield _quality(check_name, bad == 0, threshold, seen, detail)
    if rule.allowed is not None:
        if kind == "string":
            strings = as_strings(values)
            others = strings[~strings.isin([str(value) for value in rule.allowed])]
        else:
            others = values[~values.isin(list(rule.allowed))]
        detail = f"{len(others):,} of {len(values):,} values are not allowed"
        if len(others):
            detail += f": {_examples(others.value_counts().index)}"
        allowed = ", ".join(str(value) for value in rule.allowed)
        yield _quality(
            f"{name} (allowed)", not len(others), f"one of {allowed}", len(others), detail
        )
    if rule.unique:
        repeats = values[values.duplicated()]
        detail = f"{len(repeats):,} repeated values"
        if len(repeats):
            detail += f": {_examples(repeats.value_counts().index)}"
        yield _quality(f"{name} (unique)", not len(repeats), "unique", len(repeats), detail)


def _quality(name: str, passed: bool, threshold: str, candidate: Any, detail: str) -> Check:
    return Check(
        kind="quality",
        name=name,
        passed=bool(passed),
        threshold=threshold,
        candidate=candidate,
        detail=detail,
    )


def _pct(share: float) -> str:
    return f"{100 * share:.3g}%"


def _examples(values: Iterable[Any], most: int = 5) -> str:
    listed = list(values)
    shown = ", ".join(repr(value) for value in listed[:most])
    return shown + (f" and {len(listed) - most} more" if len(listed) > most else "")
