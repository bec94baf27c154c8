"""The data rules of ``mlsteps gate`` as read from mlsteps.yaml: quality, drift and schema.

This module imports neither pandas, numpy nor scipy: the gate parses its options (and
``--dry-run`` prints them) before it knows whether any data will be loaded. The checks that
apply these rules to data live in data.py and drift.py.

Every parser takes the already-loaded YAML value and raises ValueError with a message that
names the bad key (as a dotted path, e.g. ``columns.age.min``) and the expected form; the
caller prefixes the option's name and turns it into exit 2.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True)
class ColumnRule:
    """Rules on one column; None/False = that rule is not set. Nulls are judged only by
    ``not_null`` and ``max_null_rate``: the other rules look at the values that are there."""

    min: float | None = None
    max: float | None = None
    not_null: bool = False
    allowed: tuple[Any, ...] | None = None
    unique: bool = False
    max_null_rate: float | None = None  # overrides QualityRules.max_null_rate for this column


@dataclass(frozen=True, kw_only=True)
class QualityRules:
    min_rows: int | None = None
    max_null_rate: float | None = None  # for every column without its own
    columns: Mapping[str, ColumnRule] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class DriftRules:
    """Thresholds of the drift checks; a None threshold turns that test off.

    ``ks`` bounds the two-sample Kolmogorov–Smirnov *statistic*, not its p-value: with 100,000
    rows every p-value is tiny, even for a shift nobody would care about.
    """

    psi: float | None = 0.2
    ks: float | None = 0.1
    bins: int = 10
    features: tuple[str, ...] | None = None  # None: every column both data sets have
    # (psi, ks) for one feature; None in the pair = the global threshold. A threshold here
    # turns the test on for that feature even when the global one is off.
    per_feature: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class SchemaRules:
    range_tolerance: float = 0.01  # fraction of non-null rows allowed outside [min, max]
    null_tolerance: float = 0.05  # added to the training null rate
    unseen_tolerance: float = 0.01  # fraction of non-null rows with categories never seen


QUALITY_KEYS = ("min-rows", "max-null-rate", "columns")
COLUMN_KEYS = ("min", "max", "not-null", "allowed", "unique", "max-null-rate")
DRIFT_KEYS = ("psi", "ks", "bins", "features", "per-feature")
PER_FEATURE_KEYS = ("psi", "ks")
SCHEMA_KEYS = ("range-tolerance", "null-tolerance", "unseen-tolerance")

QUALITY_FORM = "{min-rows: 1000, max-null-rate: 0.05, columns: {age: {min: 0, max: 120}}}"
DRIFT_FORM = "true, false, or {psi: 0.2, ks: 0.1, bins: 10, features: [age], per-feature: {…}}"
SCHEMA_FORM = "true or {range-tolerance: 0.01, null-tolerance: 0.05, unseen-tolerance: 0.01}"


def parse_quality(raw: Any) -> QualityRules:
    """``{min-rows: 1000, max-null-rate: 0.05, columns: {age: {min: 0, max: 120, not-null:
    true}, country: {allowed: [DE, FR]}, id: {unique: true}, income: {max-null-rate: 0.2}}}``
    (every key optional)."""
    table = _mapping(raw, "", QUALITY_KEYS, QUALITY_FORM)
    columns_raw = _mapping(table.get("columns", {}), "columns", None, "{name: {min: 0, …}}")
    columns: dict[str, ColumnRule] = {}
    for name, rule in columns_raw.items():
        columns[_name(name, "columns")] = _column_rule(rule, f"columns.{name}")
    return QualityRules(
        min_rows=_count(table.get("min-rows"), "min-rows"),
        max_null_rate=_fraction(table.get("max-null-rate"), "max-null-rate"),
        columns=columns,
    )


def _column_rule(raw: Any, where: str) -> ColumnRule:
    table = _mapping(raw, where, COLUMN_KEYS, "{min: 0, max: 120, not-null: true}")
    low = _number(table.get("min"), f"{where}.min")
    high = _number(table.get("max"), f"{where}.max")
    if low is not None and high is not None and low > high:
        raise ValueError(f"{where}: min ({low:g}) is greater than max ({high:g}); swap them.")
    allowed = table.get("allowed")
    if allowed is not None:
        if not isinstance(allowed, list) or not allowed:
            raise ValueError(f"{where}.allowed: expected a non-empty list like [DE, FR].")
        for value in allowed:
            if isinstance(value, (list, dict)) or value is None:
                raise ValueError(
                    f"{where}.allowed: expected plain values (strings or numbers), got "
                    f"{value!r}; nulls are judged by not-null and max-null-rate."
                )
    return ColumnRule(
        min=low,
        max=high,
        not_null=_flag(table.get("not-null", False), f"{where}.not-null"),
        allowed=tuple(allowed) if allowed is not None else None,
        unique=_flag(table.get("unique", False), f"{where}.unique"),
        max_null_rate=_fraction(table.get("max-null-rate"), f"{where}.max-null-rate"),
    )


def parse_drift(raw: Any) -> DriftRules | None:
    """``true`` → the defaults; ``false`` or null → None (no drift check); or
    ``{psi: 0.2, ks: 0.1, bins: 10, features: [age, country], per-feature: {age: {psi: 0.3}}}``
    where ``psi: null`` (or ``false``) turns that test off for every feature."""
    if raw is None or raw is False:
        return None
    if raw is True:
        return DriftRules()
    table = _mapping(raw, "", DRIFT_KEYS, DRIFT_FORM)
    defaults = DriftRules()
    bins = table.get("bins", defaults.bins)
    if isinstance(bins, bool) or not isinstance(bins, int) or not 2 <= bins <= 1000:
        raise ValueError(f"bins: expected a whole number from 2 to 1000, got {bins!r}.")
    features: tuple[str, ...] | None = None
    if table.get("features") is not None:
        listed = table["features"]
        if not isinstance(listed, list) or not listed:
            raise ValueError(
                "features: expected a non-empty list of column names like [age, country]; "
                "leave it out to check every column both data sets have."
            )
        features = tuple(_name(name, "features") for name in listed)
    per_feature: dict[str, tuple[float | None, float | None]] = {}
    overrides = _mapping(table.get("per-feature", {}), "per-feature", None, "{age: {psi: 0.3}}")
    for name, override in overrides.items():
        where = f"per-feature.{_name(name, 'per-feature')}"
        if features is not None and name not in features:
            raise ValueError(f"{where}: {name!r} is not one of features {list(features)}.")
        pair = _mapping(override, where, PER_FEATURE_KEYS, "{psi: 0.3, ks: 0.15}")
        per_feature[name] = (
            _threshold(pair.get("psi"), f"{where}.psi"),
            _threshold(pair.get("ks"), f"{where}.ks"),
        )
    return DriftRules(
        psi=_threshold(table.get("psi", defaults.psi), "psi", off=True),
        ks=_threshold(table.get("ks", defaults.ks), "ks", off=True),
        bins=bins,
        features=features,
        per_feature=per_feature,
    )


def parse_schema_rules(raw: Any) -> SchemaRules:
    """``true`` or null → the defaults, or ``{range-tolerance: 0.01, null-tolerance: 0.05,
    unseen-tolerance: 0.01}`` (every key optional). ``false`` is refused: whether the schema
    is checked at all is the caller's decision, not a tolerance."""
    if raw is None or raw is True:
        return SchemaRules()
    table = _mapping(raw, "", SCHEMA_KEYS, SCHEMA_FORM)
    defaults = SchemaRules()

    def tolerance(key: str, default: float) -> float:
        value = _fraction(table.get(key, default), key)
        return default if value is None else value

    return SchemaRules(
        range_tolerance=tolerance("range-tolerance", defaults.range_tolerance),
        null_tolerance=tolerance("null-tolerance", defaults.null_tolerance),
        unseen_tolerance=tolerance("unseen-tolerance", defaults.unseen_tolerance),
    )


def _mapping(raw: Any, where: str, known: tuple[str, ...] | None, form: str) -> Mapping[str, Any]:
    """``raw`` as a mapping whose keys are all in ``known`` (None: any string key)."""
    if not isinstance(raw, Mapping):
        label = f"{where}: expected" if where else "expected"
        raise ValueError(f"{label} a mapping like {form}, got {raw!r}.")
    for key in raw:
        path = f"{where}.{key}" if where else str(key)
        if not isinstance(key, str):
            raise ValueError(f"{path}: keys must be strings, got {key!r}.")
        if known is not None and key not in known:
            hint = key.replace("_", "-").lower()
            did_you_mean = f" (did you mean {hint!r}?)" if hint in known else ""
            raise ValueError(
                f"{path}: unknown key {key!r}{did_you_mean}; known keys: {', '.join(known)}."
            )
    return raw


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: column names must be non-empty strings, got {value!r}.")
    return value


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}: expected a number, got {value!r}.")
    return float(value)


def _fraction(value: Any, where: str) -> float | None:
    number = _number(value, where)
    if number is not None and not 0 <= number <= 1:
        raise ValueError(f"{where}: expected a fraction from 0 to 1 (0.05 = 5%), got {value!r}.")
    return number


def _threshold(value: Any, where: str, *, off: bool = False) -> float | None:
    """A non-negative drift threshold; with ``off``, null or false turn the test off."""
    if off and value is False:
        return None
    number = _number(value, where)
    if number is not None and number < 0:
        raise ValueError(f"{where}: expected a threshold of 0 or more, got {value!r}.")
    return number


def _count(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where}: expected a whole number of 0 or more, got {value!r}.")
    return value


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where}: expected true or false, got {value!r}.")
    return value
