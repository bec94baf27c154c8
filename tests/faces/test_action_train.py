"""actions/train under act (self-hosted: the job runs on this machine), against the real MLflow
server and the quickstart trainer image: the action installs mlsteps from its own path, trains,
and its outputs and summary reach the workflow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

pytestmark = [pytest.mark.faces, pytest.mark.services, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = (REPO / "tests" / "faces" / "workflows" / "train.yml").read_text(encoding="utf-8")


def mlflow_run(uri: str, run_id: str) -> dict[str, Any]:
    response = requests.get(f"{uri}/api/2.0/mlflow/runs/get", params={"run_id": run_id}, timeout=10)
    response.raise_for_status()
    run: dict[str, Any] = response.json()["run"]
    return run


def test_train_action_trains_and_sets_outputs(
    run_act: Any, trainer_image: str, mlflow_server: Any
) -> None:
    result = run_act(
        WORKFLOW,
        variables={"TRAINER_IMAGE": trainer_image, "MLFLOW_TRACKING_URI": mlflow_server.uri},
    )
    assert result.returncode == 0, result.log + result.stderr
    assert result.results["train"] == "success"

    outputs = result.outputs["train"]
    assert set(outputs) >= {
        "run-id",
        "experiment-id",
        "model-uri",
        "metrics",
        "image-digest",
        "exit-code",
    }
    assert outputs["exit-code"] == "0"
    assert outputs["image-digest"].startswith("sha256:")
    metrics = json.loads(outputs["metrics"])
    assert 0.5 < metrics["accuracy"] <= 1.0
    # A later step of the job sees the same values.
    assert result.outputs["consume"]["seen-run-id"] == outputs["run-id"]

    run = mlflow_run(mlflow_server.uri, outputs["run-id"])
    assert run["info"]["status"] == "FINISHED"
    assert run["info"]["experiment_id"] == outputs["experiment-id"]
    assert run["info"]["run_name"] == 'act it\'s "quoted"'

    assert outputs["run-id"] in result.summaries["train"]


def test_train_action_fails_the_step_on_bad_input(
    run_act: Any, trainer_image: str, mlflow_server: Any
) -> None:
    result = run_act(
        WORKFLOW,
        variables={
            "TRAINER_IMAGE": trainer_image,
            "MLFLOW_TRACKING_URI": mlflow_server.uri,
            "GPUS": "lots",
        },
    )
    assert result.returncode != 0
    assert result.results["train"] == "failure"
    assert "consume" not in result.results
    (error,) = [a for a in result.annotations if a["level"] == "error"]
    assert error["step"] == "train"
    # the message names the action input the user wrote
    assert "input 'gpus' (env MLSTEPS_TRAIN_GPUS) 'lots' is not valid" in error["message"]


def test_failed_training_fails_the_step_and_still_sets_outputs(
    run_act: Any, trainer_image: str, mlflow_server: Any
) -> None:
    result = run_act(
        WORKFLOW,
        variables={
            "TRAINER_IMAGE": trainer_image,
            "MLFLOW_TRACKING_URI": mlflow_server.uri,
            "TRAIN_COMMAND": "python -c 'import sys; sys.exit(3)'",
        },
    )
    assert result.returncode != 0
    assert result.results["train"] == "failure"
    outputs = result.outputs["train"]
    assert outputs["exit-code"] == "3"
    assert mlflow_run(mlflow_server.uri, outputs["run-id"])["info"]["status"] == "FAILED"
    assert any(a["level"] == "error" and a["step"] == "train" for a in result.annotations)
