"""train against an MLflow server with authentication on (`mlflow server --app-name
basic-auth`): MLFLOW_TRACKING_USERNAME / PASSWORD reach the run's creation (RestTracking), the
local training process and the training container, which log to the same run; the password is
never in the output (--verbose included), the result, or the run's params and tags; a wrong one
is a clear exit 1. (In a container it is an environment variable, as MLflow's client reads it.)
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests import services
from tests.integration.test_train import mlsteps

pytestmark = pytest.mark.services

USER = "admin"


@dataclass(frozen=True)
class AuthServer:
    uri: str
    password: str


@pytest.fixture(scope="module")
def auth_mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    root = tmp_path_factory.mktemp("mlflow-auth")
    password = "Pw-" + secrets.token_hex(12)
    (root / "auth.ini").write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{root}/auth.db\nadmin_username = {USER}\n"
        f"admin_password = {password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    port = services.free_port()
    argv = [
        services.mlflow_executable(), "server", "--app-name", "basic-auth",
        "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
        "--artifacts-destination", str(root / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    server = services.Server.start(
        "mlflow server (basic-auth)",
        argv,
        root / "server.log",
        cwd=root,
        env={
            "MLFLOW_AUTH_CONFIG_PATH": str(root / "auth.ini"),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),  # for its CSRF checks
        },
    )
    uri = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return requests.get(f"{uri}/health", timeout=2).status_code in (200, 401)
        except requests.RequestException:
            return False

    server.wait_until(answers, 180)
    yield AuthServer(uri, password)
    server.stop()


def run_of(server: AuthServer, run_id: str) -> dict[str, Any]:
    found = requests.get(
        f"{server.uri}/api/2.0/mlflow/runs/get",
        params={"run_id": run_id},
        auth=(USER, server.password),
        timeout=10,
    )
    found.raise_for_status()
    run: dict[str, Any] = found.json()["run"]
    return run


# The local training logs a metric to its run over REST with the credentials it was handed.
LOCAL_TRAINING = """
import os, requests
uri, run = os.environ["MLFLOW_TRACKING_URI"], os.environ["MLFLOW_RUN_ID"]
auth = (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"])
requests.post(f"{uri}/api/2.0/mlflow/runs/log-metric", auth=auth, timeout=10, json={
    "run_id": run, "key": "reached", "value": 1, "timestamp": 0}).raise_for_status()
print("logged with the handed credentials")
"""


def test_the_server_refuses_anonymous_requests(auth_mlflow: AuthServer) -> None:
    # What makes the tests below mean something: without credentials nothing gets through.
    answer = requests.post(
        f"{auth_mlflow.uri}/api/2.0/mlflow/experiments/search", json={}, timeout=10
    )
    assert answer.status_code == 401


def test_local_training_gets_the_credentials_and_they_leak_nowhere(
    auth_mlflow: AuthServer, tmp_path: Path
) -> None:
    env = {
        "MLFLOW_TRACKING_URI": auth_mlflow.uri,
        "MLFLOW_TRACKING_USERNAME": USER,
        "MLFLOW_TRACKING_PASSWORD": auth_mlflow.password,
    }
    done = mlsteps(
        "--json", "-v", "train", "--backend", "local", "--", sys.executable, "-c", LOCAL_TRAINING,
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "logged with the handed credentials" in done.stdout + done.stderr
    assert auth_mlflow.password not in done.stdout + done.stderr
    outputs = json.loads(done.stdout.strip().splitlines()[-1])["outputs"]
    run = run_of(auth_mlflow, outputs["run-id"])
    assert run["info"]["status"] == "FINISHED"
    assert {m["key"] for m in run["data"]["metrics"]} == {"reached"}
    params = json.dumps(run["data"].get("params", [])) + json.dumps(run["data"].get("tags", []))
    assert auth_mlflow.password not in params


def test_a_wrong_password_is_a_clear_failure(auth_mlflow: AuthServer, tmp_path: Path) -> None:
    env = {
        "MLFLOW_TRACKING_URI": auth_mlflow.uri,
        "MLFLOW_TRACKING_USERNAME": USER,
        "MLFLOW_TRACKING_PASSWORD": "wrong-" + secrets.token_hex(6),
    }
    done = mlsteps(
        "train", "--backend", "local", "--", sys.executable, "-c", "print('never runs')",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "MLFLOW_TRACKING_USERNAME/PASSWORD" in done.stderr
    assert env["MLFLOW_TRACKING_PASSWORD"] not in done.stderr + done.stdout
    assert "never runs" not in done.stdout and "Traceback" not in done.stderr


def test_the_training_container_logs_with_the_credentials(
    auth_mlflow: AuthServer, trainer_image: str, docker_client: Any, tmp_path: Path
) -> None:
    env = {
        "MLFLOW_TRACKING_URI": auth_mlflow.uri,
        "MLFLOW_TRACKING_USERNAME": USER,
        "MLFLOW_TRACKING_PASSWORD": auth_mlflow.password,
    }
    done = mlsteps(
        "--json", "train", "--image", trainer_image, "--label", "it.auth=1",
        "--", "python", "/app/train.py", "--n-estimators", "5",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert auth_mlflow.password not in done.stdout + done.stderr
    outputs = json.loads(done.stdout.strip().splitlines()[-1])["outputs"]
    run = run_of(auth_mlflow, outputs["run-id"])
    # The quickstart's own MLflow client logged these inside the container.
    assert {"accuracy", "f1"} <= {m["key"] for m in run["data"]["metrics"]}
    assert outputs["model-uri"].startswith("models:/")
