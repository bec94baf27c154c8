"""gate's data checks (steps/checks/data.py, drift.py) and their rules (steps/checks/data_rules.py):
schema, quality, drift and the parsers of their YAML. Pure: in-memory frames with fixed seeds."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from steps.checks.data import check_quality, check_schema, infer_schema
from steps.checks.data_rules import (
    ColumnRule,
    DriftRules,
    QualityRules,
    SchemaRules,
    parse_drift,
    parse_quality,
    parse_schema_rules,
)
from steps.checks.drift import KS_EXACT_MAX, check_drift, ks_statistic
from steps.checks.verdict import Check


def by_name(checks: list[Check]) -> dict[str, Check]:
    names = [check.name for check in checks]
    assert len(names) == len(set(names)), f"duplicate check names: {names}"
    return {check.name: check for check in checks}


def failing(checks: list[Check]) -> list[str]:
    return [check.name for check in checks if not check.passed]


def training_frame(rows: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, size=rows),
            "income": rng.normal(50_000, 10_000, size=rows),
            "member": rng.integers(0, 2, size=rows).astype(bool),
            "country": rng.choice(["DE", "FR", "IT"], size=rows),
            "plan": pd.Categorical(rng.choice(["free", "pro"], size=rows)),
            "joined": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, rows), "D"),
            "note": [None if draw < 0.2 else "x" for draw in rng.random(rows)],
        }
    )


# --- schema ----------------------------------------------------------------------------------


def test_schema_inferred_for_every_kind_of_column() -> None:
    df = pd.DataFrame(
        {
            "int": [3, 1, 2, 5],
            "nullable_int": pd.array([1, None, 7, 2], dtype="Int64"),
            "float": [0.5, np.nan, np.inf, -1.5],
            "bool": [True, False, True, True],
            "string": ["b", "a", None, "b"],
            "category": pd.Categorical(["u", "v", "u", "u"]),
            "when": pd.to_datetime(["2024-01-01", "2024-02-01", None, "2024-03-01"]),
            "empty": [None, None, None, None],
        }
    )
    schema = infer_schema(df)
    assert schema == {
        "version": 1,
        "rows": 4,
        "columns": {
            "int": {"type": "integer", "null_rate": 0.0, "min": 1, "max": 5},
            "nullable_int": {"type": "integer", "null_rate": 0.25, "min": 1, "max": 7},
            # the range ignores inf: strict JSON has no Infinity
            "float": {"type": "float", "null_rate": 0.25, "min": -1.5, "max": 0.5},
            "bool": {"type": "boolean", "null_rate": 0.0},
            "string": {"type": "string", "null_rate": 0.25, "values": ["a", "b"]},
            "category": {"type": "string", "null_rate": 0.0, "values": ["u", "v"]},
            "when": {"type": "datetime", "null_rate": 0.25},
            "empty": {"type": "string", "null_rate": 1.0, "values": []},
        },
    }
    assert isinstance(schema["columns"]["int"]["min"], int)
    json.dumps(schema, allow_nan=False)  # plain, strict JSON


def test_many_distinct_strings_get_no_value_list() -> None:
    df = pd.DataFrame({"id": [f"u{i}" for i in range(60)], "few": ["a", "b"] * 30})
    columns = infer_schema(df, max_categories=50)["columns"]
    assert "values" not in columns["id"]
    assert columns["few"]["values"] == ["a", "b"]


def test_the_training_data_passes_its_own_schema_and_a_json_round_trip_changes_nothing() -> None:
    train = training_frame()
    schema = infer_schema(train)
    new = training_frame(seed=1)
    new.loc[:30, "age"] = 150  # 3.1% out of range
    checks = check_schema(schema, new, SchemaRules())
    stored = json.loads(json.dumps(schema))
    assert [c.to_json() for c in check_schema(stored, new, SchemaRules())] == [
        c.to_json() for c in checks
    ]
    assert failing(checks) == ["age"]
    own = check_schema(schema, train, SchemaRules())
    assert [c.name for c in own] == list(train.columns)
    assert failing(own) == []
    assert all(c.kind == "schema" and c.enforced for c in own)


def test_missing_column_fails_named() -> None:
    train = training_frame()
    check = by_name(check_schema(infer_schema(train), train.drop(columns="age"), SchemaRules()))[
        "age"
    ]
    assert not check.passed
    assert check.candidate == "missing"
    assert "no such column" in check.detail


def test_strings_in_a_numeric_column_fail_and_whole_floats_in_an_integer_one_pass() -> None:
    train = training_frame()
    schema = infer_schema(train)
    as_text = train.assign(age=train["age"].astype(str))
    check = by_name(check_schema(schema, as_text, SchemaRules()))["age"]
    assert not check.passed
    assert check.detail == "holds string values, the training data held integer"
    # a null turns an integer column into floats on the way in: that is no type change
    with_null = train.assign(age=train["age"].astype(float))
    with_null.loc[0, "age"] = np.nan
    assert by_name(check_schema(schema, with_null, SchemaRules()))["age"].passed
    fractional = train.assign(age=train["age"] + 0.5)
    assert (
        "holds float values"
        in by_name(check_schema(schema, fractional, SchemaRules()))["age"].detail
    )


def test_out_of_range_beyond_the_tolerance_fails_within_it_passes() -> None:
    train = pd.DataFrame({"x": np.arange(1000, dtype=float)})  # range [0, 999]
    schema = infer_schema(train)
    within = train.copy()
    within.loc[:4, "x"] = 5000.0  # 0.5% above, tolerance 1%
    assert by_name(check_schema(schema, within, SchemaRules()))["x"].passed
    beyond = train.copy()
    beyond.loc[:19, "x"] = -1.0  # 2% below
    beyond.loc[20:29, "x"] = 2000.0  # 1% above
    check = by_name(check_schema(schema, beyond, SchemaRules()))["x"]
    assert not check.passed
    assert check.threshold == "float; ≤ 1% outside [0, 999]; nulls ≤ 5%"
    assert check.candidate == "float; 3% outside; nulls 0%"
    assert "3% of values outside the training range [0, 999] (20 below, 10 above" in check.detail
    assert by_name(check_schema(schema, beyond, SchemaRules(range_tolerance=0.05)))["x"].passed


def test_unseen_categories_beyond_the_tolerance_fail_naming_up_to_five() -> None:
    train = pd.DataFrame({"country": ["DE", "FR"] * 500})
    schema = infer_schema(train)
    new = train.copy()
    new.loc[:69, "country"] = [f"X{i % 7}" for i in range(70)]  # 7% unseen, 7 distinct
    check = by_name(check_schema(schema, new, SchemaRules()))["country"]
    assert not check.passed
    assert "7% of values are categories training never saw" in check.detail
    assert "and 2 more" in check.detail
    assert sum(f"'X{i}'" in check.detail for i in range(7)) == 5
    few = train.copy()
    few.loc[:4, "country"] = "ES"  # 0.5%
    assert by_name(check_schema(schema, few, SchemaRules()))["country"].passed


def test_null_rate_above_training_plus_tolerance_fails() -> None:
    train = pd.DataFrame({"x": np.arange(100.0)})
    train.loc[:9, "x"] = np.nan  # 10% in training
    schema = infer_schema(train)
    new = pd.DataFrame({"x": np.arange(100.0)})
    new.loc[:14, "x"] = np.nan  # 15% = 10% + 5%: at the limit
    assert by_name(check_schema(schema, new, SchemaRules()))["x"].passed
    new.loc[:15, "x"] = np.nan  # 16%
    check = by_name(check_schema(schema, new, SchemaRules()))["x"]
    assert not check.passed
    assert check.detail == "16% nulls, training had 10% (tolerance +5%)"


def test_every_violation_of_a_column_is_listed() -> None:
    schema = infer_schema(pd.DataFrame({"x": np.arange(100.0)}))
    new = pd.DataFrame({"x": np.arange(100.0)})
    new.loc[:19, "x"] = 1000.0
    new.loc[20:39, "x"] = np.nan
    detail = by_name(check_schema(schema, new, SchemaRules()))["x"].detail
    # the range share is of the values that are there: 20 of 80
    assert detail == (
        "25% of values outside the training range [0, 99] (0 below, 20 above; seen 40 to 1000; "
        "tolerance 1%); 20% nulls, training had 0% (tolerance +5%)"
    )


def test_extra_columns_pass_with_a_note_and_ignored_columns_are_skipped() -> None:
    train = training_frame()
    schema = infer_schema(train)
    new = train.assign(score=1.0).drop(columns="age")
    checks = by_name(check_schema(schema, new, SchemaRules(), ignore=["age", "note"]))
    assert "age" not in checks and "note" not in checks
    assert checks["score"].passed and checks["score"].detail == "not in the training schema"


def test_a_schema_not_written_by_infer_schema_is_refused() -> None:
    with pytest.raises(ValueError, match="version-1 schema"):
        check_schema({"columns": {}}, training_frame(), SchemaRules())


# --- quality ---------------------------------------------------------------------------------


def quality_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, 3, 4, 5],
            "age": [20.0, 35.0, 50.0, np.nan, 64.0],
            "country": ["DE", "FR", "DE", "FR", "DE"],
        }
    )


def test_quality_rules_all_pass_on_good_data() -> None:
    rules = QualityRules(
        min_rows=5,
        max_null_rate=0.2,
        columns={
            "id": ColumnRule(unique=True, not_null=True),
            "age": ColumnRule(min=0, max=120),
            "country": ColumnRule(allowed=("DE", "FR")),
        },
    )
    checks = check_quality(rules, quality_frame())
    assert [c.name for c in checks] == [
        "rows",
        "id (null rate)",
        "age (null rate)",
        "country (null rate)",
        "id (not-null)",
        "id (unique)",
        "age (min)",
        "age (max)",
        "country (allowed)",
    ]
    assert failing(checks) == []
    assert all(c.kind == "quality" and c.enforced for c in checks)


@pytest.mark.parametrize(
    ("rules", "name", "candidate", "detail"),
    [
        (QualityRules(min_rows=6), "rows", 5, "5 rows, at least 6 wanted"),
        (QualityRules(max_null_rate=0.1), "age (null rate)", 0.2, "1 of 5 rows are null"),
        (
            QualityRules(max_null_rate=0.5, columns={"age": ColumnRule(max_null_rate=0.0)}),
            "age (null rate)",
            0.2,
            "1 of 5 rows are null",
        ),
        (
            QualityRules(columns={"age": ColumnRule(min=21)}),
            "age (min)",
            20.0,
            "1 of 4 values below 21",
        ),
        (
            QualityRules(columns={"age": ColumnRule(max=60)}),
            "age (max)",
            64.0,
            "1 of 4 values above 60",
        ),
        (
            QualityRules(columns={"age": ColumnRule(not_null=True)}),
            "age (not-null)",
            1,
            "1 null rows",
        ),
        (
            QualityRules(columns={"country": ColumnRule(allowed=("DE",))}),
            "country (allowed)",
            2,
            "2 of 5 values are not allowed: 'FR'",
        ),
        (
            QualityRules(columns={"country": ColumnRule(unique=True)}),
            "country (unique)",
            3,
            "3 repeated values: 'DE', 'FR'",
        ),
        (
            QualityRules(columns={"country": ColumnRule(min=0)}),
            "country (min)",
            "string",
            "holds string values, not numbers",
        ),
        (
            QualityRules(columns={"height": ColumnRule(max=250)}),
            "height",
            "missing",
            "the data has no column 'height', which the quality rules name",
        ),
    ],
)
def test_each_quality_rule_fails_named(
    rules: QualityRules, name: str, candidate: Any, detail: str
) -> None:
    checks = check_quality(rules, quality_frame())
    assert failing(checks) == [name]
    check = by_name(checks)[name]
    assert check.candidate == candidate
    assert check.detail == detail


def test_a_column_null_rate_rule_replaces_the_global_one() -> None:
    rules = QualityRules(max_null_rate=0.0, columns={"age": ColumnRule(max_null_rate=0.5)})
    checks = by_name(check_quality(rules, quality_frame()))
    assert checks["age (null rate)"].passed and checks["age (null rate)"].threshold == "≤ 0.5"


def test_allowed_numbers_match_a_numeric_column() -> None:
    rules = QualityRules(columns={"id": ColumnRule(allowed=(1, 2, 3, 4))})
    check = by_name(check_quality(rules, quality_frame()))["id (allowed)"]
    assert not check.passed and check.detail == "1 of 5 values are not allowed: 5"


# --- drift -----------------------------------------------------------------------------------


def normal(rows: int, shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"x": np.random.default_rng(seed).normal(shift, 1.0, size=rows)})


def test_two_samples_of_the_same_distribution_pass_psi_and_ks() -> None:
    checks = check_drift(normal(5000, seed=1), normal(5000, seed=2), DriftRules())
    assert [c.name for c in checks] == ["x (PSI)", "x (KS)"]
    assert failing(checks) == []
    psi, ks = checks
    assert isinstance(psi.candidate, float) and psi.candidate < 0.02
    assert psi.threshold == "≤ 0.2" and ks.threshold == "≤ 0.1"
    assert ks.detail.startswith("p-value ")
    assert float(ks.detail.split()[1].rstrip(";")) > 0.05


def test_a_shift_of_half_a_sigma_fails_both_naming_the_feature() -> None:
    checks = check_drift(normal(5000, seed=1), normal(5000, shift=0.5, seed=2), DriftRules())
    assert failing(checks) == ["x (PSI)", "x (KS)"]
    psi, ks = checks
    assert isinstance(psi.candidate, float) and psi.candidate > 0.2
    assert isinstance(ks.candidate, float) and 0.15 < ks.candidate < 0.25
    assert all(c.kind == "drift" and c.enforced for c in checks)


def test_a_categorical_shift_fails_psi_and_has_no_ks() -> None:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"c": rng.choice(["a", "b", "c"], p=[0.5, 0.3, 0.2], size=5000)})
    same = pd.DataFrame({"c": rng.choice(["a", "b", "c"], p=[0.5, 0.3, 0.2], size=5000)})
    shifted = pd.DataFrame({"c": rng.choice(["a", "b", "c"], p=[0.2, 0.3, 0.5], size=5000)})
    assert [c.name for c in check_drift(reference, same, DriftRules())] == ["c (PSI)"]
    assert failing(check_drift(reference, same, DriftRules())) == []
    (check,) = check_drift(reference, shifted, DriftRules())
    assert not check.passed and check.name == "c (PSI)"
    assert check.detail == "5 buckets; largest shift in 'a': 50.1% → 19.2%"


def test_psi_matches_a_hand_computed_value() -> None:
    # bins=2 cuts [1, 2, 3, 4] at its median 2.5: reference 2 | 2 | 0 nulls, current 3 | 1 | 0
    # (a value on the edge counts in the bucket above it)
    numeric = check_drift(
        pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]}),
        pd.DataFrame({"x": [1.0, 1.0, 1.0, 2.5]}),
        DriftRules(bins=2, ks=None),
    )
    expected = (0.75 - 0.5) * math.log(0.75 / 0.5) + (0.25 - 0.5) * math.log(0.25 / 0.5)
    assert numeric[0].candidate == pytest.approx(expected, rel=1e-12)  # 0.274653…
    # buckets a, b, other, nulls: reference ½ ¼ 0 ¼, current ¼ 0 ¾ 0; empty counts as 1e-4
    categorical = check_drift(
        pd.DataFrame({"c": ["a", "a", "b", None]}),
        pd.DataFrame({"c": ["a", "z", "z", "z"]}),
        DriftRules(),
    )
    eps = 1e-4
    expected = (
        (0.25 - 0.5) * math.log(0.25 / 0.5)
        + (eps - 0.25) * math.log(eps / 0.25)
        + (0.75 - eps) * math.log(0.75 / eps)
        + (eps - 0.25) * math.log(eps / 0.25)
    )
    assert categorical[0].candidate == pytest.approx(expected, rel=1e-12)
    assert "largest shift in other: 0.0% → 75.0%" in categorical[0].detail


def test_nulls_are_a_psi_bucket_and_ks_ignores_them() -> None:
    reference = normal(5000, seed=1)
    current = normal(5000, seed=1)
    current.loc[:1499, "x"] = np.nan  # the same values, 30% of them now null
    psi, ks = check_drift(reference, current, DriftRules())
    assert not psi.passed and "largest shift in nulls: 0.0% → 30.0%" in psi.detail
    assert ks.passed and "5,000 reference vs 3,500 current values" in ks.detail


def test_thresholds_per_feature_off_switches_ignore_and_feature_lists() -> None:
    reference = normal(2000, seed=1).assign(y=normal(2000, seed=3)["x"])
    current = normal(2000, shift=0.5, seed=2).assign(y=normal(2000, seed=4)["x"])
    loose = DriftRules(per_feature={"x": (5.0, 0.5)})
    assert failing(check_drift(reference, current, loose)) == []
    assert by_name(check_drift(reference, current, loose))["x (PSI)"].threshold == "≤ 5"
    only_ks = check_drift(reference, current, DriftRules(psi=None))
    assert [c.name for c in only_ks] == ["x (KS)", "y (KS)"]
    turned_on = DriftRules(psi=None, ks=None, per_feature={"y": (0.2, None)})
    assert [c.name for c in check_drift(reference, current, turned_on)] == ["y (PSI)"]
    assert [c.name for c in check_drift(reference, current, DriftRules(), ignore=["x"])] == [
        "y (PSI)",
        "y (KS)",
    ]
    listed = check_drift(reference, current, DriftRules(features=("y",)))
    assert [c.name for c in listed] == ["y (PSI)", "y (KS)"]


def test_a_feature_missing_from_either_data_set_fails_every_test() -> None:
    reference = normal(100).assign(y=1.0, c="a")
    checks = check_drift(reference, normal(100), DriftRules(features=("x", "y", "c", "z")))
    # a category has no KS; of a column neither has, nothing is known: every test fails
    assert failing(checks) == ["y (PSI)", "y (KS)", "c (PSI)", "z (PSI)", "z (KS)"]
    details = by_name(checks)
    assert details["y (KS)"].detail == "the current data has no column 'y'"
    assert details["z (PSI)"].detail == "the reference and current data have no column 'z'"
    # by default only the columns both have are compared: the schema check reports the rest
    assert failing(check_drift(reference, normal(100), DriftRules())) == []


def test_type_change_between_the_data_sets_fails_and_datetimes_are_left_out() -> None:
    days = pd.to_timedelta(np.arange(100), "D")
    reference = normal(100).assign(when=pd.Timestamp("2024-01-01") + days)
    current = pd.DataFrame({"x": ["a"] * 100, "when": pd.Timestamp("2025-01-01") + days})
    checks = check_drift(reference, current, DriftRules())
    assert failing(checks) == ["x (PSI)", "x (KS)"]
    assert checks[0].detail == "float in the reference data, string in the current"
    dated = check_drift(reference, current, DriftRules(features=("when",)))
    assert failing(dated) == ["when (PSI)", "when (KS)"]


def test_large_sample_ks_agrees_with_scipy_including_ties() -> None:
    rng = np.random.default_rng(0)
    ref = np.sort(rng.integers(0, 20, size=KS_EXACT_MAX * 2).astype(float))
    cur = np.sort(rng.integers(0, 21, size=KS_EXACT_MAX * 3).astype(float))
    statistic, pvalue = ks_statistic(ref, cur)
    reference = ks_2samp(ref, cur)
    assert statistic == pytest.approx(reference.statistic, abs=1e-12)
    # the limiting distribution against scipy's exact-at-n one: the same to within a tenth
    assert pvalue == pytest.approx(reference.pvalue, rel=0.1)


def test_drift_on_100k_rows_by_20_features_is_vectorised() -> None:
    rng = np.random.default_rng(0)
    rows = 100_000
    reference = pd.DataFrame({f"f{i}": rng.normal(size=rows) for i in range(18)})
    current = pd.DataFrame({f"f{i}": rng.normal(0.5 * (i == 17), size=rows) for i in range(18)})
    for frame in (reference, current):
        frame["country"] = rng.choice(["DE", "FR", "IT", "ES"], size=rows)
        frame["member"] = rng.integers(0, 2, size=rows).astype(bool)
    started = time.perf_counter()
    checks = check_drift(reference, current, DriftRules())
    elapsed = time.perf_counter() - started
    assert len(checks) == 18 * 2 + 2
    # about 0.4 s here; the bound leaves room for a busy 2-core machine, while a loop over the
    # 2 million values in Python would take well over it
    assert elapsed < 5.0, f"check_drift took {elapsed:.1f} s"
    assert failing(checks) == ["f17 (PSI)", "f17 (KS)"]


# --- parsers ---------------------------------------------------------------------------------


def test_parse_quality_reads_the_documented_form() -> None:
    rules = parse_quality(
        {
            "min-rows": 1000,
            "max-null-rate": 0.05,
            "columns": {
                "age": {"min": 0, "max": 120, "not-null": True},
                "country": {"allowed": ["DE", "FR"]},
                "id": {"unique": True},
                "income": {"max-null-rate": 0.2},
            },
        }
    )
    assert rules == QualityRules(
        min_rows=1000,
        max_null_rate=0.05,
        columns={
            "age": ColumnRule(min=0.0, max=120.0, not_null=True),
            "country": ColumnRule(allowed=("DE", "FR")),
            "id": ColumnRule(unique=True),
            "income": ColumnRule(max_null_rate=0.2),
        },
    )
    assert parse_quality({}) == QualityRules()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"min_rows": 5},
            "min_rows: unknown key 'min_rows' (did you mean 'min-rows'?); "
            "known keys: min-rows, max-null-rate, columns",
        ),
        (
            {"columns": {"age": {"minimum": 0}}},
            "columns.age.minimum: unknown key 'minimum'; known keys: min, max",
        ),
        ({"min-rows": "many"}, "min-rows: expected a whole number"),
        ({"min-rows": True}, "min-rows: expected a whole number"),
        ({"max-null-rate": 1.5}, "max-null-rate: expected a fraction from 0 to 1"),
        ({"columns": {"age": {"min": "zero"}}}, "columns.age.min: expected a number, got 'zero'"),
        (
            {"columns": {"age": {"min": 5, "max": 1}}},
            "columns.age: min (5) is greater than max (1)",
        ),
        ({"columns": {"age": {"not-null": "yes"}}}, "columns.age.not-null: expected true or false"),
        ({"columns": {"c": {"allowed": "DE"}}}, "columns.c.allowed: expected a non-empty list"),
        ({"columns": {"c": {"allowed": []}}}, "columns.c.allowed: expected a non-empty list"),
        ({"columns": ["age"]}, "columns: expected a mapping"),
        ({"columns": {"age": 5}}, "columns.age: expected a mapping"),
        ("rows > 5", "expected a mapping like {min-rows"),
        (None, "expected a mapping"),
    ],
)
def test_parse_quality_rejects_naming_the_key(raw: Any, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_quality(raw)
    assert message in str(caught.value)


def test_parse_drift_reads_the_documented_forms() -> None:
    assert parse_drift(True) == DriftRules()
    assert parse_drift(False) is None
    assert parse_drift(None) is None
    assert parse_drift({}) == DriftRules()
    rules = parse_drift(
        {
            "psi": 0.25,
            "ks": None,
            "bins": 20,
            "features": ["age", "country"],
            "per-feature": {"age": {"psi": 0.3}, "country": {"ks": 0.2}},
        }
    )
    assert rules == DriftRules(
        psi=0.25,
        ks=None,
        bins=20,
        features=("age", "country"),
        per_feature={"age": (0.3, None), "country": (None, 0.2)},
    )
    assert parse_drift({"psi": False}) == DriftRules(psi=None)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"pis": 0.2}, "pis: unknown key 'pis'; known keys: psi, ks, bins, features, per-feature"),
        ({"per_feature": {}}, "did you mean 'per-feature'?"),
        ({"psi": "0.2"}, "psi: expected a number, got '0.2'"),
        ({"ks": -0.1}, "ks: expected a threshold of 0 or more"),
        ({"bins": 1}, "bins: expected a whole number from 2 to 1000"),
        ({"bins": True}, "bins: expected a whole number from 2 to 1000"),
        ({"features": "age"}, "features: expected a non-empty list of column names"),
        ({"features": [1]}, "features: column names must be non-empty strings"),
        ({"per-feature": {"age": {"psi": 0.3, "kss": 1}}}, "per-feature.age.kss: unknown key"),
        ({"per-feature": {"age": 0.3}}, "per-feature.age: expected a mapping"),
        ({"per-feature": {"age": {"psi": False}}}, "per-feature.age.psi: expected a number"),
        (
            {"features": ["x"], "per-feature": {"age": {"psi": 0.3}}},
            "per-feature.age: 'age' is not one of features ['x']",
        ),
        ("yes", "expected a mapping like true, false, or {psi"),
    ],
)
def test_parse_drift_rejects_naming_the_key(raw: Any, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_drift(raw)
    assert message in str(caught.value)


def test_parse_schema_rules() -> None:
    assert parse_schema_rules(True) == SchemaRules()
    assert parse_schema_rules(None) == SchemaRules()
    assert parse_schema_rules({"null-tolerance": 0.1}) == SchemaRules(null_tolerance=0.1)
    assert parse_schema_rules(
        {"range-tolerance": 0, "null-tolerance": 0, "unseen-tolerance": 0.5}
    ) == SchemaRules(range_tolerance=0.0, null_tolerance=0.0, unseen_tolerance=0.5)
    for raw, message in [
        ({"range_tolerance": 0.1}, "did you mean 'range-tolerance'?"),
        ({"tolerance": 0.1}, "tolerance: unknown key 'tolerance'; known keys: range-tolerance"),
        ({"unseen-tolerance": 2}, "unseen-tolerance: expected a fraction from 0 to 1"),
        (False, "expected a mapping like true or {range-tolerance"),
    ]:
        with pytest.raises(ValueError) as caught:
            parse_schema_rules(raw)
        assert message in str(caught.value)


def test_the_rules_module_imports_no_data_library() -> None:
    # the gate parses its options (and --dry-run prints them) without loading pandas & co.
    code = (
        "import sys, steps.checks.data_rules\n"
        "heavy = {'pandas', 'numpy', 'scipy'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
