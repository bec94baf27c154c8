"""Every face of `package` lists the same options, mapped by the one rule of the contract:
option `base-image` → flag `--base-image` → env `MLSTEPS_PACKAGE_BASE_IMAGE` → action input
`base-image` → Jenkins key `baseImage`. The CLI's option list (steps.package.SECTION, with the
shared mlflow and model sections) is the source; what a face leaves out, it leaves out for a
reason written here.

(Kept beside test_face_options.py and test_face_options_secrets.py, which do the same for
`train` and `secrets`.)
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps.core.options import MLFLOW, MODEL
from steps.package import options as package
from tests import groovy_config
from tests.groovy_config import camel

pytestmark = pytest.mark.faces

REPO = Path(__file__).resolve().parents[2]
ACTION = yaml.safe_load((REPO / "actions" / "package" / "action.yml").read_text(encoding="utf-8"))

OPTIONS = [o.name for o in package.SECTION.options]
# The credential: never a flag (argv is readable by every process), only the environment.
SECRET = "registry-password"
# The shared options each face takes, after the step's own, in the CLI's order.
SHARED_SECTIONS = (MLFLOW, MODEL)

# What each face leaves out, and why.
LEAVES_OUT = {
    # package creates no MLflow run: of the shared mlflow section it takes tracking-uri only
    # (the CLI has no --experiment either; test_cli_takes_no_experiment).
    "experiment",
}
ACTION_LEAVES_OUT = LEAVES_OUT | {
    # Given in the step's env: from a secret. As an input it would be mapped in the action's own
    # env:, where the empty default of an input left out would shadow that variable.
    SECRET,
}
# Jenkins names the credential holding it instead (a Username with password credential).
JENKINS_CREDENTIAL_KEY = {SECRET: "registryCredentialsId"}
# Beyond the options: the config file in both; which mlsteps runs in Jenkins (the action
# installs its own).
ACTION_EXTRA = ["config"]
JENKINS_EXTRA = ["config", "mlsteps"]


def shared_options() -> list[Any]:
    return [(s.name, o) for s in SHARED_SECTIONS for o in s.options if o.name not in LEAVES_OUT]


def run_step() -> dict[str, Any]:
    (step,) = [s for s in ACTION["runs"]["steps"] if s.get("id") == "package"]
    return step


def default_config_entries() -> list[tuple[str, str]]:
    return groovy_config.default_config_entries("mlPackage")


def test_the_contract_options_are_the_clis() -> None:
    # The contract's table, in its order; a change here is a change of every face.
    assert OPTIONS == [
        "model-uri",
        "registry",
        "repository",
        "tag",
        "base-image",
        "gpu",
        "platform",
        "build-arg",
        "pip-index-url",
        "pip-extra-index-url",
        "ca-bundle",
        "no-cache",
        "push",
        "load",
        "smoke-test",
        "smoke-timeout",
        "register",
        "registry-username",
        "registry-password",
    ]
    assert [o.name for _, o in shared_options()] == ["tracking-uri", "name"]
    assert list(package.OUTPUTS) == ["image", "digest", "image-ref", "model-version", "cache-hit"]


def test_the_password_has_no_flag_and_everything_else_has_one() -> None:
    assert [o.name for o in package.SECTION.options if not o.cli] == [SECRET]
    assert [o.name for o in package.SECTION.options if o.secret] == [SECRET]


def test_action_inputs_are_the_cli_options() -> None:
    expected = [n for n in OPTIONS if n not in ACTION_LEAVES_OUT]
    expected += [o.name for _, o in shared_options()] + ACTION_EXTRA
    assert list(ACTION["inputs"]) == expected


def test_action_passes_each_input_to_its_environment_variable() -> None:
    expected = {
        o.env_var("package"): f"${{{{ inputs.{o.name} }}}}"
        for o in package.SECTION.options
        if o.name not in ACTION_LEAVES_OUT
    }
    expected |= {
        o.env_var(section): f"${{{{ inputs.{o.name} }}}}" for section, o in shared_options()
    }
    expected["MLSTEPS_CONFIG"] = "${{ inputs.config }}"
    env = dict(run_step()["env"])
    assert env.pop("MLSTEPS_VENV") == "${{ steps.install.outputs.venv }}"
    assert env == expected


def test_action_leaves_the_password_variable_to_the_callers_env() -> None:
    # Set by the action, even to '', it would hide the value the workflow's step gave.
    password_var = package.SECTION.option(SECRET).env_var("package")
    assert password_var == "MLSTEPS_PACKAGE_REGISTRY_PASSWORD"
    for step in ACTION["runs"]["steps"]:
        assert password_var not in (step.get("env") or {})
    assert "password" not in " ".join(ACTION["inputs"])


def test_action_inputs_default_to_unset() -> None:
    # An action-side default would reach mlsteps as an environment variable and so outrank the
    # config file; defaults belong to mlsteps.
    assert {name: spec.get("default") for name, spec in ACTION["inputs"].items()} == {
        name: "" for name in ACTION["inputs"]
    }
    assert all(spec.get("description") for spec in ACTION["inputs"].values())


def test_action_execs_the_cli_with_no_expression_in_a_script() -> None:
    for step in ACTION["runs"]["steps"]:
        assert "${{" not in step.get("run", "")
    assert run_step()["run"].strip() == 'exec "$MLSTEPS_VENV/bin/mlsteps" --ci github package'


def test_action_installs_mlsteps_as_the_train_action_does() -> None:
    train = yaml.safe_load((REPO / "actions" / "train" / "action.yml").read_text("utf-8"))
    (ours,) = [s for s in ACTION["runs"]["steps"] if s.get("id") == "install"]
    (theirs,) = [s for s in train["runs"]["steps"] if s.get("id") == "install"]
    assert ours == theirs


def test_action_outputs_are_the_steps_outputs() -> None:
    assert list(ACTION["outputs"]) == list(package.OUTPUTS)
    for name, spec in ACTION["outputs"].items():
        assert spec["value"] == f"${{{{ steps.package.outputs.{name} }}}}"
        assert spec["description"]


def test_jenkins_keys_are_the_cli_options_in_camel_case() -> None:
    keys = [key for key, _ in default_config_entries()]
    expected = [JENKINS_CREDENTIAL_KEY.get(n, camel(n)) for n in OPTIONS if n not in LEAVES_OUT]
    expected += [o.jenkins_key for _, o in shared_options()]
    assert keys == expected + JENKINS_EXTRA
    assert [o.jenkins_key for o in package.SECTION.options] == [camel(n) for n in OPTIONS]


def test_every_jenkins_default_has_a_comment() -> None:
    missing = [key for key, comment in default_config_entries() if not comment.strip()]
    assert missing == []


def test_jenkins_passes_each_option_as_its_cli_flag(run_jenkins: Any) -> None:
    args: dict[str, Any] = {"mlsteps": "true"}
    flagged = [o for o in package.SECTION.options if o.cli and o.name not in LEAVES_OUT]
    flagged += [o for _, o in shared_options() if o.name != "tracking-uri"]
    for option in flagged:
        args[option.jenkins_key] = {"list": ["v"], "bool": True}.get(option.kind, "v")
    run = run_jenkins("mlPackage", args)
    assert run.status == "SUCCESS", run.console
    flags = re.findall(r"'(--[a-z-]+)' '(?:v|true)'", run.sh["args"]["script"])
    assert flags == [o.flag for o in flagged]


def test_jenkins_reports_the_same_keys_it_declares(run_jenkins: Any) -> None:
    run = run_jenkins("mlPackage", {"notAnOption": 1})
    assert run.status == "FAILURE"
    listed = run.error.split("known keys: ", 1)[1].split(", ")
    assert listed == [key for key, _ in default_config_entries()]


def test_cli_help_lists_each_flag_the_faces_pass(mlsteps_cli: str) -> None:
    proc = subprocess.run(
        [mlsteps_cli, "package", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    wanted = [o.flag for o in package.SECTION.options if o.cli]
    wanted += [o.flag for _, o in shared_options()]
    missing = [flag for flag in wanted if flag not in proc.stdout]
    assert missing == []
    assert "--registry-password" not in proc.stdout


def test_cli_takes_no_experiment() -> None:
    from steps.package.command import command

    flags = {flag for p in command.params for flag in getattr(p, "opts", [])}
    assert "--tracking-uri" in flags and "--name" in flags and "--experiment" not in flags
