"""Data checks of ``mlsteps gate``: the schema of the training data, quality rules, and drift.

The gate infers a schema from the training data and stores it with the model, so that later
gates judge new data against what the model was trained on (``check_schema``); it applies the
team's quality rules to the evaluation data (``check_quality``); and it compares each feature's
distribution between training and evaluation data (``check_drift``: PSI, and the two-sample
Kolmogorov–Smirnov statistic for numbers). Every check is a ``Check`` (checks.py) with
``enforced=True``: the gate applies ``--warn-only``.

This module is imported only on a real run with data, so pandas, numpy and scipy are imported
at its top; the rules it applies (and their parsers) live in data_rules.py, which imports none.
Everything is vectorised per column: 100,000 rows × 20 features take a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp, kstwobign

from steps.gates.checks import Check
from steps.gates.data_rules import ColumnRule, DriftRules, QualityRules, SchemaRules

SCHEMA_VERSION = 1
NUMERIC = ("integer", "float")
EPSILON = 1e-4  # the proportion an empty PSI bucket counts as, so that ln(q/p) stays finite
# PSI keeps this many of the reference's most frequent categories; the rest share "other" with
# the values the reference never had, so an id-like column does not drift by construction.
MAX_PSI_CATEGORIES = 50
KS_EXACT_MAX = 10_000  # scipy's own bound for its exact p-value
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


def infer_schema(df: pd.DataFrame, *, max_categories: int = 50) -> dict[str, Any]:
    """The schema of ``df`` as plain JSON values: ``{"version": 1, "rows": n, "columns": {name:
    {"type", "null_rate", "min"/"max" (numbers with a finite value), "values" (strings with at
    most ``max_categories`` distinct values)}}}``. Datetimes get no range: new data is later."""
    columns: dict[str, Any] = {}
    for name in df.columns:
        series = df[name]
        kind = column_type(series)
        values = series.dropna()
        spec: dict[str, Any] = {"type": kind, "null_rate": _null_rate(series)}
        if kind in NUMERIC:
            finite = values[np.isfinite(_floats(values))]
            if len(finite):
                convert = int if kind == "integer" else float
                spec["min"], spec["max"] = convert(finite.min()), convert(finite.max())
        elif kind == "string":
            distinct = _strings(values).unique()
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
        numbers = _floats(values)
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
        strings = _strings(values)
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
    null_rate, null_limit = _null_rate(series), spec["null_rate"] + rules.null_tolerance
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
        numbers = _floats(values)
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
            rate, nulls = _null_rate(series), int(series.isna().sum())
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
        numbers = _floats(values)
        bad = int((numbers < bound).sum() if label == "min" else (numbers > bound).sum())
        seen = float(numbers.min() if label == "min" else numbers.max()) if len(numbers) else None
        side = "below" if label == "min" else "above"
        detail = f"{bad:,} of {len(numbers):,} values {side} {bound:g}"
        yield _quality(check_name, bad == 0, threshold, seen, detail)
    if rule.allowed is not None:
        if kind == "string":
            strings = _strings(values)
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


def check_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    rules: DriftRules,
    *,
    ignore: Sequence[str] = (),
) -> list[Check]:
    """Per feature, "name (PSI)" and, for numbers, "name (KS)" (the statistic; its p-value is
    in the detail), each against its threshold (``rules.per_feature`` before the global one).

    PSI buckets numbers by ``rules.bins`` quantiles of the reference (outer edges at ±inf) and
    categories by value (the reference's 50 most frequent; the rest and unseen values share
    "other"); nulls are a bucket of their own, an empty bucket counts as 1e-4. KS ignores nulls.
    Features: ``rules.features``, or every column both frames have except datetimes (time
    always drifts). A feature either frame lacks fails every test it has."""
    if rules.features is not None:
        features = [f for f in rules.features if f not in ignore]
    else:
        shared = set(map(str, current.columns))
        features = [
            str(c)
            for c in reference.columns
            if str(c) in shared and str(c) not in ignore and column_type(reference[c]) != "datetime"
        ]
    ref_by_name = {str(name): name for name in reference.columns}
    cur_by_name = {str(name): name for name in current.columns}
    checks: list[Check] = []
    for feature in features:
        psi_limit, ks_limit = rules.per_feature.get(feature, (None, None))
        psi_limit = rules.psi if psi_limit is None else psi_limit
        ks_limit = rules.ks if ks_limit is None else ks_limit
        tests = [
            (test, limit)
            for test, limit in (("PSI", psi_limit), ("KS", ks_limit))
            if limit is not None
        ]
        missing = [
            label
            for label, names in (("reference", ref_by_name), ("current", cur_by_name))
            if feature not in names
        ]
        if missing:
            if feature in ref_by_name and _drift_kind(reference[ref_by_name[feature]]) != "number":
                tests = [(test, limit) for test, limit in tests if test == "PSI"]
            verb = "has" if len(missing) == 1 else "have"
            detail = f"the {' and '.join(missing)} data {verb} no column {feature!r}"
            checks.extend(_drift(feature, test, limit, None, detail) for test, limit in tests)
            continue
        ref, cur = reference[ref_by_name[feature]], current[cur_by_name[feature]]
        checks.extend(_feature_drift(feature, ref, cur, rules.bins, tests))
    return checks


def _feature_drift(
    feature: str, ref: pd.Series, cur: pd.Series, bins: int, tests: list[tuple[str, float]]
) -> Iterable[Check]:
    kinds = {_drift_kind(series) for series in (ref, cur) if series.notna().any()}
    if len(kinds) > 1:
        detail = f"{column_type(ref)} in the reference data, {column_type(cur)} in the current"
        yield from (_drift(feature, test, limit, None, detail) for test, limit in tests)
        return
    kind = kinds.pop() if kinds else "category"
    if kind == "number":
        ref_values, cur_values = _sorted_numbers(ref), _sorted_numbers(cur)
        buckets, ref_counts, cur_counts = _numeric_buckets(ref_values, cur_values, bins)
    else:
        ref_values, cur_values = _strings(ref.dropna()), _strings(cur.dropna())
        buckets, ref_counts, cur_counts = _category_buckets(ref_values, cur_values)
    buckets.append("nulls")
    ref_counts = np.append(ref_counts, len(ref) - len(ref_values))
    cur_counts = np.append(cur_counts, len(cur) - len(cur_values))
    for test, limit in tests:
        if test == "PSI":
            yield _psi_check(feature, limit, buckets, ref_counts, cur_counts)
        elif kind == "number":
            yield _ks_check(feature, limit, ref_values, cur_values)


def _drift_kind(series: pd.Series) -> str:
    kind = column_type(series)
    return "number" if kind in NUMERIC or kind == "datetime" else "category"


def _sorted_numbers(series: pd.Series) -> np.ndarray:
    """The non-null values as sorted floats: sorting once makes every later step a few binary
    searches (bucket counts, the KS statistic) instead of a pass per value."""
    values = series.dropna()
    if column_type(series) == "datetime":
        # Seconds since the epoch: the same scale whatever resolution or time zone each has.
        stamps = pd.to_datetime(values, utc=True)
        seconds = (stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
        return np.sort(seconds.to_numpy(dtype=np.float64))
    return np.sort(_floats(values))


def _numeric_buckets(
    ref: np.ndarray, cur: np.ndarray, bins: int
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Counts of sorted ``ref`` and ``cur`` in buckets cut at the quantiles of ``ref``: a value
    on an edge belongs to the bucket above it."""
    finite = ref[np.isfinite(ref)]
    if len(finite):
        inner = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
    else:
        inner = np.empty(0)
    labels = [f"< {inner[0]:g}"] if len(inner) else ["all values"]
    labels += [f"[{low:g}, {high:g})" for low, high in zip(inner[:-1], inner[1:], strict=True)]
    labels += [f"≥ {inner[-1]:g}"] if len(inner) else []
    counts = [
        np.diff(np.searchsorted(x, inner, side="left"), prepend=0, append=len(x))
        for x in (ref, cur)
    ]
    return labels, counts[0], counts[1]


def _category_buckets(ref: pd.Series, cur: pd.Series) -> tuple[list[str], np.ndarray, np.ndarray]:
    frequencies = ref.value_counts()
    kept = frequencies.index[:MAX_PSI_CATEGORIES]
    ref_kept = frequencies.iloc[:MAX_PSI_CATEGORIES].to_numpy()
    cur_kept = cur.value_counts().reindex(kept, fill_value=0).to_numpy()
    ref_counts = np.append(ref_kept, len(ref) - ref_kept.sum())
    cur_counts = np.append(cur_kept, len(cur) - cur_kept.sum())
    return [repr(str(value)) for value in kept] + ["other"], ref_counts, cur_counts


def population_stability_index(
    ref_counts: np.ndarray, cur_counts: np.ndarray
) -> tuple[float, np.ndarray]:
    """PSI = Σ (q − p)·ln(q / p) over buckets, p and q the reference's and current's shares
    (an empty bucket counts as 1e-4); also the per-bucket terms. NaN when either has no rows."""
    ref_total, cur_total = ref_counts.sum(), cur_counts.sum()
    if not ref_total or not cur_total:
        return float("nan"), np.zeros(len(ref_counts))
    p = np.maximum(ref_counts / ref_total, EPSILON)
    q = np.maximum(cur_counts / cur_total, EPSILON)
    terms = (q - p) * np.log(q / p)
    return float(terms.sum()), terms


def _psi_check(
    feature: str, limit: float, buckets: list[str], ref_counts: np.ndarray, cur_counts: np.ndarray
) -> Check:
    psi, terms = population_stability_index(ref_counts, cur_counts)
    if np.isnan(psi):
        return _drift(feature, "PSI", limit, None, "one of the data sets has no rows")
    top = int(np.argmax(terms))
    p, q = ref_counts[top] / ref_counts.sum(), cur_counts[top] / cur_counts.sum()
    detail = f"{len(buckets)} buckets; largest shift in {buckets[top]}: {p:.1%} → {q:.1%}"
    return _drift(feature, "PSI", limit, psi, detail)


def _ks_check(feature: str, limit: float, ref: np.ndarray, cur: np.ndarray) -> Check:
    if not len(ref) or not len(cur):
        return _drift(feature, "KS", limit, None, "one of the data sets has no non-null values")
    statistic, pvalue = ks_statistic(ref, cur)
    detail = f"p-value {pvalue:.3g}; {len(ref):,} reference vs {len(cur):,} current values"
    return _drift(feature, "KS", limit, statistic, detail)


def ks_statistic(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """The two-sample KS statistic of sorted ``ref`` and ``cur`` and its two-sided p-value.

    Up to ``KS_EXACT_MAX`` values a side this is scipy's ``ks_2samp``. Above, its p-value
    (the exact distribution at n = n₁n₂/(n₁+n₂)) costs about 0.1 s a feature, so the statistic
    is computed here, as ks_2samp does, and the p-value from Kolmogorov's limiting
    distribution, which at that size differs from the exact one in the third digit.
    """
    if max(len(ref), len(cur)) <= KS_EXACT_MAX:
        result = ks_2samp(ref, cur)
        return float(result.statistic), float(result.pvalue)
    points = np.concatenate([ref, cur])
    gaps = np.searchsorted(ref, points, "right") / len(ref)
    gaps -= np.searchsorted(cur, points, "right") / len(cur)
    statistic = float(np.abs(gaps).max())
    effective = len(ref) * len(cur) / (len(ref) + len(cur))
    return statistic, float(kstwobign.sf(statistic * np.sqrt(effective)))


def _drift(feature: str, test: str, limit: float, value: float | None, detail: str) -> Check:
    return Check(
        kind="drift",
        name=f"{feature} ({test})",
        passed=value is not None and value <= limit,
        threshold=f"≤ {limit:g}",
        candidate=value,
        detail=detail,
    )


def _floats(values: pd.Series) -> np.ndarray:
    return np.asarray(values.to_numpy(dtype=np.float64, na_value=np.nan))


def _strings(values: pd.Series) -> pd.Series:
    return values if isinstance(values.dtype, pd.StringDtype) else values.astype(str)


def _null_rate(series: pd.Series) -> float:
    return float(series.isna().mean()) if len(series) else 0.0


def _pct(share: float) -> str:
    return f"{100 * share:.3g}%"


def _examples(values: Iterable[Any], most: int = 5) -> str:
    listed = list(values)
    shown = ", ".join(repr(value) for value in listed[:most])
    return shown + (f" and {len(listed) - most} more" if len(listed) > most else "")
