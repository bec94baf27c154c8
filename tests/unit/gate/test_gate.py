"""gate's pure parts: thresholds as written and as judged, the report's forms, the options'
checks, and a dry run that loads no data library."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from steps.checks import report
from steps.checks.thresholds import Delta, Measured, judge, parse_margin, parse_metric_thresholds
from steps.checks.verdict import Check, verdict
from tests.unit.test_cli import HEAVY, imported_after, mlsteps

# ----- thresholds as written -----------------------------------------------------------------


def test_thresholds_in_every_form() -> None:
    found = parse_metric_thresholds(
        "{accuracy: {min: 0.9, min-delta: -0.01}, rmse: {max: 3, max-delta: '2%'}, "
        "latency: {better: lower}}"
    )
    assert found["accuracy"].min == 0.9 and found["accuracy"].min_delta == Delta(-0.01, False)
    assert found["rmse"].max_delta == Delta(0.02, True)
    assert found["latency"].better == "lower" and found["latency"].empty
    # repeated flags merge; the file's mapping is taken as it is
    merged = parse_metric_thresholds(["{accuracy: {min: 0.9}}", "{f1: {min: 0.8}}"])
    assert set(merged) == {"accuracy", "f1"}
    assert parse_metric_thresholds({"f1": {"min": 1}})["f1"].min == 1.0


def test_repeated_flags_merge_the_rules_of_one_metric() -> None:
    merged = parse_metric_thresholds(
        ["{accuracy: {min: 0.9}}", "{accuracy: {min-delta: 0}, f1: {min: 0.5}}", "{f1: {min: 0.7}}"]
    )
    assert merged["accuracy"].min == 0.9 and merged["accuracy"].min_delta == Delta(0, False)
    assert merged["f1"].min == 0.7  # the later value of the same key wins


def test_a_repeated_flag_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(ValueError, match="a mapping, got '\\[f1\\]'"):
        parse_metric_thresholds(["{accuracy: {min: 0.9}}", "[f1]"])


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("{accuracy: {minimum: 0.9}}", "accuracy: unknown key 'minimum'"),
        ("{accuracy: {min: high}}", "accuracy.min: 'high' is not a number"),
        ("{accuracy: {min-delta: 'ten%'}}", "accuracy.min-delta: 'ten%' is not a percentage"),
        ("{accuracy: {better: up}}", "accuracy.better: 'higher' or 'lower'"),
        ("{accuracy: 0.9}", "accuracy: a mapping of min, max"),
        ("[accuracy]", "a mapping"),
        ("{accuracy: {min: [", "YAML"),
    ],
)
def test_bad_thresholds_name_the_key(raw: str, words: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_metric_thresholds(raw)
    assert words in str(caught.value)


# ----- thresholds as judged ------------------------------------------------------------------


def one(checks: list[Check]) -> Check:
    assert len(checks) == 1, checks
    return checks[0]


def test_value_thresholds_judge_the_candidate_alone() -> None:
    rule = parse_metric_thresholds("{accuracy: {min: 0.9, max: 0.99}}")["accuracy"]
    passed = judge(Measured(name="accuracy", candidate=0.95), rule, higher=True)
    assert [c.passed for c in passed] == [True, True]
    failed = judge(Measured(name="accuracy", candidate=0.85), rule, higher=True)
    assert [c.threshold for c in failed if not c.passed] == ["≥ 0.9"]


@pytest.mark.parametrize(
    ("interval", "passed", "words"),
    [
        ((0.01, 0.03), True, "clears the threshold"),
        ((-0.01, 0.02), False, "within the sampling noise"),
        ((-0.04, -0.01), False, "wholly on the failing side"),
    ],
)
def test_a_change_threshold_passes_only_when_the_interval_clears_it(
    interval: tuple[float, float], passed: bool, words: str
) -> None:
    rule = parse_metric_thresholds("{accuracy: {min-delta: 0}}")["accuracy"]
    m = Measured(name="accuracy", candidate=0.9, champion=0.89, delta_interval=interval)
    check = one(judge(m, rule, higher=True))
    assert (check.passed, check.kind) == (passed, "change")
    assert words in check.detail


def test_relative_change_on_a_lower_is_better_metric() -> None:
    rule = parse_metric_thresholds("{rmse: {max-delta: '-2%'}}")["rmse"]
    improved = Measured(name="rmse", candidate=1.9, champion=2.0)  # -5%
    assert one(judge(improved, rule, higher=False)).passed
    flat = Measured(name="rmse", candidate=1.99, champion=2.0)  # -0.5%
    check = one(judge(flat, rule, higher=False))
    assert not check.passed and check.detail == "Δ = -0.5%"
    with_interval = Measured(
        name="rmse", candidate=1.9, champion=2.0, relative_interval=(-0.08, -0.01)
    )
    assert not one(judge(with_interval, rule, higher=False)).passed  # -1% end is above -2%


@pytest.mark.parametrize(
    ("higher", "interval", "passed"),
    [
        (True, (-0.02, -0.001), False),  # higher is better, significantly lower: worse
        (True, (-0.02, 0.01), True),  # within the noise
        (False, (0.001, 0.02), False),  # lower is better, significantly higher: worse
        (False, (-0.02, -0.001), True),  # significantly better
    ],
)
def test_no_threshold_rejects_only_what_is_worse_beyond_the_noise(
    higher: bool, interval: tuple[float, float], passed: bool
) -> None:
    m = Measured(name="m", candidate=1.0, champion=1.0, delta_interval=interval)
    check = one(judge(m, None, higher=higher))
    assert check.threshold == "not worse (default)" and check.passed is passed


def test_the_default_check_states_its_numbers() -> None:
    worse = Measured(name="m", candidate=0.9, champion=0.95, delta_interval=(-0.08, -0.02))
    assert one(judge(worse, None, higher=True)).detail == (
        "Δ -0.05, interval [-0.08, -0.02]: the whole interval is below 0: the candidate is "
        "worse beyond the sampling noise"
    )
    noise = Measured(name="m", candidate=0.9123, champion=0.9, delta_interval=(-0.004, 0.03))
    assert one(judge(noise, None, higher=True)).detail == (
        "Δ +0.0123, interval [-0.004, +0.03]: no threshold set; rejected only when worse "
        "beyond the sampling noise"
    )


def test_an_undefined_candidate_value_fails_in_words() -> None:
    rule = parse_metric_thresholds("{roc_auc: {min: 0.7, max: 1}}")["roc_auc"]
    checks = judge(Measured(name="roc_auc", candidate=math.nan), rule, higher=True)
    assert [(c.passed, c.detail) for c in checks] == [(False, "undefined on these rows")] * 2


@pytest.mark.parametrize(
    ("rule", "measured", "words"),
    [
        (
            "{m: {min-delta: '1%'}}",
            Measured(name="m", candidate=0.2, champion=0.0),
            "the change is undefined: the champion's value is 0",
        ),
        (
            "{m: {min-delta: 0}}",
            Measured(name="m", candidate=0.9, champion=math.nan, delta_interval=(0.0, 0.1)),
            "the change is undefined: the champion's value is undefined on these rows",
        ),
        (
            "{m: {min-delta: 0}}",
            Measured(name="m", candidate=0.9, champion=0.8, delta_interval=(math.nan, math.nan)),
            "Δ = +0.1, its interval is undefined on these rows",
        ),
        (
            "{}",
            Measured(name="m", candidate=math.nan, champion=0.8, delta_interval=(0.0, 0.1)),
            "the change is undefined: the candidate's value is undefined on these rows",
        ),
        (
            "{}",
            Measured(name="m", candidate=0.9, champion=0.8, delta_interval=(math.nan, math.nan)),
            "the change's interval is undefined on these rows",
        ),
    ],
)
def test_an_undefined_change_fails_in_words(rule: str, measured: Measured, words: str) -> None:
    check = one(judge(measured, parse_metric_thresholds(rule).get("m"), higher=True))
    assert check.kind == "change" and not check.passed
    assert check.detail.startswith(words), check.detail


@pytest.mark.parametrize(
    ("rule", "measured"),
    [
        # 0.3 - 0.2 is 0.09999999999999998: the change meets min-delta 0.1 all the same
        ("{m: {min-delta: 0.1}}", Measured(name="m", candidate=0.3, champion=0.2)),
        ("{m: {min-delta: 0.1}}",
         Measured(name="m", candidate=0.3, champion=0.2, delta_interval=(0.3 - 0.2, 0.2))),
        ("{m: {max-delta: -0.1}}", Measured(name="m", candidate=0.2, champion=0.3)),
        ("{m: {min: 0.3}}", Measured(name="m", candidate=0.1 + 0.2 - 1e-16 * 3)),
        ("{m: {max: 0.3}}", Measured(name="m", candidate=0.1 + 0.2)),  # 0.30000000000000004
    ],
)  # fmt: skip
def test_a_number_equal_to_its_threshold_up_to_float_rounding_meets_it(
    rule: str, measured: Measured
) -> None:
    checks = judge(measured, parse_metric_thresholds(rule)["m"], higher=True)
    assert checks and all(c.passed for c in checks), checks


def test_a_real_difference_below_the_threshold_still_fails() -> None:
    rule = parse_metric_thresholds("{m: {min: 0.3, min-delta: 0.1}}")["m"]
    checks = judge(Measured(name="m", candidate=0.2999999, champion=0.2), rule, higher=True)
    assert [c.passed for c in checks] == [False, False]


def test_the_default_check_at_an_interval_ending_at_zero_up_to_rounding_passes() -> None:
    m = Measured(name="m", candidate=0.3, champion=0.3, delta_interval=(-0.05, 0.2 + 0.1 - 0.3))
    assert one(judge(m, None, higher=True)).passed  # high is -5.5e-17, not below 0


def test_an_infinite_value_is_judged_and_said() -> None:
    rule = parse_metric_thresholds("{mape: {max: 3, max-delta: 0}}")["mape"]
    checks = judge(Measured(name="mape", candidate=math.inf, champion=math.inf), rule, False)
    assert [(c.kind, c.passed) for c in checks] == [("metric", False), ("change", False)]
    assert checks[0].detail == "infinite (null in report.json)"
    assert checks[1].detail == "the change is undefined: both values are infinite"


def test_an_end_within_its_resampling_error_of_the_threshold_is_too_close_to_call() -> None:
    rule = parse_metric_thresholds("{m: {min-delta: -0.01}}")["m"]
    near = Measured(name="m", candidate=0.9, champion=0.9, delta_interval=(-0.0105, 0.01),
                    delta_error=(0.001, 0.001))  # fmt: skip
    check = one(judge(near, rule, higher=True))
    assert check.undecided and not check.passed
    assert "too close to call: its lower end lies within the resampling error" in check.detail
    far = dataclasses.replace(near, delta_error=(0.0001, 0.0001))
    decided = one(judge(far, rule, higher=True))
    assert not decided.undecided and not decided.passed and "straddles" in decided.detail
    # the default check's end is judged against 0 the same way
    zero = Measured(name="m", candidate=0.9, champion=0.9, delta_interval=(-0.02, -0.0002),
                    delta_error=(0.001, 0.0005))  # fmt: skip
    assert one(judge(zero, None, higher=True)).undecided
    assert "undecided" not in one(judge(zero, None, higher=True)).to_json()


def test_a_default_margin_bounds_the_metrics_without_a_threshold() -> None:
    worse = Measured(name="m", candidate=0.9, champion=0.915, delta_interval=(-0.03, 0.002))
    assert one(judge(worse, None, higher=True)).passed  # not proven worse: passes without one
    check = one(judge(worse, None, higher=True, margin=parse_margin("0.01")))
    assert check.threshold == "Δ ≥ -0.01 (default-margin)" and not check.passed
    lower = Measured(name="rmse", candidate=2.0, champion=2.0, relative_interval=(-0.01, 0.004),
                     delta_interval=(-0.02, 0.008))  # fmt: skip
    assert one(judge(lower, None, higher=False, margin=parse_margin("0.5%"))).passed
    explicit = parse_metric_thresholds("{m: {min: 0.5}}")["m"]
    assert [c.threshold for c in judge(worse, explicit, True, margin=parse_margin(0.01))] == [
        "≥ 0.5"
    ]  # a metric with a threshold is judged by it alone


@pytest.mark.parametrize(
    ("raw", "value"),
    [("0.01", Delta(0.01, False)), ("1%", Delta(0.01, True)), (0, Delta(0, False))],
)
def test_margins_in_every_form(raw: Any, value: Delta) -> None:
    assert parse_margin(raw) == value


@pytest.mark.parametrize("raw", ["-0.01", "inf", "nan", "a lot", "-1%", "%"])
def test_a_bad_margin_is_refused_naming_the_form(raw: str) -> None:
    with pytest.raises(ValueError, match="0.01"):
        parse_margin(raw)


def test_the_derived_seed_is_fixed_by_the_data_and_the_models() -> None:
    from steps.gate.scoring import derived_seed

    seed = derived_seed("sha256:data", ["sha256:cand", "sha256:champ"])
    assert seed == derived_seed("sha256:data", ["sha256:cand", "sha256:champ"])
    assert 0 <= seed < 2**48
    others = {derived_seed("sha256:data2", ["sha256:cand", "sha256:champ"]),
              derived_seed("sha256:data", ["sha256:cand2", "sha256:champ"]),
              derived_seed("sha256:data", ["sha256:cand"])}  # fmt: skip
    assert seed not in others and len(others) == 3


def test_no_champion_no_change_checks() -> None:
    rule = parse_metric_thresholds("{accuracy: {min: 0.5, min-delta: 0}}")["accuracy"]
    checks = judge(Measured(name="accuracy", candidate=0.9), rule, higher=True)
    assert [c.kind for c in checks] == ["metric"]


def test_verdict_ignores_warn_only_failures() -> None:
    failing = Check(kind="metric", name="a", passed=False, threshold="≥ 1", enforced=False)
    assert failing.status == "warn" and verdict([failing]) == "pass"
    assert verdict([Check(kind="metric", name="a", passed=False, threshold="≥ 1")]) == "rejected"


# ----- the report ----------------------------------------------------------------------------


def sample_report(checks: list[Check]) -> dict[str, Any]:
    return {
        "model": "churn",
        "candidate": {"uri": "models:/churn/7", "version": "7"},
        "champion": {"uri": "models:/churn/5", "version": "5"},
        "verdict": verdict(checks),
        "evaluation": {"summary": "both scored on the same 10 rows"},
        "checks": [c.to_json() for c in checks],
        "metrics": {
            "accuracy": {
                "candidate": 0.9,
                "champion": 0.8,
                "candidate_interval": [0.85, 0.95],
                "champion_interval": [0.75, 0.85],
                "higher_is_better": True,
            },
        },  # fmt: skip
        "notes": ["Slice group=c: 3 rows, fewer than min-size 30: not judged."],
    }


def test_markdown_names_every_failure_with_numbers_and_threshold(tmp_path: Path) -> None:
    checks = [
        Check(kind="metric", name="accuracy", passed=True, threshold="≥ 0.8", candidate=0.9),
        Check(kind="slice", name="recall [group=b]", passed=False, threshold="≥ 0.7",
              candidate=0.41, champion=0.72),
        Check(kind="drift", name="age (PSI)", passed=False, threshold="≤ 0.2", candidate=0.31,
              detail="10 bins"),
    ]  # fmt: skip
    page = report.markdown(sample_report(checks))
    assert page.startswith("### mlsteps gate: ❌ rejected")
    assert "slice recall [group=b] = 0.41, needs ≥ 0.7" in page
    assert "drift age (PSI) = 0.31, needs ≤ 0.2 (10 bins)" in page
    assert "| slice: recall [group=b] | 0.41 | 0.72 |" in page
    assert "- Slice group=c: 3 rows" in page
    paths = report.write(sample_report(checks), tmp_path)
    assert paths["png"].read_bytes().startswith(b"\x89PNG")
    assert json.loads(paths["json"].read_text())["verdict"] == "rejected"


def test_markdown_lists_failures_first_and_says_what_the_interval_is_of() -> None:
    checks = [
        Check(kind="metric", name="a", passed=True, threshold="≥ 0.8", candidate=0.9,
              interval=(0.85, 0.95)),
        Check(kind="metric", name="b", passed=False, threshold="≥ 0.8", candidate=0.7,
              enforced=False),
        Check(kind="change", name="c", passed=False, threshold="Δ ≥ +0", candidate=0.7),
        Check(kind="metric", name="d", passed=False, threshold="≥ 0.8", candidate=0.7),
    ]  # fmt: skip
    sample = {**sample_report(checks), "metrics": {}}
    sample["evaluation"]["confidence"] = 0.95
    rows = [line for line in report.markdown(sample).splitlines() if line.startswith("| ")]
    assert rows[0].split(" | ")[4] == "interval (95%)"
    assert [row.split(" | ")[0] for row in rows[1:]] == [
        "| ---", "| change: c", "| metric: d", "| metric: b", "| metric: a",
    ]  # fmt: skip
    assert "Interval: of Δ for change checks, of the candidate's value otherwise." in (
        report.markdown(sample)
    )
    without = sample_report(checks[1:])  # no interval anywhere, no confidence
    assert "| interval |" in report.markdown(without)
    assert "Interval: of" not in report.markdown(without)


def test_markdown_without_checks_shows_the_logged_metrics() -> None:
    shown = sample_report([])
    shown["metrics"]["loss"] = {"candidate": 0.25, "champion": None}
    page = report.markdown(shown)
    assert "No checks ran.\n\n| metric | candidate | champion | delta |" in page
    assert "| accuracy | 0.9 | 0.8 | 0.1 |" in page and "| loss | 0.25 | — | — |" in page
    assert "No checks ran.\n\n- Slice" in report.markdown({**shown, "metrics": {}})


def test_markdown_shows_metrics_no_check_judged() -> None:
    """With --resamples 0 a metric without a threshold gets no check: it is still shown."""
    checks = [Check(kind="metric", name="f1", passed=True, threshold="≥ 0.5", candidate=0.7)]
    sample = sample_report(checks)  # its metrics: accuracy (no check) and nothing else
    page = report.markdown(sample)
    assert "Shown, not judged:\n\n| metric | candidate | champion | delta |" in page
    assert "| accuracy | 0.9 | 0.8 | 0.1 |" in page
    judged = [*checks, Check(kind="change", name="accuracy", passed=True, threshold="x")]
    assert "Shown, not judged" not in report.markdown(sample_report(judged))


def test_markdown_without_a_champion_says_so() -> None:
    first = {**sample_report([]), "champion": None}
    assert "candidate version 7 (no champion compared);" in report.markdown(first)
    assert "candidate version 7 against champion version 5;" in report.markdown(sample_report([]))


def test_the_digest_is_stable() -> None:
    checks = [Check(kind="metric", name="a", passed=True, threshold="≥ 1", candidate=2.0)]
    assert report.digest(sample_report(checks)) == report.digest(sample_report(checks))
    changed = sample_report(checks)
    changed["checks"][0]["candidate"] = 2.5
    assert report.digest(changed) != report.digest(sample_report(checks))


def test_an_undefined_number_is_null_in_the_json(tmp_path: Path) -> None:
    rule = parse_metric_thresholds("{roc_auc: {min: 0.7}}")["roc_auc"]
    checks = judge(Measured(name="roc_auc", candidate=math.nan), rule, higher=True)
    nan_report = sample_report(checks)
    nan_report["metrics"]["accuracy"]["champion_interval"] = [math.nan, math.nan]
    written = json.loads(report.write(nan_report, tmp_path)["json"].read_text())
    assert written["checks"][0]["candidate"] is None and written["verdict"] == "rejected"
    assert written["metrics"]["accuracy"]["champion_interval"] == [None, None]
    assert report.digest(nan_report) == report.digest(written)  # what promote re-reads


def test_an_infinite_number_is_null_in_the_json_and_noted(tmp_path: Path) -> None:
    """A logged mape of inf (zero labels) broke the JSON; it is null, and a note says so."""
    rule = parse_metric_thresholds("{mape: {max: 3}}")["mape"]
    inf_report = sample_report(judge(Measured(name="mape", candidate=math.inf), rule, False))
    inf_report["metrics"] = {"mape": {"candidate": math.inf, "champion": 0.5}}
    inf_report["notes"] = report.infinite(inf_report["metrics"])
    assert inf_report["notes"] == ["mape: the candidate's value is inf (null in report.json)."]
    text = report.write(inf_report, tmp_path)["json"].read_text()
    written = json.loads(text)  # strict JSON: no Infinity literal
    assert "Infinity" not in text and written["metrics"]["mape"]["candidate"] is None
    assert written["checks"][0]["candidate"] is None
    assert report.digest(inf_report) == report.digest(written)
    assert "mape = inf, needs ≤ 3 (infinite" in report.markdown(inf_report)


@pytest.mark.parametrize("broken", ["canonical_json", "markdown"])
def test_a_report_that_cannot_be_written_leaves_no_directory(
    broken: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(_: Any) -> str:
        raise ValueError("cannot")

    monkeypatch.setattr(report, broken, fail)
    checks = [Check(kind="metric", name="a", passed=True, threshold="≥ 1", candidate=2.0)]
    with pytest.raises(ValueError, match="cannot"):
        report.write(sample_report(checks), tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ----- options -------------------------------------------------------------------------------


CANDIDATE = ["--model-uri", "models:/m/1", "--name", "m", "--tracking-uri", "http://h:1"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([], "gate needs a candidate: give --model-uri"),
        (["--model-uri", "s3://b/m"], "gate judges a model MLflow tracks"),
        (["--model-uri", "models:/m/1", "--name", "m"], "set --tracking-uri"),
        (
            ["--model-uri", "models:/m/1", "--tracking-uri", "http://h:1"],
            "--champion-alias champion: finding the champion needs the registered model's name",
        ),
        (
            [*CANDIDATE, "--data", "eval.csv"],
            "scoring the models needs the label column: give --target",
        ),
        ([*CANDIDATE, "--data", "missing.csv", "--target", "y"], "no such file"),
        (
            [*CANDIDATE, "--slices", "{columns: [g], metrics: {accuracy: {min: 0.5}}}"],
            "--slices check the evaluation data: give --data",
        ),
        ([*CANDIDATE, "--resamples", "50"], "--resamples 50: intervals need at least 100"),
        (
            [*CANDIDATE, "--confidence", "1.5"],
            "--confidence 1.5: a level of at least 0.5 and below 1",
        ),
        ([*CANDIDATE, "--slices", "{columns: [g], size: 3}"], "unknown key 'size'"),
        (
            [*CANDIDATE, "--drift", "{psi: high}"],
            "--drift '{psi: high}' is not valid: psi: expected a number",
        ),
    ],
)
def test_option_checks_exit_2_naming_the_option(
    args: list[str], words: str, tmp_path: Path
) -> None:
    (tmp_path / "eval.csv").write_text("x,y\n1,0\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLSTEPS_", "MLFLOW_"))}
    done = mlsteps("gate", *args, cwd=tmp_path, env=env)
    assert done.returncode == 2, done.stderr
    assert words in done.stderr and "Traceback" not in done.stderr


def test_help_and_a_full_dry_run_load_no_data_library(tmp_path: Path) -> None:
    (tmp_path / "eval.csv").write_text("x,g,y\n1,a,0\n")
    (tmp_path / "train.csv").write_text("x,g,y\n1,a,0\n")
    assert not imported_after(["gate", "--help"], tmp_path) & set(HEAVY)
    dry = [
        "--dry-run", "gate", "--model-uri", "models:/m/1", "--name", "m", "--tracking-uri",
        "http://h:1", "--data", "eval.csv", "--target", "y", "--training-data", "train.csv",
        "--metrics", "{accuracy: {min: 0.9}}", "--quality", "{min-rows: 1}",
        "--slices", "{columns: [g], max-gap: {recall: 0.1}}", "--drift", "{psi: 0.3}",
    ]  # fmt: skip
    loaded = imported_after(dry, tmp_path)
    # yaml: the rule options given as flags are YAML text; requests: the dry run reads the
    # registry for the candidate and the champion, as package's dry run reads MLmodel.
    heavy = loaded & ({*HEAVY, "pandas", "scipy", "matplotlib"} - {"yaml", "requests"})
    assert not heavy, heavy
    done = mlsteps(*dry, cwd=tmp_path)
    # It tries the registry (none at h:1): said as a warning, the plan shown all the same.
    assert done.returncode == 0, done.stderr
    assert "could not read MLflow" in done.stderr and "http://h:1" in done.stderr
    assert "Traceback" not in done.stderr and "accuracy" in done.stdout
    assert not (tmp_path / "mlsteps-gate").exists()


def test_a_data_gate_without_the_gate_extra_names_it(tmp_path: Path) -> None:
    """A Python without pandas and scikit-learn (sys.modules[name] = None hides a module from
    import and from find_spec alike): exit 2 naming the extra, before anything is read."""
    (tmp_path / "eval.csv").write_text("x,y\n1,0\n")
    args = ["gate", "--model-uri", "models:/m/1", "--name", "m", "--tracking-uri", "http://h:1",
            "--data", "eval.csv", "--target", "y"]  # fmt: skip
    code = (
        "import sys, runpy\n"
        "sys.modules['pandas'] = sys.modules['sklearn'] = None\n"
        f"sys.argv = ['mlsteps', *{args!r}]\n"
        "runpy.run_module('steps', run_name='__main__')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSTEPS_")}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert (
        "gate --data needs the gate extra: pip install 'mlsteps[gate]' (missing here: pandas, "
        "sklearn)"
    ) in done.stderr
    assert "Traceback" not in done.stderr and "h:1" not in done.stderr  # nothing was read
    assert not (tmp_path / "mlsteps-gate").exists()


def test_without_matplotlib_the_report_has_no_chart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gate on logged metrics runs on the core install, which has no matplotlib."""
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises
    (tmp_path / "report.png").write_bytes(b"an old chart")
    checks = [Check(kind="metric", name="a", passed=True, threshold="≥ 1", candidate=2.0)]
    paths = report.write(sample_report(checks), tmp_path)
    assert set(paths) == {"md", "json"}
    assert not (tmp_path / "report.png").exists()  # not a chart of another run
