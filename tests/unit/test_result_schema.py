"""The published shape of each step's --json result (steps/result_schema.py), checked against
the results of dry runs, refusals and usage errors here; real runs against the services are in
tests/integration/test_result_schema.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from steps import registry
from steps.result_schema import result_schema
from tests.unit.run_cli import run
from tests.unit.test_fuzz_options import COMMANDS, Command, environment, workdir  # noqa: F401

STEPS = sorted(registry.step_commands())


def validate(step: str, out: str) -> dict[str, Any]:
    """The one JSON line a --json run printed, checked against the step's schema."""
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    document: dict[str, Any] = json.loads(lines[0])
    jsonschema.Draft202012Validator(result_schema(step)).validate(document)
    return document


@pytest.mark.parametrize("step", STEPS)
def test_each_schema_is_a_valid_draft_2020_12_schema(step: str) -> None:
    jsonschema.Draft202012Validator.check_schema(result_schema(step))


@pytest.mark.parametrize("step", STEPS)
def test_config_schema_result_prints_it(step: str, tmp_path: Path) -> None:
    ran = run(["config", "schema", "--result", step], cwd=tmp_path)
    assert ran.code == 0, ran.err
    assert json.loads(ran.out) == result_schema(step)


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: "-".join(c.path))
def test_dry_run_results_match(cmd: Command, workdir: Path) -> None:  # noqa: F811
    tail = ["--", *cmd.tail] if cmd.tail else []
    ran = run(["--json", "--dry-run", *cmd.path, *cmd.needs, *tail], cwd=workdir, env=environment())
    assert ran.code == 0, ran.err
    document = validate(cmd.path[0], ran.out)
    assert document["dry_run"] is True and document["plan"], document


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: "-".join(c.path))
def test_refusal_and_usage_error_results_match(cmd: Command, workdir: Path) -> None:  # noqa: F811
    args = ["--json", "--dry-run", *cmd.path, *cmd.needs]
    usage = run([*args, "--no-such-option"], cwd=workdir, env=environment())
    assert usage.code == 2
    assert validate(cmd.path[0], usage.out)["step"] == "mlsteps"
    env = {**environment(), "MLSTEPS_CONFIG": str(workdir / "missing.yaml")}
    tail = ["--", *cmd.tail] if cmd.tail else []
    bad = run([*args, *tail], cwd=workdir, env=env)
    assert bad.code == 2, bad.err
    document = validate(cmd.path[0], bad.out)
    assert document["step"] == registry.options(cmd.path[0]).SECTION.name
    assert "missing.yaml: no such file" in document["error"]


def test_the_schema_refuses_what_a_result_must_not_be() -> None:
    schema = jsonschema.Draft202012Validator(result_schema("train"))
    good = {"step": "train", "ok": True, "exit_code": 0, "outputs": {"run-id": "r"}, "error": None}
    assert schema.is_valid(good)
    for bad in (
        {**good, "outputs": {"not-an-output": "x"}},
        {**good, "ok": True, "exit_code": 1},
        {**good, "ok": False, "exit_code": 2, "error": None},
        {**good, "dry_run": True},  # a dry run without its plan
        {**good, "extra": 1},
        {**good, "step": "gate"},
        {**good, "ok": False, "exit_code": 2, "error": "x", "dry_run": True, "plan": []},
    ):
        assert not schema.is_valid(bad), bad
    secrets = jsonschema.Draft202012Validator(result_schema("secrets"))
    # fetch --export-outputs: one output per secret, named by its variable
    assert secrets.is_valid({**good, "step": "secrets", "outputs": {"DB_PASSWORD": "<redacted>"}})
