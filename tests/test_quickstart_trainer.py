"""The quickstart's train.py on its own, without mlsteps: in its image and as a local process.

mlsteps' own tests drive it through `mlsteps train`; these pin down the script's contract
with mlsteps (continue the run named by MLFLOW_RUN_ID, read MLSTEPS_DATA_DIR, write to
MLSTEPS_OUTPUT_DIR), so a failure there points at the script, not at the step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from tests import services

pytestmark = [pytest.mark.services, pytest.mark.slow]

TRAIN_PY = services.QUICKSTART / "train.py"


def _api(server: services.MlflowServer, path: str) -> str:
    return f"{server.uri}/api/2.0/mlflow/{path}"


def _new_run(server: services.MlflowServer) -> str:
    """Create a run the way mlsteps does before the training starts."""
    name = f"quickstart-test-{uuid.uuid4().hex[:8]}"
    created = requests.post(_api(server, "experiments/create"), json={"name": name}, timeout=10)
    created.raise_for_status()
    run = requests.post(
        _api(server, "runs/create"),
        json={"experiment_id": created.json()["experiment_id"]},
        timeout=10,
    )
    run.raise_for_status()
    run_id: str = run.json()["run"]["info"]["run_id"]
    return run_id


def _get_run(server: services.MlflowServer, run_id: str) -> dict[str, Any]:
    got = requests.get(_api(server, "runs/get"), params={"run_id": run_id}, timeout=10)
    got.raise_for_status()
    run: dict[str, Any] = got.json()["run"]
    return run


def _assert_trained(server: services.MlflowServer, run_id: str, output_dir: Path) -> dict[str, Any]:
    run = _get_run(server, run_id)
    assert run["info"]["status"] == "FINISHED"
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    assert {"accuracy", "f1", "precision", "recall", "roc_auc"} <= metrics.keys()
    # A random forest on breast cancer scores about 0.95; far below means training broke.
    assert metrics["accuracy"] > 0.85

    model_ids = [out["model_id"] for out in run["outputs"]["model_outputs"]]
    assert len(model_ids) == 1
    model = requests.get(_api(server, f"logged-models/{model_ids[0]}"), timeout=10).json()
    assert model["model"]["info"]["status"] == "LOGGED_MODEL_READY"
    assert model["model"]["info"]["source_run_id"] == run_id

    written = json.loads((output_dir / "metrics.json").read_text())
    assert written["run_id"] == run_id
    assert written["model_uri"] == f"models:/{model_ids[0]}"
    assert written["accuracy"] == pytest.approx(metrics["accuracy"])
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    return params


def test_trainer_image_continues_the_given_run(
    docker_client, trainer_image: str, mlflow_server: services.MlflowServer, tmp_path: Path
) -> None:
    run_id = _new_run(mlflow_server)
    container = docker_client.containers.run(
        trainer_image,
        ["python", "/app/train.py", "--n-estimators", "20", "--max-depth", "4"],
        environment={
            "MLFLOW_TRACKING_URI": mlflow_server.uri,
            "MLFLOW_RUN_ID": run_id,
            "MLSTEPS_OUTPUT_DIR": "/output",
        },
        # The tracking server listens on the host's loopback.
        network_mode="host",
        volumes={str(tmp_path): {"bind": "/output", "mode": "rw"}},
        labels={"io.mlsteps.test": "quickstart-trainer"},
        detach=True,
    )
    try:
        status = container.wait(timeout=300)
        logs = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    assert status["StatusCode"] == 0, logs

    params = _assert_trained(mlflow_server, run_id, tmp_path)
    assert params["n_estimators"] == "20"
    assert params["max_depth"] == "4"
    assert params["data_source"] == "sklearn:breast_cancer"


def _run_local(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TRAIN_PY), *args],
        env={**os.environ, **services.QUIET_ENV, **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_trainer_runs_as_a_local_process_on_a_data_dir(
    mlflow_server: services.MlflowServer, tmp_path: Path
) -> None:
    data_dir, output_dir = tmp_path / "data", tmp_path / "output"
    written = _run_local(["--write-data", str(data_dir)], {})
    assert written.returncode == 0, written.stderr
    # Keep a stratifiable share of the rows, so the run provably trained on this file.
    lines = (data_dir / "data.csv").read_text().splitlines()
    (data_dir / "data.csv").write_text("\n".join(lines[:301]) + "\n")

    run_id = _new_run(mlflow_server)
    result = _run_local(
        ["--n-estimators", "10"],
        {
            "MLFLOW_TRACKING_URI": mlflow_server.uri,
            "MLFLOW_RUN_ID": run_id,
            "MLSTEPS_DATA_DIR": str(data_dir),
            "MLSTEPS_OUTPUT_DIR": str(output_dir),
        },
    )
    assert result.returncode == 0, result.stderr

    params = _assert_trained(mlflow_server, run_id, output_dir)
    assert params["data_source"] == str(data_dir / "data.csv")
    assert int(params["n_train"]) + int(params["n_test"]) == 300


def test_trainer_rejects_a_data_file_without_target(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("a,b\n1,2\n3,4\n")
    result = _run_local([], {"MLSTEPS_DATA_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert f"{tmp_path / 'data.csv'} has no 'target' column" in result.stderr


def test_trainer_pins_the_mlflow_major_version_of_the_server() -> None:
    """The server the tests and run.sh start is this venv's mlflow; the trainer's client must
    speak its protocol (MLflow 3 logs models through an API that 2.x servers lack)."""
    from importlib.metadata import version

    pins = (services.QUICKSTART / "requirements.txt").read_text()
    pinned = next(line for line in pins.splitlines() if line.startswith("mlflow-skinny=="))
    client_major = pinned.split("==")[1].split(".")[0]
    assert version("mlflow").split(".")[0] == client_major
