"""Results of real runs against the real services match each step's published --json schema
(steps/result_schema.py): done, failed, rejected. Package's real run builds an image (minutes):
here only its refusal after reading the model is checked against the schema.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from steps.result_schema import result_schema
from tests import vault_setup
from tests.integration import gate_setup
from tests.integration.test_train import mlsteps

pytestmark = pytest.mark.services


def result(step: str, done: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    jsonschema.Draft202012Validator(result_schema(step)).validate(document)
    return document


def test_train_local_runs_done_and_failed(mlflow_server: Any, tmp_path: Path) -> None:
    env = {"MLSTEPS_MLFLOW_TRACKING_URI": mlflow_server.uri}
    code = "import sys; sys.exit(1)"  # a training that fails
    done = mlsteps(
        "--json", "train", "--backend", "local", "--", sys.executable, "-c", "print('trained')",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    document = result("train", done)
    assert document["ok"] and document["outputs"]["run-id"], done.stderr
    assert document["applied"], document
    failed = mlsteps(
        "--json", "train", "--backend", "local", "--", sys.executable, "-c", code,
        cwd=tmp_path, env=env,
    )  # fmt: skip
    document = result("train", failed)
    assert failed.returncode == 1 and document["exit_code"] == 1
    assert document["outputs"]["run-id"] and document["outputs"]["exit-code"] == "1"


def test_secrets_fetch_and_exec(vault_server: Any, tmp_path: Path) -> None:
    vault_setup.put_kv(vault_server, "secret", "schema/db", {"password": "s3cr-et"})
    env = {"VAULT_ADDR": vault_server.addr, "VAULT_TOKEN": vault_server.root_token}
    request = ["--secrets", "secret/schema/db password | DB_PASSWORD"]
    fetched = mlsteps(
        "--json", "secrets", "fetch", *request, "--file", str(tmp_path / "s.env"),
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert result("secrets", fetched)["ok"], fetched.stderr
    assert "s3cr-et" not in fetched.stdout
    child = [sys.executable, "-c", "import sys; sys.exit(7)"]
    executed = mlsteps("--json", "secrets", "exec", *request, "--", *child, cwd=tmp_path, env=env)
    document = result("secrets", executed)
    assert executed.returncode == 7 and document["exit_code"] == 7


def test_gate_pass_and_reject_and_promote(mlflow_server: Any, tmp_path: Path) -> None:
    uri, name = mlflow_server.uri, "it-result-schema"
    champion = gate_setup.register_run(uri, name, gate_setup.run_with_metrics(uri, {"acc": 0.9}))
    candidate = gate_setup.register_run(uri, name, gate_setup.run_with_metrics(uri, {"acc": 0.8}))
    gate_setup.set_alias(uri, name, "champion", champion)
    env = {"MLSTEPS_MLFLOW_TRACKING_URI": uri}
    args = ["--name", name, "--model-uri", f"models:/{name}/{candidate}"]
    passed = mlsteps(
        "--json", "gate", *args, "--metrics", "{acc: {min: 0.5}}", cwd=tmp_path, env=env
    )
    assert result("gate", passed)["outputs"]["decision"] == "pass", passed.stderr
    rejected = mlsteps(
        "--json", "gate", *args, "--metrics", "{acc: {min: 0.95}}", cwd=tmp_path, env=env
    )
    document = result("gate", rejected)
    assert rejected.returncode == 3 and document["exit_code"] == 3
    promoted = mlsteps(
        "--json", "promote", "--name", name, "--version", candidate, "--require-gate", "false",
        "--expected-champion", champion, "--lock-path", str(tmp_path / "lock"), cwd=tmp_path,
        env=env,
    )  # fmt: skip
    document = result("promote", promoted)
    assert document["ok"] and document["outputs"]["champion-version"] == candidate, promoted.stderr
    back = mlsteps(
        "--json", "rollback", "--name", name, "--lock-path", str(tmp_path / "lock"),
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert result("rollback", back)["outputs"]["champion-version"] == champion, back.stderr


def test_package_refusal_after_reading_the_model(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "MLmodel").write_text("flavors: {sklearn: {}}\n")  # no python_function
    done = mlsteps("--json", "package", "--model-uri", "m", cwd=tmp_path)
    document = result("package", done)
    assert done.returncode == 2 and "python_function" in document["error"]
