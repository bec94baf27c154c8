"""vars/mlTrain.groovy driving the real mlsteps CLI under the Groovy harness: the quickstart
trains in its container against a real MLflow server, and the outputs come back as the Map the
step returns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

pytestmark = [pytest.mark.faces, pytest.mark.services, pytest.mark.slow]


def mlflow_run(uri: str, run_id: str) -> dict[str, Any]:
    response = requests.get(f"{uri}/api/2.0/mlflow/runs/get", params={"run_id": run_id}, timeout=10)
    response.raise_for_status()
    run: dict[str, Any] = response.json()["run"]
    return run


def test_mltrain_trains_the_quickstart_and_returns_the_outputs(
    run_jenkins: Any, mlsteps_cli: str, trainer_image: str, mlflow_server: Any, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    run = run_jenkins(
        "mlTrain",
        {
            "mlsteps": mlsteps_cli,
            "image": trainer_image,
            "command": ["python", "/app/train.py", "--n-estimators", "10", "--max-depth", "3"],
            "trackingUri": mlflow_server.uri,
            "experiment": "faces-jenkins",
            "runName": 'jenkins it\'s "quoted"',
            "env": {"FACES_NOTE": "two words"},
        },
        workspace=workspace,
        timeout=600,
    )
    assert run.status == "SUCCESS", run.console
    outputs = run.result
    assert set(outputs) == {
        "run-id",
        "experiment-id",
        "model-uri",
        "metrics",
        "image-digest",
        "exit-code",
    }
    assert outputs["exit-code"] == "0"
    assert outputs["image-digest"].startswith("sha256:")
    assert 0.5 < json.loads(outputs["metrics"])["accuracy"] <= 1.0

    mlflow = mlflow_run(mlflow_server.uri, outputs["run-id"])
    assert mlflow["info"]["status"] == "FINISHED"
    assert mlflow["info"]["run_name"] == 'jenkins it\'s "quoted"'
    assert mlflow["info"]["experiment_id"] == outputs["experiment-id"]

    # The summary mlsteps wrote is archived, and names the run.
    (archived,) = run.calls("archiveArtifacts")
    assert outputs["run-id"] in (workspace / archived["args"]["artifacts"]).read_text()


def test_failed_training_fails_the_step_with_the_codes_and_the_run(
    run_jenkins: Any, mlsteps_cli: str, trainer_image: str, mlflow_server: Any
) -> None:
    run = run_jenkins(
        "mlTrain",
        {
            "mlsteps": mlsteps_cli,
            "image": trainer_image,
            "command": ["python", "-c", "import sys; print('giving up'); sys.exit(3)"],
            "trackingUri": mlflow_server.uri,
            "experiment": "faces-jenkins",
        },
        timeout=600,
    )
    assert run.status == "FAILURE"
    assert run.sh["status"] == 1
    assert run.error is not None
    assert run.error.startswith(
        "mlTrain: mlsteps train exited with code 1 (the step failed); see its message above"
        " [training command exit code 3, MLflow run "
    )
    run_id = run.error.rsplit("MLflow run ", 1)[1].rstrip("]")
    assert mlflow_run(mlflow_server.uri, run_id)["info"]["status"] == "FAILED"
    assert "giving up" in run.console


def test_bad_input_fails_the_step_with_exit_code_2(
    run_jenkins: Any, mlsteps_cli: str, mlflow_server: Any
) -> None:
    run = run_jenkins(
        "mlTrain",
        {
            "mlsteps": mlsteps_cli,
            "image": "img:1",
            "gpus": "lots",
            "trackingUri": mlflow_server.uri,
        },
    )
    assert run.status == "FAILURE"
    assert run.error == (
        "mlTrain: mlsteps train exited with code 2 (bad input or configuration);"
        " see its message above"
    )
    assert "--gpus" in run.console and "lots" in run.console
