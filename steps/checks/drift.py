"""The drift checks of ``mlsteps gate``: each feature's distribution in the evaluation data
against the training data, by PSI, and for numbers by the two-sample Kolmogorov–Smirnov
statistic. Separate from the schema and quality checks (data.py) because drift compares two
data sets, bucket by bucket, where those judge one; it is the only data check that needs
scipy, imported at the top here since this module loads only on a real run with data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp, kstwobign

from steps.checks.columns import NUMERIC, as_floats, as_strings, column_type
from steps.checks.data_rules import DriftRules
from steps.checks.verdict import Check

EPSILON = 1e-4  # the proportion an empty PSI bucket counts as, so that ln(q/p) stays finite
# PSI keeps this many of the reference's most frequent categories; the rest share "other" with
# the values the reference never had, so an id-like column does not drift by construction.
MAX_PSI_CATEGORIES = 50
KS_EXACT_MAX = 10_000  # scipy's own bound for its exact p-value


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
        ref_values, cur_values = as_strings(ref.dropna()), as_strings(cur.dropna())
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
    return np.sort(as_floats(values))


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
