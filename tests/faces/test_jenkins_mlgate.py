"""vars/mlGate.groovy under the Groovy harness: the command it builds (rules given as Maps
reach mlsteps as the YAML it parses), the outputs it returns, the report it archives (also when
the candidate is rejected) and how it fails.

The command is run for real by the harness's `sh`: mostly the executable it names is a probe
(tests/faces/gate_promote_setup.py); the last tests drive the real mlsteps CLI as a dry run,
which reads the registry of a real MLflow server, plans the gate and writes nothing.
"""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.faces.gate_promote_setup import AWKWARD, probed, write_probe
from tests.integration import gate_setup

pytestmark = pytest.mark.faces
REPO = Path(__file__).resolve().parents[2]

KNOWN_KEYS = (
    "modelUri, championAlias, metrics, data, target, task, trainingData, slices, schema, "
    "quality, drift, resamples, confidence, seed, defaultMargin, warnOnly, reportDir, logReport, "
    "trackingUri, name, config, mlsteps"
)
PASSED = {
    "decision": "pass",
    "candidate-version": "7",
    "champion-version": "6",
    "report": "",  # set per test: where the probe writes report.md
    "report-digest": "sha256:" + "c" * 64,
    "failed": "0",
}


@pytest.fixture
def probe(tmp_path: Path) -> list[str]:
    return write_probe(tmp_path / "probe dir")


def outputs_with_report(report: str, **changes: str) -> dict[str, str]:
    return {**PASSED, "report": report, **changes}


def test_builds_the_exact_command_with_every_value_single_quoted(run_jenkins: Any) -> None:
    run = run_jenkins(
        "mlGate",
        {
            "mlsteps": "true",  # the command is checked as text; `true` just exits 0
            "config": "conf dir/mlsteps.yaml",
            "modelUri": "models:/churn/7",
            "championAlias": "prod",
            "metrics": {"accuracy": {"min": 0.9, "min-delta": -0.01}, "rmse": {"max": "2%"}},
            "data": "data/eval set.csv",
            "target": "churned",
            "task": "classification",
            "trainingData": "data/train.parquet",
            "slices": "{columns: [group], max-gap: {recall: 0.1}}",
            "schema": False,
            "quality": {"min-rows": 1000},
            "drift": {"psi": 0.2},
            "resamples": 500,
            "confidence": 0.9,
            "seed": "7",
            "warnOnly": ["drift", AWKWARD],
            "reportDir": "gate report",
            "logReport": True,
            "trackingUri": "http://127.0.0.1:5000",
            "name": "churn; rm -rf /",
        },
    )
    assert run.status == "SUCCESS", run.console
    assert run.sh["args"]["returnStatus"] is True
    assert run.sh["args"]["label"] == "mlsteps gate"
    assert run.sh["args"]["script"] == (
        "'true' '--ci' 'jenkins' '--config' 'conf dir/mlsteps.yaml' 'gate'"
        " '--model-uri' 'models:/churn/7' '--champion-alias' 'prod'"
        ' \'--metrics\' \'{"accuracy":{"min":0.9,"min-delta":-0.01},"rmse":{"max":"2%"}}\''
        " '--data' 'data/eval set.csv' '--target' 'churned' '--task' 'classification'"
        " '--training-data' 'data/train.parquet'"
        " '--slices' '{columns: [group], max-gap: {recall: 0.1}}' '--schema' 'false'"
        " '--quality' '{\"min-rows\":1000}' '--drift' '{\"psi\":0.2}'"
        " '--resamples' '500' '--confidence' '0.9' '--seed' '7'"
        " '--warn-only' 'drift' '--warn-only' 'it'\\''s \"quoted\" $HOME `id` \\ ; | & *'"
        " '--report-dir' 'gate report' '--log-report' 'true' '--name' 'churn; rm -rf /'"
    )
    # The tracking URI travels as the environment, as in the other vars.
    assert run.sh["env"]["MLSTEPS_MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"
    # No outputs file (true wrote none): nothing to archive, an empty Map back.
    assert run.calls("archiveArtifacts") == []
    assert run.result == {}


def test_the_shell_hands_every_value_over_unchanged(
    run_jenkins: Any, probe: list[str], tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    rules = "accuracy:\n  min: 0.9   # a comment, 'quoted'\n"
    run = run_jenkins(
        "mlGate",
        {
            "mlsteps": probe,
            "modelUri": "runs:/abc/model",
            "metrics": rules,
            "warnOnly": "age (PSI)",
            "name": "ünïcødé ☃",
            "data": "",  # empty: not set
        },
        workspace=workspace,
    )
    assert run.status == "SUCCESS", run.console
    assert probed(workspace)["argv"] == [
        "--ci",
        "jenkins",
        "gate",
        "--model-uri",
        "runs:/abc/model",
        "--metrics",
        rules,
        "--warn-only",
        "age (PSI)",
        "--name",
        "ünïcødé ☃",
    ]


def test_returns_the_outputs_and_archives_the_report(
    run_jenkins: Any, probe: list[str], tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    outputs = outputs_with_report(str(workspace / "reports" / "gate" / "report.md"))
    run = run_jenkins(
        "mlGate",
        {"mlsteps": probe, "modelUri": "models:/churn/7"},
        workspace=workspace,
        env={"PROBE_OUTPUTS": json.dumps(outputs), "PROBE_REPORT": outputs["report"]},
    )
    assert run.status == "SUCCESS", run.console
    assert run.result == outputs
    (read,) = run.calls("readJSON")
    assert re.fullmatch(
        r"\.mlsteps/outputs/gate-jenkins-faces-test-1-[0-9a-f]{8}\.json", read["args"]["file"]
    )
    (archived,) = run.calls("archiveArtifacts")
    # From the workspace root, as archiveArtifacts takes them; png may be missing (no chart).
    assert archived["args"] == {
        "artifacts": "reports/gate/report.md,reports/gate/report.json,reports/gate/report.png",
        "allowEmptyArchive": True,
        "fingerprint": False,
    }
    for artifact in archived["args"]["artifacts"].split(","):
        assert (workspace / artifact).is_file()


def test_a_relative_report_in_a_subdirectory_is_archived_from_the_workspace_root(
    run_jenkins: Any, probe: list[str], tmp_path: Path
) -> None:
    # dir('project') { mlGate(...) }: the harness's pwd() is the workspace, so give the
    # workspace as a parent of the working directory through WORKSPACE.
    workspace = tmp_path / "ws"
    outputs = outputs_with_report("mlsteps-gate/report.md")
    run = run_jenkins(
        "mlGate",
        {"mlsteps": probe, "modelUri": "models:/churn/7"},
        workspace=workspace,
        env={
            "PROBE_OUTPUTS": json.dumps(outputs),
            "PROBE_REPORT": outputs["report"],
            "WORKSPACE": str(tmp_path),
        },
    )
    assert run.status == "SUCCESS", run.console
    (archived,) = run.calls("archiveArtifacts")
    assert archived["args"]["artifacts"].split(",") == [
        f"ws/mlsteps-gate/report.{ext}" for ext in ("md", "json", "png")
    ]


def test_a_rejected_candidate_archives_the_report_then_fails_with_the_decision(
    run_jenkins: Any, probe: list[str], tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    outputs = outputs_with_report(
        str(workspace / "mlsteps-gate" / "report.md"), decision="rejected", failed="2"
    )
    run = run_jenkins(
        "mlGate",
        {"mlsteps": probe, "modelUri": "models:/churn/7"},
        workspace=workspace,
        env={
            "PROBE_OUTPUTS": json.dumps(outputs),
            "PROBE_REPORT": outputs["report"],
            "PROBE_EXIT": "3",
        },
    )
    assert run.status == "FAILURE"
    assert run.error == (
        "mlGate: the gate rejected version 7 (decision: rejected, 2 failed checks, compared with"
        " version 6); the report is archived (mlsteps-gate/report.md)"
    )
    (archived,) = run.calls("archiveArtifacts")
    assert archived["args"]["artifacts"].startswith("mlsteps-gate/report.md,")
    # The archive came before the failure.
    steps = [c["step"] for c in run.record["calls"]]
    assert steps.index("archiveArtifacts") < steps.index("error")


def documented_advice() -> str:
    """The catchError example of vars/mlGate.txt, as a pipeline's script block runs it."""
    page = (REPO / "vars" / "mlGate.txt").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"<pre>\n(.*?)</pre>", page, re.S) if "catchError" in b]
    return html.unescape(block)


ADVICE_PIPELINE = """\
pipeline {
    agent any
    stages {
        stage('Gate') {
            steps {
                script {
                    def version = '7'
ADVICE
                }
            }
        }
        stage('After') {
            steps {
                echo "after the gate: ${env.MLGATE_DECISION}, ${env.MLGATE_REPORT_DIGEST}"
            }
        }
    }
    post {
        unstable {
            echo 'unstable'
        }
    }
}
"""


@pytest.mark.parametrize("decision", ["rejected", "pass"])
def test_the_documented_catch_error_advice_reads_the_outputs_of_a_rejection(
    run_jenkinsfile: Any, tmp_path: Path, decision: str
) -> None:
    """vars/mlGate.txt's advice, run as written: on a rejection catchError keeps the build
    going (UNSTABLE) and the outputs are read from env; on a pass the version is promoted."""
    workspace = tmp_path / "ws"
    bin_dir = tmp_path / "bin"
    python, probe_py = write_probe(tmp_path / "probe dir")
    bin_dir.mkdir()
    (bin_dir / "mlsteps").write_text(f'#!/bin/sh\nexec "{python}" "{probe_py}" "$@"\n')
    (bin_dir / "mlsteps").chmod(0o755)
    failed = "2" if decision == "rejected" else "0"
    outputs = outputs_with_report(
        str(workspace / "mlsteps-gate" / "report.md"), decision=decision, failed=failed
    )
    jenkinsfile = tmp_path / "Jenkinsfile"
    jenkinsfile.write_text(ADVICE_PIPELINE.replace("ADVICE", documented_advice()))
    run = run_jenkinsfile(
        jenkinsfile,
        workspace=workspace,
        env={
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "PROBE_OUTPUTS": json.dumps(outputs),
            "PROBE_REPORT": outputs["report"],
            "PROBE_EXIT": "3" if decision == "rejected" else "0",
        },
    )
    stages = [(c["args"]["name"], c.get("skipped", False)) for c in run.calls("stage")]
    assert stages == [("Gate", False), ("After", False)], run.console
    echoes = [c["args"]["message"] for c in run.calls("echo")]
    assert f"gate: {decision}, {failed} failed checks, report {outputs['report']}" in echoes
    assert f"after the gate: {decision}, {outputs['report-digest']}" in echoes
    assert run.calls("archiveArtifacts")  # the report is archived either way
    if decision == "rejected":
        assert run.status == "SUCCESS", run.console  # the error was caught
        assert run.record["currentBuild"]["result"] == "UNSTABLE"
        (caught,) = [c for c in run.calls("catchError") if "caught" in c]
        assert caught["caught"].startswith("mlGate: the gate rejected version 7")
        assert caught["buildResult"] == "UNSTABLE" and caught["stageResult"] == "FAILURE"
        assert "unstable" in echoes  # post { unstable } ran
        assert run.calls("mlPromote") == []
    else:
        assert run.status == "SUCCESS", run.console
        assert run.record["currentBuild"]["result"] == "SUCCESS"
        (promote,) = run.calls("mlPromote")
        assert promote["args"] == {"name": "churn", "version": "7"}


def test_a_failure_before_judging_leaves_no_stale_outputs_in_env(
    run_jenkinsfile: Any, tmp_path: Path
) -> None:
    """A second mlGate that fails with exit 1 (no outputs) clears what the first recorded."""
    probe = write_probe(tmp_path / "probe dir")
    jenkinsfile = tmp_path / "Jenkinsfile"
    jenkinsfile.write_text(
        "pipeline {\n agent any\n stages {\n  stage('Gate') {\n   steps {\n    script {\n"
        "     env.MLGATE_DECISION = 'pass'\n"
        f"     catchError {{ mlGate(mlsteps: {json.dumps(probe)}, modelUri: 'models:/m/1') }}\n"
        '     echo "decision: [${env.MLGATE_DECISION}]"\n'
        "    }\n   }\n  }\n }\n}\n"
    )
    run = run_jenkinsfile(jenkinsfile, workspace=tmp_path / "ws", env={"PROBE_EXIT": "1"})
    assert run.record["currentBuild"]["result"] == "FAILURE"  # catchError's default
    assert "decision: []" in [c["args"]["message"] for c in run.calls("echo")]


def test_a_report_outside_the_workspace_is_named_not_archived(
    run_jenkins: Any, probe: list[str], tmp_path: Path
) -> None:
    outputs = outputs_with_report(str(tmp_path / "elsewhere" / "report.md"))
    run = run_jenkins(
        "mlGate",
        {"mlsteps": probe, "modelUri": "models:/churn/7"},
        workspace=tmp_path / "ws",
        env={"PROBE_OUTPUTS": json.dumps(outputs), "PROBE_REPORT": outputs["report"]},
    )
    assert run.status == "SUCCESS", run.console
    assert run.calls("archiveArtifacts") == []
    assert f"the report {outputs['report']} is outside the workspace" in run.console


def test_unknown_key_fails_naming_the_known_keys(run_jenkins: Any) -> None:
    run = run_jenkins("mlGate", {"modelUri": "models:/churn/7", "threshold": 0.9})
    assert run.status == "FAILURE"
    assert run.returncode == 1
    assert run.error == f"mlGate: unknown key 'threshold'; known keys: {KNOWN_KEYS}"
    assert run.calls("sh") == []


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("metrics", ["accuracy"], "must be a Map of rules or YAML text, not ArrayList"),
        ("drift", 0.2, "must be a Map of rules, YAML text, or false, not BigDecimal"),
        ("warnOnly", {"a": 1}, "must be a List of strings or one String, not LinkedHashMap"),
        ("resamples", [1000], "must be a String or a number, not ArrayList"),
    ],
)
def test_a_value_of_the_wrong_type_fails(
    run_jenkins: Any, key: str, value: Any, expected: str
) -> None:
    run = run_jenkins("mlGate", {"modelUri": "models:/churn/7", key: value})
    assert run.status == "FAILURE"
    assert run.error == f"mlGate: key '{key}' {expected}"
    assert run.calls("sh") == []


def test_a_boolean_key_takes_only_true_or_false(run_jenkins: Any) -> None:
    run = run_jenkins("mlGate", {"modelUri": "models:/churn/7", "logReport": "yes"})
    assert run.status == "FAILURE"
    assert run.error == "mlGate: key 'logReport' must be true or false, not 'yes'"
    assert run.calls("sh") == []


def test_a_failure_other_than_a_rejection_fails_with_the_code(
    run_jenkins: Any, probe: list[str], tmp_path: Path
) -> None:
    run = run_jenkins(
        "mlGate",
        {"mlsteps": probe, "modelUri": "models:/churn/7"},
        workspace=tmp_path / "ws",
        env={"PROBE_EXIT": "1"},
    )
    assert run.status == "FAILURE"
    assert run.error == (
        "mlGate: mlsteps gate exited with code 1 (the step failed); see its message above"
    )
    assert run.calls("readJSON") == []
    assert run.calls("archiveArtifacts") == []


# ------------------------------------------------------------- the real CLI, as a dry run


@pytest.fixture(scope="module")
def registered(mlflow_server: Any) -> dict[str, str]:
    """Versions of a model that logged metrics, the first under @champion, on the real server
    the dry run reads."""
    uri, name = mlflow_server.uri, "faces-jenkins-gate"
    versions = [
        gate_setup.register_run(uri, name, gate_setup.run_with_metrics(uri, {"accuracy": a}))
        for a in (0.9, 0.92)
    ]
    gate_setup.set_alias(uri, name, "champion", versions[0])
    return {"uri": uri, "name": name, "champion": versions[0], "candidate": versions[1]}


def test_real_cli_dry_run_plans_the_gate_with_the_rules_given_as_a_map(
    run_jenkins: Any, mlsteps_cli: str, tmp_path: Path, registered: dict[str, str]
) -> None:
    run = run_jenkins(
        "mlGate",
        {
            "mlsteps": [mlsteps_cli, "--dry-run"],
            "modelUri": f"models:/{registered['name']}/{registered['candidate']}",
            "name": registered["name"],
            "trackingUri": registered["uri"],
            "metrics": {"accuracy": {"min": 0.9}, "roc_auc": {"min-delta": -0.01}},
            "reportDir": "gate-report",
        },
        workspace=tmp_path / "ws",
    )
    assert run.status == "SUCCESS", run.console
    assert (
        "compare the metrics the runs logged: accuracy (≥ 0.9); roc_auc (Δ ≥ -0.01)" in run.console
    )
    assert f"the champion (alias @champion of model '{registered['name']}')" in run.console
    assert f"champion: version {registered['champion']} of '{registered['name']}'" in run.console
    assert f"to {tmp_path / 'ws' / 'gate-report'}" in run.console
    assert run.result == {}  # a dry run sets no outputs
    assert run.calls("archiveArtifacts") == []


def test_real_cli_bad_input_fails_the_step_with_exit_code_2(
    run_jenkins: Any, mlsteps_cli: str, tmp_path: Path
) -> None:
    run = run_jenkins(
        "mlGate",
        {
            "mlsteps": [mlsteps_cli, "--dry-run"],
            "modelUri": "models:/churn/7",
            "name": "churn",
            "trackingUri": "http://127.0.0.1:9",
            "resamples": 5,
        },
        workspace=tmp_path / "ws",
    )
    assert run.status == "FAILURE"
    assert run.error == (
        "mlGate: mlsteps gate exited with code 2 (bad input or configuration);"
        " see its message above"
    )
    assert "--resamples 5: intervals need at least 100 resamples" in run.console
