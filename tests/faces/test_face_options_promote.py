"""Every face of `promote` (and `rollback`, which reads the same `promote` section) lists the
same options, mapped by the one rule of the contract: option `lock-path` → flag `--lock-path` →
env `MLSTEPS_PROMOTE_LOCK_PATH` → action input `lock-path` → Jenkins key `lockPath`. The CLI's
option list (steps.promote_options.SECTION, with the shared mlflow and model sections) is the
source; what a face leaves out, it leaves out for a reason written here.

(Kept beside test_face_options_package.py, which does the same for `package`.)
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps.core.options import MLFLOW, MODEL
from steps.promote import options as promote
from tests import groovy_config
from tests.groovy_config import camel

pytestmark = pytest.mark.faces

REPO = Path(__file__).resolve().parents[2]
ACTION = yaml.safe_load((REPO / "actions" / "promote" / "action.yml").read_text(encoding="utf-8"))

OPTIONS = [o.name for o in promote.SECTION.options]
# Credentials: never a flag (argv is readable by every process), only the environment.
SECRETS = ["vault-token", "github-token"]
SHARED_SECTIONS = (MLFLOW, MODEL)
# promote creates no MLflow run: of the shared mlflow section it takes tracking-uri only.
LEAVES_OUT = {"experiment"}
ACTION_LEAVES_OUT = LEAVES_OUT | {
    # Given in the step's env: (VAULT_TOKEN, GITHUB_TOKEN). As inputs they would be mapped in
    # the action's own env:, where the empty default of an input left out would shadow them.
    *SECRETS,
}
# Beyond the options: the subcommand switch and the config file in both; in Jenkins, who may
# answer the input step, and which mlsteps runs (the action installs its own).
ACTION_EXTRA = ["rollback", "config"]
JENKINS_EXTRA = ["rollback", "approvers", "config", "mlsteps"]
# What rollback does not take (it has no candidate, gate or approval).
PROMOTE_ONLY = [
    "version", "require-gate", "gate-report-digest", "require-approval", "approval-environment",
    "approved-by",
]  # fmt: skip


def jenkins_key(name: str) -> str:
    # A credential is named by the Jenkins credential that holds it.
    return camel(name) + ("CredentialsId" if name in SECRETS else "")


def shared_options() -> list[Any]:
    return [(s.name, o) for s in SHARED_SECTIONS for o in s.options if o.name not in LEAVES_OUT]


def run_step() -> dict[str, Any]:
    (step,) = [s for s in ACTION["runs"]["steps"] if s.get("id") == "promote"]
    found: dict[str, Any] = step
    return found


def default_config_entries() -> list[tuple[str, str]]:
    return groovy_config.default_config_entries("mlPromote")


def test_the_contract_options_are_the_clis() -> None:
    # The contract's table, in its order; a change here is a change of every face.
    assert OPTIONS == [
        "version",
        "alias",
        "previous-alias",
        "expected-champion",
        "require-gate",
        "gate-report-digest",
        "require-approval",
        "approval-environment",
        "approved-by",
        "lock",
        "lock-path",
        "lock-ttl",
        "lock-timeout",
        "vault-url",
        "vault-namespace",
        "vault-ca-cert",
        "sagemaker-model-package-group",
        "vault-token",
        "github-token",
    ]
    assert [o.name for _, o in shared_options()] == ["tracking-uri", "name"]
    assert list(promote.OUTPUTS) == [
        "champion-version",
        "previous-version",
        "decision",
        "sagemaker-model-package-arn",
    ]
    # rollback takes the promote options less the candidate's, gate's and approval's.
    assert [n for n in promote.PROMOTE_OPTIONS if n not in promote.ROLLBACK_OPTIONS] == (
        PROMOTE_ONLY
    )


def test_the_tokens_have_no_flag_and_everything_else_has_one() -> None:
    assert [o.name for o in promote.SECTION.options if not o.cli] == SECRETS
    assert [o.name for o in promote.SECTION.options if o.secret] == SECRETS


def test_action_inputs_are_the_cli_options() -> None:
    expected = [n for n in OPTIONS if n not in ACTION_LEAVES_OUT]
    expected += [o.name for _, o in shared_options()] + ACTION_EXTRA
    assert list(ACTION["inputs"]) == expected


def test_action_passes_each_input_to_its_environment_variable() -> None:
    expected = {
        o.env_var("promote"): f"${{{{ inputs.{o.name} }}}}"
        for o in promote.SECTION.options
        if o.name not in ACTION_LEAVES_OUT
    }
    expected |= {
        o.env_var(section): f"${{{{ inputs.{o.name} }}}}" for section, o in shared_options()
    }
    expected["MLSTEPS_CONFIG"] = "${{ inputs.config }}"
    env = dict(run_step()["env"])
    assert env.pop("MLSTEPS_VENV") == "${{ steps.install.outputs.venv }}"
    assert env.pop("MLSTEPS_ROLLBACK") == "${{ inputs.rollback }}"
    assert env == expected


def test_action_leaves_the_token_variables_to_the_callers_env() -> None:
    # Set by the action, even to '', they would hide the values the workflow's step gave.
    names = set()
    for option in promote.SECTION.options:
        if option.secret:
            names |= {option.env_var("promote"), *option.env_fallbacks}
    assert names == {
        "MLSTEPS_PROMOTE_VAULT_TOKEN",
        "VAULT_TOKEN",
        "MLSTEPS_PROMOTE_GITHUB_TOKEN",
        "GITHUB_TOKEN",
    }
    for step in ACTION["runs"]["steps"]:
        assert names.isdisjoint(step.get("env") or {})
    assert "token" not in " ".join(ACTION["inputs"])


def test_action_inputs_default_to_unset_but_rollback_to_false() -> None:
    # An action-side default would reach mlsteps as an environment variable and so outrank the
    # config file; `rollback` is the action's own switch, off unless asked for.
    defaults = {name: spec.get("default") for name, spec in ACTION["inputs"].items()}
    assert defaults.pop("rollback") == "false"
    assert defaults == {name: "" for name in defaults}
    assert all(spec.get("description") for spec in ACTION["inputs"].values())


def test_action_runs_promote_or_rollback_with_no_expression_in_a_script() -> None:
    for step in ACTION["runs"]["steps"]:
        assert "${{" not in step.get("run", "")
    script = run_step()["run"]
    execs = re.findall(r"^\s*(exec .*)$", script, re.M)
    assert execs == [
        'exec "$MLSTEPS_VENV/bin/mlsteps" --ci github promote',
        'exec "$MLSTEPS_VENV/bin/mlsteps" --ci github rollback',
    ]
    # The inputs rollback refuses are exactly the options it does not take.
    (checked,) = re.findall(r"for input in ([a-z -]+); do", script)
    assert checked.split() == PROMOTE_ONLY


def test_action_installs_mlsteps_as_the_train_action_does() -> None:
    train = yaml.safe_load((REPO / "actions" / "train" / "action.yml").read_text("utf-8"))
    (ours,) = [s for s in ACTION["runs"]["steps"] if s.get("id") == "install"]
    (theirs,) = [s for s in train["runs"]["steps"] if s.get("id") == "install"]
    assert ours == theirs


def test_action_outputs_are_the_steps_outputs() -> None:
    assert list(ACTION["outputs"]) == list(promote.OUTPUTS)
    for name, spec in ACTION["outputs"].items():
        assert spec["value"] == f"${{{{ steps.promote.outputs.{name} }}}}"
        assert spec["description"]


def test_jenkins_keys_are_the_cli_options_in_camel_case() -> None:
    keys = [key for key, _ in default_config_entries()]
    expected = [jenkins_key(n) for n in OPTIONS] + [o.jenkins_key for _, o in shared_options()]
    assert keys == expected + JENKINS_EXTRA
    assert [o.jenkins_key for o in promote.SECTION.options] == [camel(n) for n in OPTIONS]


def test_every_jenkins_default_has_a_comment() -> None:
    missing = [key for key, comment in default_config_entries() if not comment.strip()]
    assert missing == []


def flag_args(options: list[Any]) -> dict[str, Any]:
    return {o.jenkins_key: True if o.kind == "bool" else "v" for o in options}


def test_jenkins_passes_each_option_as_its_cli_flag(run_jenkins: Any) -> None:
    flagged = [o for o in promote.SECTION.options if o.cli]
    flagged += [o for _, o in shared_options() if o.name != "tracking-uri"]
    run = run_jenkins("mlPromote", {"mlsteps": "true", **flag_args(flagged)})
    assert run.status == "SUCCESS", run.console
    script = run.sh["args"]["script"]
    assert script.startswith("'true' '--ci' 'jenkins' 'promote' ")
    assert re.findall(r"'(--[a-z-]+)' '(?:v|true)'", script) == [o.flag for o in flagged]
    # approvedBy was given: nobody is asked.
    assert run.calls("input") == []


def test_jenkins_rollback_passes_each_option_rollback_takes(run_jenkins: Any) -> None:
    taken = set(promote.ROLLBACK_OPTIONS)
    flagged = [o for o in promote.SECTION.options if o.cli and o.name in taken]
    flagged += [o for _, o in shared_options() if o.name != "tracking-uri"]
    run = run_jenkins("mlPromote", {"mlsteps": "true", "rollback": True, **flag_args(flagged)})
    assert run.status == "SUCCESS", run.console
    script = run.sh["args"]["script"]
    assert script.startswith("'true' '--ci' 'jenkins' 'rollback' ")
    assert re.findall(r"'(--[a-z-]+)' '(?:v|true)'", script) == [o.flag for o in flagged]


def test_jenkins_reports_the_same_keys_it_declares(run_jenkins: Any) -> None:
    run = run_jenkins("mlPromote", {"notAnOption": 1})
    assert run.status == "FAILURE"
    listed = run.error.split("known keys: ", 1)[1].split(", ")
    assert listed == [key for key, _ in default_config_entries()]


@pytest.mark.parametrize("command", ["promote", "rollback"])
def test_cli_help_lists_each_flag_the_faces_pass(mlsteps_cli: str, command: str) -> None:
    proc = subprocess.run(
        [mlsteps_cli, command, "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    takes = promote.PROMOTE_OPTIONS if command == "promote" else promote.ROLLBACK_OPTIONS
    wanted = [f"--{name}" for name in takes]
    missing = [flag for flag in wanted if flag not in proc.stdout]
    assert missing == []
    refused = [f"--{n}" for n in PROMOTE_ONLY if f"--{n} " in proc.stdout]
    assert refused == ([] if command == "rollback" else [f"--{n}" for n in PROMOTE_ONLY])
    assert "--vault-token" not in proc.stdout and "--github-token" not in proc.stdout
