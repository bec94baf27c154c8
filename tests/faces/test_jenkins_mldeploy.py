"""vars/mlDeploy.groovy under the Groovy harness: the `mlsteps deploy` command it builds, the
outputs it returns, the summary it archives and how it fails (a rollback told apart from a
broken rollout).

The command is run for real by the harness's `sh`: mostly the executable it names is a probe
(tests/faces/gate_promote_setup.py); the last tests drive the real mlsteps CLI as a dry run,
which plans the rollout and starts nothing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.faces.gate_promote_setup import AWKWARD, probed, write_probe

pytestmark = pytest.mark.faces

KNOWN_KEYS = (
    "image, championImage, strategy, steps, target, endpoint, listen, stateDir, "
    "sagemakerRoleArn, sagemakerInstanceType, sagemakerInstanceCount, minBake, minRequests, "
    "maxBake, lookEvery, onInconclusive, retry, alpha, errorMargin, errorFloor, latencyMargin, "
    "latencyTolerance, disagreementTolerance, predictionTolerance, version, reportDir, "
    "trackingUri, name, config, mlsteps"
)
IMAGE = "127.0.0.1:5050/churn@sha256:" + "ab" * 32
OUTPUTS = {
    "decision": "rolled-out",
    "report": "mlsteps-deploy/report.md",
    "endpoint": "http://127.0.0.1:8800",
    "variant-weights": "champion=100",
}


@pytest.fixture
def probe(tmp_path: Path) -> list[str]:
    return write_probe(tmp_path / "probe dir")


def test_builds_the_exact_deploy_command_with_every_value_single_quoted(
    run_jenkins: Any,
) -> None:
    run = run_jenkins(
        "mlDeploy",
        {
            "mlsteps": "true",  # the command is checked as text; `true` just exits 0
            "config": "conf dir/mlsteps.yaml",
            "image": IMAGE,
            "championImage": "churn:serving",
            "strategy": "canary",
            "steps": "5,25,100",
            "endpoint": "churn; rm -rf /",
            "listen": 8800,
            "stateDir": AWKWARD,
            "minBake": "30s",
            "minRequests": 200,
            "maxBake": "5m",
            "lookEvery": "5s",
            "onInconclusive": "hold",
            "alpha": 0.01,
            "errorMargin": 2,
            "latencyMargin": "10%",
            "version": 7,
            "trackingUri": "http://127.0.0.1:5000",
            "name": "churn",
        },
    )
    assert run.status == "SUCCESS", run.console
    assert run.sh["args"]["returnStatus"] is True
    assert run.sh["args"]["label"] == "mlsteps deploy"
    assert run.sh["args"]["script"] == (
        "'true' '--ci' 'jenkins' '--config' 'conf dir/mlsteps.yaml' 'deploy'"
        f" '--image' '{IMAGE}' '--champion-image' 'churn:serving' '--strategy' 'canary'"
        " '--steps' '5,25,100' '--endpoint' 'churn; rm -rf /' '--listen' '8800'"
        " '--state-dir' 'it'\\''s \"quoted\" $HOME `id` \\ ; | & *'"
        " '--min-bake' '30s' '--min-requests' '200' '--max-bake' '5m' '--look-every' '5s'"
        " '--on-inconclusive' 'hold' '--alpha' '0.01' '--error-margin' '2'"
        " '--latency-margin' '10%' '--version' '7' '--name' 'churn'"
    )
    # The tracking URI goes in the environment, as for the other steps.
    assert run.sh["env"]["MLSTEPS_MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"


def test_the_shell_hands_every_value_over_unchanged(
    run_jenkins: Any, probe: list[str], tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    run = run_jenkins(
        "mlDeploy",
        {"mlsteps": probe, "image": IMAGE, "endpoint": AWKWARD, "listen": "127.0.0.1:8801"},
        workspace=workspace,
    )
    assert run.status == "SUCCESS", run.console
    assert probed(workspace)["argv"] == [
        "--ci", "jenkins", "deploy", "--image", IMAGE, "--endpoint", AWKWARD,
        "--listen", "127.0.0.1:8801",
    ]  # fmt: skip


def test_returns_the_outputs_and_archives_the_summary(
    run_jenkins: Any, probe: list[str], tmp_path: Path
) -> None:
    run = run_jenkins(
        "mlDeploy",
        {"mlsteps": probe, "image": IMAGE},
        workspace=tmp_path / "ws",
        env={"PROBE_OUTPUTS": json.dumps(OUTPUTS), "PROBE_SUMMARY": "## mlsteps deploy\n"},
    )
    assert run.status == "SUCCESS", run.console
    assert run.result == OUTPUTS
    (read,) = run.calls("readJSON")
    assert re.fullmatch(
        r"\.mlsteps/outputs/deploy-jenkins-faces-test-1-[0-9a-f]{8}\.json", read["args"]["file"]
    )
    (archived,) = run.calls("archiveArtifacts")
    assert re.fullmatch(r"\.mlsteps/summary/deploy-.*\.md", archived["args"]["artifacts"])


def test_unknown_key_fails_naming_the_known_keys(run_jenkins: Any) -> None:
    run = run_jenkins("mlDeploy", {"image": IMAGE, "canary": "5,100"})
    assert run.status == "FAILURE"
    assert run.returncode == 1
    assert run.error == f"mlDeploy: unknown key 'canary'; known keys: {KNOWN_KEYS}"
    assert run.calls("sh") == []


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("image", [IMAGE], "must be a String or a number, not ArrayList"),
        ("mlsteps", 3, "must be a List of strings or one String, not Integer"),
        ("retry", "yes", "must be true or false, not 'yes'"),
    ],
)
def test_a_value_of_the_wrong_type_fails(
    run_jenkins: Any, key: str, value: Any, expected: str
) -> None:
    run = run_jenkins("mlDeploy", {"image": IMAGE, key: value})
    assert run.status == "FAILURE"
    assert run.error == f"mlDeploy: key '{key}' {expected}"
    assert run.calls("sh") == []


@pytest.mark.parametrize(
    ("code", "meaning"),
    [
        (1, "the step failed"),
        (3, "the candidate was rolled back or held"),
        (143, "terminated"),
    ],
)
def test_nonzero_exit_fails_with_the_code_and_keeps_the_summary(
    run_jenkins: Any, probe: list[str], tmp_path: Path, code: int, meaning: str
) -> None:
    rolled_back = {**OUTPUTS, "decision": "rolled-back"}
    run = run_jenkins(
        "mlDeploy",
        {"mlsteps": probe, "image": IMAGE},
        workspace=tmp_path / "ws",
        env={
            "PROBE_EXIT": str(code),
            "PROBE_OUTPUTS": json.dumps(rolled_back),
            "PROBE_SUMMARY": "## mlsteps deploy: rolled-back\n",
        },
    )
    assert run.status == "FAILURE"
    assert run.error == (
        f"mlDeploy: mlsteps deploy exited with code {code} ({meaning}); see its message above"
    )
    # The summary says why: archived before the step fails.
    assert len(run.calls("archiveArtifacts")) == 1


# ------------------------------------------------------------- the real CLI, as a dry run


def test_real_cli_dry_run_plans_the_canary_and_starts_nothing(
    run_jenkins: Any, mlsteps_cli: str, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    run = run_jenkins(
        "mlDeploy",
        {
            "mlsteps": [mlsteps_cli, "--dry-run"],
            "image": IMAGE,
            "championImage": "churn:serving",
            "steps": "10,50,100",
            "endpoint": "churn",
            "listen": "127.0.0.1:8899",
            "stateDir": str(state),
            "minBake": "10s",
            "maxBake": "2m",
        },
        workspace=tmp_path / "ws",
    )
    assert run.status == "SUCCESS", run.console
    assert "canary 10%→50%→100%" in run.console
    assert "endpoint churn serves: nginx on 127.0.0.1:8899" in run.console
    assert "step 1 of 3: 10% of requests to the candidate; bake 10s to 2m" in run.console
    assert run.result == {}  # a dry run sets no outputs
    assert not state.exists()


def test_real_cli_bad_input_fails_the_step_with_exit_code_2(
    run_jenkins: Any, mlsteps_cli: str, tmp_path: Path
) -> None:
    run = run_jenkins(
        "mlDeploy",
        {"mlsteps": [mlsteps_cli, "--dry-run"], "image": IMAGE, "steps": "10,50"},
        workspace=tmp_path / "ws",
    )
    assert run.status == "FAILURE"
    assert run.error == (
        "mlDeploy: mlsteps deploy exited with code 2 (bad input or configuration);"
        " see its message above"
    )
    assert "--steps" in run.console and "10,50" in run.console
