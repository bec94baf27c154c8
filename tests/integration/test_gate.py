"""`mlsteps gate` against a real MLflow server: thresholds on logged metrics, both models scored
on the same rows with paired bootstrap intervals, slices, schema and drift, the report in the
CI summary and in MLflow, and every bad input refused before anything is written.

The models and data come from tests/integration/gate_setup.py (fixed seeds: exact verdicts).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from tests import model_probes
from tests.integration import gate_setup
from tests.integration.test_train import mlsteps, run_info, tags_of

pytestmark = pytest.mark.services

MODEL = "it-gate"


@pytest.fixture(scope="module")
def models(mlflow_server: Any, tmp_path_factory: pytest.TempPathFactory) -> gate_setup.GateModels:
    return gate_setup.build(mlflow_server.uri, MODEL, tmp_path_factory.mktemp("gate-data"))


def gate(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Any:
    cwd.mkdir(parents=True, exist_ok=True)
    return mlsteps("--json", "gate", *args, cwd=cwd, env=env, timeout=600)


def result_of(done: Any) -> dict[str, Any]:
    # the result is the last line (on GitHub, workflow commands share stdout with it)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def version_tags(uri: str, name: str, version: str) -> dict[str, str]:
    found = requests.get(
        f"{uri}/api/2.0/mlflow/model-versions/get",
        params={"name": name, "version": version},
        timeout=10,
    ).json()["model_version"]
    return {t["key"]: t["value"] for t in found.get("tags", [])}


def artifact(uri: str, run_id: str, rel: str) -> bytes | None:
    run = run_info(uri, run_id)
    base = run["info"]["artifact_uri"].removeprefix("mlflow-artifacts:").strip("/")
    answer = requests.get(f"{uri}/api/2.0/mlflow-artifacts/artifacts/{base}/{rel}", timeout=10)
    return answer.content if answer.ok else None


def gate_tags(uri: str, run_id: str) -> dict[str, str]:
    return {k: v for k, v in tags_of(run_info(uri, run_id)).items() if k.startswith("mlsteps.gate")}


def data_args(
    models: gate_setup.GateModels, role: str, *extra: str, data: Path | None = None
) -> list[str]:
    """The gate of version `role` on the evaluation data (or `data`, an edited copy of it)."""
    return [
        "--model-uri", f"models:/{MODEL}/{models.versions[role]}", "--name", MODEL,
        "--data", str(data or models.eval_csv), "--target", "label", *extra,
    ]  # fmt: skip


# ----- thresholds on the metrics the runs logged ---------------------------------------------


@pytest.fixture(scope="module")
def logged(mlflow_server: Any) -> dict[str, str]:
    """A champion and a candidate that only logged metrics (no --data: those are compared)."""
    uri, name = mlflow_server.uri, "it-gate-logged"
    champion_run = gate_setup.run_with_metrics(uri, {"accuracy": 0.90, "rmse": 2.0})
    candidate_run = gate_setup.run_with_metrics(uri, {"accuracy": 0.92, "rmse": 1.9})
    champion = gate_setup.register_run(uri, name, champion_run)
    candidate = gate_setup.register_run(uri, name, candidate_run)
    gate_setup.set_alias(uri, name, "champion", champion)
    return {"name": name, "champion": champion, "candidate": candidate, "run": candidate_run}


@pytest.mark.parametrize(
    ("thresholds", "failing"),
    [
        # higher is better (accuracy) and lower is better (rmse, relative: -5% ≤ -2%)
        ("{accuracy: {min: 0.9, min-delta: 0.01}, rmse: {max: 2.5, max-delta: '-2%'}}", []),
        ("{accuracy: {min: 0.95}}", ["metric accuracy = 0.92, needs ≥ 0.95"]),
        ("{accuracy: {min-delta: 0.05}}", ["change accuracy: Δ = +0.02, needs Δ ≥ +0.05"]),
        ("{rmse: {max-delta: '-10%'}}", ["change rmse: Δ = -5%, needs Δ ≤ -10%"]),
        ("{rmse: {max: 1.5}, accuracy: {max-delta: 0.0}}", ["rmse = 1.9", "accuracy: Δ = +0.02"]),
    ],
)
def test_thresholds_on_logged_metrics(
    mlflow_server: Any, logged: dict[str, str], tmp_path: Path, thresholds: str,
    failing: list[str],
) -> None:  # fmt: skip
    summary = tmp_path / "summary.md"
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary),
           "GITHUB_OUTPUT": str(tmp_path / "out")}  # fmt: skip
    done = gate(
        "--model-uri", f"models:/{logged['name']}/{logged['candidate']}", "--name",
        logged["name"], "--tracking-uri", mlflow_server.uri, "--metrics", thresholds,
        cwd=tmp_path, env=env,
    )  # fmt: skip
    result = result_of(done)
    report = json.loads((tmp_path / "mlsteps-gate" / "report.json").read_text())
    assert report["champion"]["version"] == logged["champion"]
    tags = version_tags(mlflow_server.uri, logged["name"], logged["candidate"])
    assert tags["mlsteps.gate.champion-version"] == logged["champion"]
    assert tags["mlsteps.gate.report-digest"] == result["outputs"]["report-digest"]
    if not failing:
        assert done.returncode == 0, done.stderr
        assert result["outputs"]["decision"] == "pass"
        assert tags["mlsteps.gate.verdict"] == "pass"
        assert "✅ pass" in summary.read_text()
        return
    assert done.returncode == 3, done.stderr
    assert result["outputs"]["decision"] == "rejected"
    assert result["outputs"]["failed"] == str(len(failing))
    assert tags["mlsteps.gate.verdict"] == "rejected"
    page = summary.read_text()
    for words in failing:
        assert words in result["error"]
        assert words in page
    assert "❌ rejected" in page and "| check | candidate | champion |" in page
    assert "mlsteps gate failed (exit 3)" in page


def test_warn_only_shows_a_failure_without_rejecting(
    mlflow_server: Any, logged: dict[str, str], tmp_path: Path
) -> None:
    done = gate(
        "--model-uri", f"models:/{logged['name']}/{logged['candidate']}", "--name",
        logged["name"], "--tracking-uri", mlflow_server.uri,
        "--metrics", "{accuracy: {min: 0.95}}", "--warn-only", "metric",
        "--warn-only", "acuracy", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "warn-only: metric accuracy = 0.92, needs ≥ 0.95" in done.stderr
    # a --warn-only entry that names nothing is said to have no effect
    assert "--warn-only acuracy: no check of that kind or name ran" in done.stderr
    assert "--warn-only metric:" not in done.stderr
    report = json.loads((tmp_path / "mlsteps-gate" / "report.json").read_text())
    assert [c["status"] for c in report["checks"]] == ["warn"]


def test_a_gate_with_no_check_says_so(
    mlflow_server: Any, logged: dict[str, str], tmp_path: Path
) -> None:
    done = gate(
        "--model-uri", f"models:/{logged['name']}/{logged['candidate']}", "--name",
        logged["name"], "--tracking-uri", mlflow_server.uri, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "no check ran: the gate passes on nothing" in done.stderr
    report = json.loads((tmp_path / "mlsteps-gate" / "report.json").read_text())
    assert report["checks"] == [] and set(report["metrics"]) == {"accuracy", "rmse"}


def test_no_intervals_and_no_thresholds_warn_naming_resamples(
    mlflow_server: Any, models: gate_setup.GateModels, tmp_path: Path
) -> None:
    done = gate(
        *data_args(models, "weak", "--tracking-uri", mlflow_server.uri, "--resamples", "0",
                   "--log-report", "false"),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "no check ran: the gate passes on nothing. With --resamples 0" in done.stderr
    page = (tmp_path / "mlsteps-gate" / "report.md").read_text()
    assert "No checks ran." in page and "| accuracy |" in page


# ----- both models on the same rows ------------------------------------------------------------


def test_a_difference_within_the_noise_is_not_separated(
    mlflow_server: Any, models: gate_setup.GateModels, tmp_path: Path
) -> None:
    """The twin differs from the champion by less than the sampling noise: "better by at
    least 0" cannot be shown (rejected: the interval straddles 0), and with no threshold the
    default rule (reject only when worse beyond the noise) lets it pass."""
    uri = ["--tracking-uri", mlflow_server.uri]
    strict = gate(*data_args(models, "twin", *uri, "--metrics", "{accuracy: {min-delta: 0}}"),
                  cwd=tmp_path / "strict")  # fmt: skip
    assert strict.returncode == 3, strict.stderr
    assert "within the sampling noise" in result_of(strict)["error"]
    report = json.loads((tmp_path / "strict" / "mlsteps-gate" / "report.json").read_text())
    low, high = report["metrics"]["accuracy"]["delta_interval"]
    assert low < 0 < high
    default = gate(*data_args(models, "twin", *uri), cwd=tmp_path / "default")
    assert default.returncode == 0, default.stderr
    again = gate(*data_args(models, "twin", *uri), cwd=tmp_path / "again")
    # same models and rows, so the same derived seed: the same report, to the digest
    assert (
        result_of(again)["outputs"]["report-digest"]
        == result_of(default)["outputs"]["report-digest"]
    )
    report = json.loads((tmp_path / "default" / "mlsteps-gate" / "report.json").read_text())
    evaluation = report["evaluation"]
    assert evaluation["seed_from"] == "the digests of the data and the models"
    assert (
        evaluation["seed"]
        == json.loads((tmp_path / "strict" / "mlsteps-gate" / "report.json").read_text())[
            "evaluation"
        ]["seed"]
    )  # the thresholds differ, the data and the models do not
    # no margin: the plan-like notes say a somewhat worse candidate can pass
    assert any(n.startswith("No margin set: accuracy, f1, roc_auc") for n in report["notes"])
    assert evaluation["default_margin"] is None
    given = gate(*data_args(models, "twin", *uri, "--seed", "7", "--log-report", "false"),
                 cwd=tmp_path / "given")  # fmt: skip
    assert given.returncode == 0, given.stderr
    evaluation = json.loads((tmp_path / "given" / "mlsteps-gate" / "report.json").read_text())[
        "evaluation"
    ]
    assert (evaluation["seed"], evaluation["seed_from"]) == (7, "--seed")


def test_a_default_margin_rejects_a_candidate_not_shown_within_it(
    mlflow_server: Any, models: gate_setup.GateModels, tmp_path: Path
) -> None:
    """The twin is within the noise of the champion: it passes the default check, but a margin
    of 0.001 needs its whole interval above -0.001, which it is not."""
    done = gate(
        *data_args(models, "twin", "--tracking-uri", mlflow_server.uri, "--metrics",
                   "{accuracy: {}}", "--default-margin", "0.001", "--log-report", "false"),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "change accuracy: Δ interval [" in result_of(done)["error"]
    assert "needs Δ ≥ -0.001 (default-margin)" in result_of(done)["error"]
    report = json.loads((tmp_path / "mlsteps-gate" / "report.json").read_text())
    assert report["evaluation"]["default_margin"] == "+0.001"
    assert not any(n.startswith("No margin set") for n in report["notes"])
    plan = gate(
        *data_args(models, "twin", "--tracking-uri", mlflow_server.uri, "--dry-run"),
        cwd=tmp_path / "plan",
    )  # fmt: skip
    (evaluate,) = [a for a in result_of(plan)["plan"] if a["kind"] == "gate.evaluate"]
    assert (
        "no margin set: metrics without a threshold reject only a candidate worse"
        in (evaluate["line"])
    )
    assert "seed derived from the digests of the data and the models" in evaluate["line"]


def test_an_end_within_the_resampling_error_of_its_threshold_gets_more_resamples(
    mlflow_server: Any, models: gate_setup.GateModels, tmp_path: Path
) -> None:
    """A min-delta set exactly at the lower end of the interval a first gate found: the end
    lies within its resampling error, so the gate resamples again (doubling, up to 8×) and
    then decides, or fails the check as too close to call (a failing, named result: the data
    cannot tell, so the candidate is not let through)."""
    # A seed of its own: the derived one comes from the model files' digests, which differ in
    # every session (MLmodel holds the run's id and time), and whether the end stays on the
    # threshold at every doubling depends on the draws.
    uri = ["--tracking-uri", mlflow_server.uri, "--log-report", "false", "--seed", "0"]
    first = gate(*data_args(models, "twin", *uri, "--metrics", "{accuracy: {min-delta: -1}}"),
                 cwd=tmp_path / "first")  # fmt: skip
    assert first.returncode == 0, first.stderr
    report = json.loads((tmp_path / "first" / "mlsteps-gate" / "report.json").read_text())
    low = report["metrics"]["accuracy"]["delta_interval"][0]
    assert report["evaluation"]["resamples"] == 1000
    rule = f"{{accuracy: {{min-delta: {low!r}}}}}"
    near = gate(*data_args(models, "twin", *uri, "--metrics", rule), cwd=tmp_path / "near")
    assert "Traceback" not in near.stderr
    assert "resampling again with 2000 resamples" in near.stderr
    report = json.loads((tmp_path / "near" / "mlsteps-gate" / "report.json").read_text())
    # accuracy moves in steps of 1/3000: the end stays on the threshold at every doubling
    assert report["evaluation"]["resamples"] == 8000
    (check,) = report["checks"]
    assert check["status"] == "fail" and near.returncode == 3
    assert "too close to call: its lower end lies within the resampling error" in check["detail"]
    assert "after 8000 resamples" in result_of(near)["error"]


def test_a_clearly_better_candidate_is_separated(
    mlflow_server: Any, models: gate_setup.GateModels, tmp_path: Path
) -> None:
    gate_setup.set_alias(mlflow_server.uri, MODEL, "weakest", models.versions["weak"])
    uri = ["--tracking-uri", mlflow_server.uri]
    better = gate(
        *data_args(models, "champion", *uri, "--champion-alias", "weakest", "--metrics",
                   "{accuracy: {min-delta: 0.05}, roc_auc: {min-delta: '5%'}}"),
        cwd=tmp_path / "better",
    )  # fmt: skip
    assert better.returncode == 0, better.stderr
    report = json.loads((tmp_path / "better" / "mlsteps-gate" / "report.json").read_text())
    assert report["metrics"]["accuracy"]["delta_interval"][0] > 0.05
    # the other way round, with no threshold: worse beyond the noise → rejected by default
    worse = gate(*data_args(models, "weak", *uri), cwd=tmp_path / "worse")
    assert worse.returncode == 3, worse.stderr
    assert "worse beyond the sampling noise" in result_of(worse)["error"]
    png = tmp_path / "worse" / "mlsteps-gate" / "report.png"
    assert png.read_bytes().startswith(b"\x89PNG")


def test_a_candidate_bad_on_one_group_is_rejected_naming_it(
    mlflow_server: Any, models: gate_setup.GateModels, tmp_path: Path
) -> None:
    slices = ("{columns: [group], min-size: 100, metrics: {accuracy: {min: 0.65}}, "
              "max-gap: {true_positive_rate: 0.15}}")  # fmt: skip
    done = gate(
        *data_args(models, "unfair", "--tracking-uri", mlflow_server.uri, "--slices", slices),
        cwd=tmp_path,
    )
    assert done.returncode == 3, done.stderr
    error = result_of(done)["error"]
    assert "slice accuracy [group=b]" in error
    assert "gap true_positive_rate across group" in error
    assert "[group=a]" not in error
    # the champion, fair on both groups, passes the same rules
    fair = gate(
        *data_args(models, "champion", "--tracking-uri", mlflow_server.uri, "--slices", slices),
        cwd=tmp_path / "fair",
    )
    assert fair.returncode == 0, fair.stderr


# ----- data: schema, drift -------------------------------------------------------------------


def test_drift_detected_on_shifted_data_and_schema_stored_with_the_model(
    mlflow_server: Any, models: gate_setup.GateModels, tmp_path: Path
) -> None:
    common = [
        "--model-uri", f"models:/{MODEL}/{models.versions['twin']}", "--name", MODEL,
        "--tracking-uri", mlflow_server.uri, "--target", "label", "--resamples", "0",
    ]  # fmt: skip
    steady = gate(*common, "--data", str(models.eval_csv), "--training-data",
                  str(models.train_csv), cwd=tmp_path / "steady")  # fmt: skip
    assert steady.returncode == 0, steady.stderr
    run = models.runs["twin"]
    schema = json.loads(artifact(mlflow_server.uri, run, "mlsteps/schema.json") or b"{}")
    assert set(schema["columns"]) == {*gate_setup.FEATURES, "group", "label"}
    shifted = gate(*common, "--data", str(models.shifted_csv), "--training-data",
                   str(models.train_csv), cwd=tmp_path / "shifted")  # fmt: skip
    assert shifted.returncode == 3, shifted.stderr
    error = result_of(shifted)["error"]
    assert "drift x0 (PSI)" in error and "drift x0 (KS)" in error
    assert "x1 (" not in error
    # schema violations, named by column, against the schema stored with the model
    import pandas as pd

    broken = pd.read_csv(models.eval_csv)
    broken["x3"] = broken["x3"] * 100
    broken.loc[: len(broken) // 10, "group"] = "c"
    broken.to_csv(tmp_path / "broken.csv", index=False)
    checked = gate(*common, "--data", str(tmp_path / "broken.csv"), cwd=tmp_path / "broken")
    assert checked.returncode == 3, checked.stderr
    failed = [c["name"] for c in json.loads(
        (tmp_path / "broken" / "mlsteps-gate" / "report.json").read_text())["checks"]
        if c["status"] == "fail"]  # fmt: skip
    assert sorted(failed) == ["group", "x3"]


# ----- the report in MLflow ------------------------------------------------------------------


def test_report_logged_to_the_candidate_run_and_tagged(
    mlflow_server: Any, models: gate_setup.GateModels, tmp_path: Path
) -> None:
    done = gate(*data_args(models, "twin", "--tracking-uri", mlflow_server.uri), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    outputs = result_of(done)["outputs"]
    run = models.runs["twin"]
    local = tmp_path / "mlsteps-gate"
    for name in ("report.md", "report.json", "report.png"):
        logged = artifact(mlflow_server.uri, run, f"mlsteps/gate/{name}")
        assert logged == (local / name).read_bytes()
    tags = gate_tags(mlflow_server.uri, run)
    assert tags["mlsteps.gate.verdict"] == "pass"
    assert tags["mlsteps.gate.champion-version"] == models.versions["champion"]
    assert tags["mlsteps.gate.report-digest"] == outputs["report-digest"]
    assert (
        version_tags(mlflow_server.uri, MODEL, models.versions["twin"])[
            "mlsteps.gate.report-digest"
        ]
        == outputs["report-digest"]
    )
    assert outputs["candidate-version"] == models.versions["twin"]
    assert outputs["champion-version"] == models.versions["champion"]


# ----- bad input: exit 2, nothing written ----------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--metrics", "{accuracyy: {min: 0.5}}"], "--metrics accuracyy: unknown metric"),
        (["--metrics", "{rmse: {max: 1}}"], "--metrics rmse: a regression metric"),
        (["--target", "churned"], "--target churned: no such column"),
        (
            ["--slices", "{columns: [region], metrics: {accuracy: {min: 0.5}}}"],
            "no column 'region' in --data",
        ),
        (["--name", "it-gate-other"], "is a version of 'it-gate', but --name is 'it-gate-other'"),
        (
            ["--champion-alias", "champoin"],
            "--champion-alias champoin: model 'it-gate' has no such alias (it has @champion",
        ),
        (["--metrics", "{accuracy: {min: high}}"], "accuracy.min: 'high' is not a number"),
        (
            ["--slices", "{columns: [group], metrics: {acuracy: {min: 0.5}}}"],
            "--slices metric acuracy: unknown metric",
        ),
        (
            ["--slices", "{columns: [group], max-gap: {rmse: 0.1}}"],
            "--slices metric rmse: a regression metric",
        ),
        (
            ["--report-dir", "/etc/hostname/gate"],
            "--report-dir /etc/hostname/gate: /etc/hostname is a file",
        ),
        (
            ["--model-uri", f"models:/{MODEL}@nowhere"],
            f"alias 'nowhere' of model '{MODEL}' not found",
        ),
    ],
)
def test_bad_input_is_refused_and_leaves_nothing(
    mlflow_server: Any, models: gate_setup.GateModels, tmp_path: Path, extra: list[str],
    words: str,
) -> None:  # fmt: skip
    run = models.runs["weak"]
    before = gate_tags(mlflow_server.uri, run)
    done = gate(*data_args(models, "weak", "--tracking-uri", mlflow_server.uri), *extra,
                cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert words in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "mlsteps-gate").exists()
    assert gate_tags(mlflow_server.uri, run) == before


def test_data_missing_a_model_input_column_is_refused(
    mlflow_server: Any, models: gate_setup.GateModels, tmp_path: Path
) -> None:
    import pandas as pd

    pd.read_csv(models.eval_csv).drop(columns=["x3"]).to_csv(tmp_path / "no-x3.csv", index=False)
    done = gate(
        *data_args(models, "weak", "--tracking-uri", mlflow_server.uri,
                   data=tmp_path / "no-x3.csv"),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "--data: no column 'x3', which the model models:/it-gate/" in done.stderr
    assert not (tmp_path / "mlsteps-gate").exists()


def test_missing_values_the_model_cannot_take_are_bad_data_naming_the_columns(
    mlflow_server: Any, models: gate_setup.GateModels, tmp_path: Path
) -> None:
    """NaN in a feature the model cannot take: exit 2 naming each column, not a service
    failure (exit 1); nothing written."""
    import pandas as pd

    table = pd.read_csv(models.eval_csv)
    table.loc[:4, "x1"] = None
    table.loc[10:11, "x3"] = None
    table.to_csv(tmp_path / "holes.csv", index=False)
    run = models.runs["weak"]
    before = gate_tags(mlflow_server.uri, run)
    done = gate(
        *data_args(models, "weak", "--tracking-uri", mlflow_server.uri,
                   data=tmp_path / "holes.csv"),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "--data: missing values in column 'x1' (5 rows), column 'x3' (2 rows)" in done.stderr
    assert "Drop or fill those rows" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "mlsteps-gate").exists()
    assert gate_tags(mlflow_server.uri, run) == before


def test_no_registered_model_of_that_name(
    mlflow_server: Any, models: gate_setup.GateModels, tmp_path: Path
) -> None:
    done = gate(
        "--model-uri", f"runs:/{models.runs['weak']}/model", "--name", "it-gate-nobody",
        "--tracking-uri", mlflow_server.uri, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "--name it-gate-nobody: no registered model of that name" in done.stderr
    assert "--champion-alias none" in done.stderr  # the fix for the very first model
    assert not (tmp_path / "mlsteps-gate").exists()


def test_rows_without_a_label_are_refused(
    mlflow_server: Any, models: gate_setup.GateModels, tmp_path: Path
) -> None:
    import pandas as pd

    table = pd.read_csv(models.eval_csv)
    table.loc[:6, "label"] = None
    table.to_csv(tmp_path / "unlabelled.csv", index=False)
    done = gate(
        *data_args(models, "weak", "--tracking-uri", mlflow_server.uri,
                   data=tmp_path / "unlabelled.csv"),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "--target label: 7 of 3000 rows of --data" in done.stderr
    assert "have no label. Drop those rows" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "mlsteps-gate").exists()


def test_a_model_sees_only_its_own_inputs(
    mlflow_server: Any, models: gate_setup.GateModels, tmp_path: Path
) -> None:
    """The plain model takes x0..x4; the data also holds `group` (sliced on) and `label`.
    Its probabilities (roc_auc) and the slices must come from its own columns only."""
    done = gate(
        *data_args(models, "plain", "--tracking-uri", mlflow_server.uri, "--champion-alias",
                   "none", "--metrics", "{roc_auc: {min: 0.7}}", "--slices",
                   "{columns: [group], metrics: {roc_auc: {min: 0.7}}}"),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "mlsteps-gate" / "report.json").read_text())
    assert sorted(c["name"] for c in report["checks"]) == [
        "roc_auc", "roc_auc [group=a]", "roc_auc [group=b]",
    ]  # fmt: skip
    assert report["metrics"]["roc_auc"]["candidate"] > 0.75


def test_a_metric_undefined_on_a_slice_fails_in_words(
    mlflow_server: Any, models: gate_setup.GateModels, tmp_path: Path
) -> None:
    """Group b holds one class only: its roc_auc is undefined. That is a failed check saying
    so, and null in the JSON report (not a crash on NaN)."""
    import pandas as pd

    table = pd.read_csv(models.eval_csv)
    table.loc[table.group == "b", "label"] = 0
    table.to_csv(tmp_path / "one-class-b.csv", index=False)
    done = gate(
        *data_args(models, "plain", "--tracking-uri", mlflow_server.uri, "--champion-alias",
                   "none", "--resamples", "0", "--slices",
                   "{columns: [group], metrics: {roc_auc: {min: 0.7}}}", "--log-report",
                   "false", data=tmp_path / "one-class-b.csv"),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    error = result_of(done)["error"]
    assert "slice roc_auc [group=b]" in error and "undefined on these rows" in error
    assert "[group=a]" not in error
    report = json.loads((tmp_path / "mlsteps-gate" / "report.json").read_text())
    (b,) = [c for c in report["checks"] if c["name"] == "roc_auc [group=b]"]
    assert b["candidate"] is None and b["status"] == "fail"


@pytest.mark.parametrize("asked", [False, True])
def test_without_positive_labels_each_metric_not_judged_is_named(
    mlflow_server: Any, models: gate_setup.GateModels, tmp_path: Path, asked: bool
) -> None:
    """No row has the positive label: recall-like metrics and roc_auc say nothing. Left to the
    defaults they are named as not judged (not dropped in silence, not "0 vs 0: pass"); asked
    for by name, their check fails saying why."""
    import pandas as pd

    table = pd.read_csv(models.eval_csv)
    table["label"] = 0
    table.to_csv(tmp_path / "negatives.csv", index=False)
    metrics = ["--metrics", "{accuracy: {min: 0}, f1: {min-delta: -0.5}}"] if asked else []
    done = gate(
        *data_args(models, "twin", "--tracking-uri", mlflow_server.uri, *metrics,
                   "--log-report", "false", data=tmp_path / "negatives.csv"),
        cwd=tmp_path,
    )  # fmt: skip
    assert "Traceback" not in done.stderr
    report = json.loads((tmp_path / "mlsteps-gate" / "report.json").read_text())
    why = "no row has the positive label 1"
    # (the twin's run may hold a schema from another test: its checks are not this test's)
    names = {c["name"] for c in report["checks"] if c["kind"] in ("metric", "change")}
    if asked:
        assert done.returncode == 3, done.stderr
        assert report["not_judged"] == {"f1": why}
        (f1,) = [c for c in report["checks"] if c["name"] == "f1"]
        assert f1["status"] == "fail" and f1["detail"] == f"not judged: {why}"
        assert f"f1: not judged: {why}" in result_of(done)["error"]
        return
    assert report["not_judged"] == {"f1": why, "roc_auc": why}
    assert names == {"accuracy"}
    assert f"f1 not judged: {why}." in report["notes"]
    assert f"Not judged: f1 ({why}); roc_auc ({why})." in done.stderr


HUGE_MODEL = """\
import mlflow


class Huge(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input["x0"] * 0 + 1e300  # on a label of 0, mape overflows to inf


mlflow.models.set_model(Huge())
"""


def test_an_infinite_metric_is_null_in_the_report_and_noted(
    mlflow_server: Any, models: gate_setup.GateModels, tmp_path: Path
) -> None:
    """mape on labels of 0 is infinite here: the check fails saying so, the report stays valid
    JSON (null and a note), and its digest is the one tagged."""
    import mlflow

    code = tmp_path / "huge_model.py"
    code.write_text(HUGE_MODEL)
    with gate_setup.tracking(mlflow_server.uri), mlflow.start_run(run_name="gate-huge") as run:
        mlflow.pyfunc.log_model(name="model", python_model=str(code))
    done = gate(
        "--model-uri", f"runs:/{run.info.run_id}/model", "--champion-alias", "none",
        "--tracking-uri", mlflow_server.uri, "--data", str(models.eval_csv), "--target", "label",
        "--task", "regression", "--metrics", "{mape: {max: 0.5}}", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    text = (tmp_path / "mlsteps-gate" / "report.json").read_text()
    report = json.loads(text)
    assert "Infinity" not in text and report["metrics"]["mape"]["candidate"] is None
    assert "mape: the candidate's value is inf (null in report.json)." in report["notes"]
    assert "metric mape = inf, needs ≤ 0.5 (infinite" in result_of(done)["error"]
    tagged = gate_tags(mlflow_server.uri, run.info.run_id)["mlsteps.gate.report-digest"]
    assert tagged == result_of(done)["outputs"]["report-digest"]


def test_labels_the_metric_cannot_take_are_refused_naming_the_task(
    mlflow_server: Any, models: gate_setup.GateModels, tmp_path: Path
) -> None:
    """A third label the binary model never saw: roc_auc cannot be computed on these rows."""
    import pandas as pd

    table = pd.read_csv(models.eval_csv)
    table.loc[table.x1 > 1.5, "label"] = 2
    table.to_csv(tmp_path / "three-labels.csv", index=False)
    done = gate(
        *data_args(models, "plain", "--tracking-uri", mlflow_server.uri, "--champion-alias",
                   "none", "--metrics", "{roc_auc: {min: 0.5}}",
                   data=tmp_path / "three-labels.csv"),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "the metrics cannot be computed on these rows as classification" in done.stderr
    assert "Check --task (here classification, inferred from the labels)" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "mlsteps-gate").exists()


SHORT_MODEL = """\
import mlflow


class Short(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return [0] * (len(model_input) - 1)  # one answer short


mlflow.models.set_model(Short())
"""


def test_a_model_answering_fewer_rows_than_asked_is_exit_1(
    mlflow_server: Any, models: gate_setup.GateModels, tmp_path: Path
) -> None:
    """The model's fault, not the data's: exit 1 naming the model and both counts."""
    import mlflow

    code = tmp_path / "short_model.py"
    code.write_text(SHORT_MODEL)
    with gate_setup.tracking(mlflow_server.uri), mlflow.start_run(run_name="gate-short") as run:
        mlflow.pyfunc.log_model(name="model", python_model=str(code))
    done = gate(
        "--model-uri", f"runs:/{run.info.run_id}/model", "--champion-alias", "none",
        "--tracking-uri", mlflow_server.uri, "--data", str(models.eval_csv), "--target", "label",
        "--metrics", "{accuracy: {min: 0.5}}", "--resamples", "0", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "gave 2999 predictions for 3000 rows of --data" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "mlsteps-gate").exists()


RECORDER_MODEL = """\
import json
import os

import mlflow

RECORD = {record!r}
SERVICE = {service!r}


def record(moment):
    with open(RECORD, "a") as out:
        home = sorted(os.listdir(os.path.expanduser("~")))
        seen = {{"moment": moment, "env": dict(os.environ), "home": home, "environs": environs(),
                "reaches": reaches(SERVICE), "docker": docker_sockets()}}
        out.write(json.dumps(seen) + "\\n")


record("load")  # a model from code runs this file when it is loaded


class Recorder(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        record("predict")
        return (model_input["x0"] > 0).astype(int)


mlflow.models.set_model(Recorder())
"""

CREDENTIALS = {
    "MLFLOW_TRACKING_USERNAME": "gate-user-7f3a",
    "MLFLOW_TRACKING_PASSWORD": "gate-password-9c1e",
    "AWS_ACCESS_KEY_ID": "AKIAGATETEST0000KEY1",
    "AWS_SECRET_ACCESS_KEY": "gate-aws-secret-4b2d/+x",
    "AWS_SESSION_TOKEN": "gate-aws-session-5e6f",
    "GITHUB_TOKEN": "ghs_gateTokenShouldNotLeak123",
    "VAULT_TOKEN": "hvs.gate-vault-token-8a8a",
}


def test_model_code_runs_without_the_jobs_credentials(
    mlflow_server: Any, models: gate_setup.GateModels, tmp_path: Path
) -> None:
    """Security: loading and scoring the model runs the model's code. It sees none of the
    credentials in the gate's environment, no credentials file of the real home, and (in
    namespaces of its own) neither the gate's environment through /proc, nor the Docker
    socket, nor MLflow on loopback; the verdict is the one its predictions earn."""
    import mlflow
    import pandas as pd

    record = tmp_path / "seen.jsonl"
    code = tmp_path / "recorder_model.py"
    service = mlflow_server.uri.split("//", 1)[1].rstrip("/")  # MLflow, on loopback
    code.write_text(
        model_probes.PROBES + RECORDER_MODEL.format(record=str(record), service=service)
    )
    with gate_setup.tracking(mlflow_server.uri), mlflow.start_run(run_name="gate-env") as run:
        mlflow.pyfunc.log_model(name="model", python_model=str(code))
    record.unlink(missing_ok=True)  # logging the model ran the file here too
    table = pd.read_csv(models.eval_csv)
    accuracy = float(((table.x0 > 0).astype(int) == table.label).mean())
    given = {**CREDENTIALS, "MLSTEPS_MLFLOW_TRACKING_URI": mlflow_server.uri}
    done = gate(
        "--model-uri", f"runs:/{run.info.run_id}/model", "--champion-alias", "none",
        "--data", str(models.eval_csv), "--target", "label",
        "--metrics", "{accuracy: {min: 0.5}}", "--resamples", "0", "--log-report", "false",
        cwd=tmp_path, env=given,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "mlsteps-gate" / "report.json").read_text())
    assert report["verdict"] == "pass"
    assert report["metrics"]["accuracy"]["candidate"] == pytest.approx(accuracy)
    seen = [json.loads(line) for line in record.read_text().splitlines()]
    assert {s["moment"] for s in seen} == {"load", "predict"}
    for moment in seen:
        env = moment["env"]
        # A fresh home: no credentials file (.config is MLflow's, made in the child).
        assert set(moment["home"]) <= {".config", ".cache"}, moment["home"]
        text = json.dumps(env)
        for name, value in given.items():
            assert name not in env and value not in text, (moment["moment"], name)
        assert not any(k.startswith(("MLFLOW_", "AWS_", "MLSTEPS_")) for k in env), env
        assert env["PATH"] and env["HOME"] != str(Path.home())
        model_probes.assert_contained(moment, list(CREDENTIALS.values()))
    assert "without the job's credentials)" in done.stderr  # and not "without namespaces"


def test_threshold_on_a_metric_the_run_did_not_log(
    mlflow_server: Any, logged: dict[str, str], tmp_path: Path
) -> None:
    done = gate(
        "--model-uri", f"models:/{logged['name']}/{logged['candidate']}", "--name",
        logged["name"], "--tracking-uri", mlflow_server.uri, "--metrics", "{f1: {min: 0.5}}",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "logged no metric 'f1' (it logged: accuracy, rmse)" in done.stderr
    assert not (tmp_path / "mlsteps-gate").exists()


def test_dry_run_touches_nothing(
    mlflow_server: Any, models: gate_setup.GateModels, tmp_path: Path
) -> None:
    """The dry run reads what it needs (the candidate, the champion) and writes nothing: it
    shows the thresholds it would apply and the champion it would compare with."""
    run = models.runs["weak"]
    before = gate_tags(mlflow_server.uri, run)
    version_before = version_tags(mlflow_server.uri, MODEL, models.versions["weak"])
    done = gate(*data_args(models, "weak", "--tracking-uri", mlflow_server.uri, "--dry-run",
                           "--training-data", str(models.train_csv), "--metrics",
                           "{accuracy: {min: 0.8, min-delta: '-1%'}, f1: {}}", "--slices",
                           "{columns: [group], max-gap: {recall: 0.1}}"),
                cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    plan = result_of(done)["plan"]
    kinds = [a["kind"] for a in plan]
    assert kinds == [
        "gate.resolve", "gate.load-data", "gate.schema", "gate.drift", "gate.evaluate",
        "gate.slices", "gate.report", "mlflow.log-report",
    ]  # fmt: skip
    (evaluate,) = [a for a in plan if a["kind"] == "gate.evaluate"]
    assert "accuracy (≥ 0.8, Δ ≥ -1%); f1 (no threshold)" in evaluate["line"]
    assert "1000 paired bootstrap resamples" in evaluate["line"]
    assert f"candidate: version {models.versions['weak']} of '{MODEL}'" in done.stderr
    assert f"champion: version {models.versions['champion']} of '{MODEL}'" in done.stderr
    assert not (tmp_path / "mlsteps-gate").exists()
    assert gate_tags(mlflow_server.uri, run) == before
    assert version_tags(mlflow_server.uri, MODEL, models.versions["weak"]) == version_before


def test_dry_run_of_a_version_that_does_not_exist_is_bad_input(
    mlflow_server: Any, models: gate_setup.GateModels, tmp_path: Path
) -> None:
    done = gate(
        "--model-uri", f"models:/{MODEL}/999", "--name", MODEL, "--tracking-uri",
        mlflow_server.uri, "--dry-run", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"--model-uri models:/{MODEL}/999: version 999 of model '{MODEL}' not found" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "mlsteps-gate").exists()
    # a champion alias the model does not have: the same refusal as the run's
    typo = gate(*data_args(models, "weak", "--tracking-uri", mlflow_server.uri, "--dry-run",
                           "--champion-alias", "champoin"), cwd=tmp_path)  # fmt: skip
    assert typo.returncode == 2, typo.stderr
    assert "--champion-alias champoin: model 'it-gate' has no such alias" in typo.stderr


# ----- gate → promote ------------------------------------------------------------------------


def test_a_run_gated_before_registration_is_promoted_on_its_runs_verdict(
    mlflow_server: Any, tmp_path: Path
) -> None:
    """train → gate → package: the report is in the run's artifacts, and promote, handed the
    gate's report-digest output, finds it there."""
    uri, name = mlflow_server.uri, "it-gate-then-register"
    passed = gate_setup.run_with_metrics(uri, {"accuracy": 0.95})
    failed = gate_setup.run_with_metrics(uri, {"accuracy": 0.85})
    digests = {}
    for run_id in (passed, failed):
        judged = gate(
            "--model-uri", f"runs:/{run_id}/model", "--champion-alias", "none",
            "--tracking-uri", uri, "--metrics", "{accuracy: {min: 0.9}}", cwd=tmp_path / run_id,
        )  # fmt: skip
        digests[run_id] = result_of(judged)["outputs"]["report-digest"]
    assert gate_tags(uri, passed)["mlsteps.gate.verdict"] == "pass"
    assert gate_tags(uri, failed)["mlsteps.gate.verdict"] == "rejected"
    good, bad = (
        gate_setup.register_run(uri, name, passed),
        gate_setup.register_run(uri, name, failed),
    )
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    common = ["--tracking-uri", uri, "--name", name]
    refused = mlsteps(
        "--json", "promote", *common, "--version", bad, "--gate-report-digest", digests[failed],
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert refused.returncode == 3, refused.stderr
    done = mlsteps(
        "--json", "promote", *common, "--version", good, "--gate-report-digest", digests[passed],
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert result_of(done)["outputs"]["champion-version"] == good
