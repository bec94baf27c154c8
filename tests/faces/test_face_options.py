"""Every face of `train` lists the same options, mapped by the one rule of the contract:
option `shm-size` → flag `--shm-size` → env `MLSTEPS_TRAIN_SHM_SIZE` → action input `shm-size`
→ Jenkins key `shmSize`. The CLI's option list (steps.train.SECTION) is the source.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps.core.options import MLFLOW
from steps.train import options as train
from tests import groovy_config
from tests.groovy_config import camel

pytestmark = pytest.mark.faces

REPO = Path(__file__).resolve().parents[2]
ACTION = yaml.safe_load((REPO / "actions" / "train" / "action.yml").read_text(encoding="utf-8"))
GROOVY = (REPO / "vars" / "mlTrain.groovy").read_text(encoding="utf-8")

TRAIN_OPTIONS = [o.name for o in train.SECTION.options]
# Beyond the train section, each face takes the shared MLflow options and the config file.
SHARED = {o.name: o.env_var("mlflow") for o in MLFLOW.options} | {"config": "MLSTEPS_CONFIG"}
# Jenkins only: which mlsteps executable to run (the action installs its own).
JENKINS_ONLY = {"mlsteps"}


def train_step() -> dict[str, Any]:
    (step,) = [s for s in ACTION["runs"]["steps"] if s.get("id") == "train"]
    return step


def default_config_entries() -> list[tuple[str, str]]:
    return groovy_config.default_config_entries("mlTrain")


def test_the_contract_options_are_the_clis() -> None:
    # The contract's table, in its order; a change here is a change of every face.
    assert TRAIN_OPTIONS == [
        "image",
        "command",
        "backend",
        "workdir",
        "env",
        "secret-env",
        "secrets-as-env",
        "mount",
        "data-dir",
        "output-dir",
        "gpus",
        "shm-size",
        "memory",
        "cpus",
        "user",
        "network",
        "timeout",
        "pull",
        "label",
        "platform",
        "run-id",
        "run-name",
    ]
    assert set(SHARED) == {"tracking-uri", "experiment", "config"}


def test_action_inputs_are_the_cli_options() -> None:
    assert list(ACTION["inputs"]) == TRAIN_OPTIONS + ["tracking-uri", "experiment", "config"]


def test_action_passes_each_input_to_its_environment_variable() -> None:
    expected = {o.env_var("train"): f"${{{{ inputs.{o.name} }}}}" for o in train.SECTION.options}
    expected |= {env: f"${{{{ inputs.{name} }}}}" for name, env in SHARED.items()}
    env = dict(train_step()["env"])
    env.pop("MLSTEPS_VENV")
    assert env == expected


def test_action_inputs_default_to_unset() -> None:
    # An action-side default would reach mlsteps as an environment variable and so outrank the
    # config file; defaults belong to mlsteps.
    assert {name: spec.get("default") for name, spec in ACTION["inputs"].items()} == {
        name: "" for name in ACTION["inputs"]
    }
    assert all(spec.get("description") for spec in ACTION["inputs"].values())


def test_action_run_step_execs_the_cli_with_no_expression_in_the_script() -> None:
    script = train_step()["run"]
    assert "${{" not in script
    assert script.strip() == 'exec "$MLSTEPS_VENV/bin/mlsteps" --ci github train'
    for step in ACTION["runs"]["steps"]:
        assert "${{" not in step.get("run", "")


def test_action_outputs_are_the_steps_outputs() -> None:
    assert list(ACTION["outputs"]) == list(train.OUTPUTS)
    for name, spec in ACTION["outputs"].items():
        assert spec["value"] == f"${{{{ steps.train.outputs.{name} }}}}"
        assert spec["description"]


def test_jenkins_keys_are_the_cli_options_in_camel_case() -> None:
    keys = [key for key, _ in default_config_entries()]
    assert [o.jenkins_key for o in train.SECTION.options] == [camel(n) for n in TRAIN_OPTIONS]
    assert keys == [camel(n) for n in [*TRAIN_OPTIONS, *SHARED]] + sorted(JENKINS_ONLY)


def test_every_jenkins_default_has_a_comment() -> None:
    missing = [key for key, comment in default_config_entries() if not comment.strip()]
    assert missing == []


def test_jenkins_passes_each_option_as_its_cli_flag(run_jenkins: Any) -> None:
    args: dict[str, Any] = {"mlsteps": "true"}
    for option in train.SECTION.options:
        if option.name != "command":
            value = {"list": ["v"], "bool": True}.get(option.kind, "v")
            args[option.jenkins_key] = value
    run = run_jenkins("mlTrain", args)
    assert run.status == "SUCCESS", run.console
    flags = re.findall(r"'(--[a-z-]+)' '(?:v|true)'", run.sh["args"]["script"])
    assert flags == [o.flag for o in train.SECTION.options if o.name != "command"]


def test_jenkins_reports_the_same_keys_it_declares(run_jenkins: Any) -> None:
    run = run_jenkins("mlTrain", {"notAnOption": 1})
    assert run.status == "FAILURE"
    listed = run.error.split("known keys: ", 1)[1].split(", ")
    assert listed == [key for key, _ in default_config_entries()]


def test_cli_help_lists_each_flag(mlsteps_cli: str) -> None:
    proc = subprocess.run(
        [mlsteps_cli, "train", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    missing = [
        o.flag for o in train.SECTION.options if o.name != "command" and o.flag not in proc.stdout
    ]
    assert missing == []
