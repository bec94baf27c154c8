"""Every face of `secrets` lists the same options, mapped by the one rule of the contract:
option `ca-cert` → flag `--ca-cert` → env `MLSTEPS_SECRETS_CA_CERT` → action input `ca-cert` →
Jenkins key `caCert`. The CLI's option list (steps.secrets.SECTION) is the source; what a face
leaves out, it leaves out for a reason written here.

(Kept beside test_face_options.py, which does the same for `train`.)
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps.secrets import options as secrets
from tests import groovy_config
from tests.groovy_config import camel

pytestmark = pytest.mark.faces

REPO = Path(__file__).resolve().parents[2]
ACTION = yaml.safe_load((REPO / "actions" / "secrets" / "action.yml").read_text(encoding="utf-8"))
GROOVY = (REPO / "vars" / "withVaultSecrets.groovy").read_text(encoding="utf-8")

OPTIONS = [o.name for o in secrets.SECTION.options]
# Credentials: never a flag (argv is readable by every process), only the environment.
CREDENTIALS = ["token", "role-id", "secret-id", "jwt"]

# What each face leaves out, and why.
ACTION_LEAVES_OUT = {
    # A composite action exposes only outputs it declares, under fixed names; the per-secret
    # outputs would be set inside the action where no workflow can read them.
    "export-outputs",
}
JENKINS_LEAVES_OUT = {
    "export-env",  # GitHub Actions only
    "export-outputs",  # GitHub Actions only
    "jwt-audience",  # the audience of GitHub's OIDC token
    "file",  # the step owns its files: a private directory under pwd(tmp: true)
    "file-format",
    "lease-file",
}
# Beyond the options: the config file in both; the action's subcommand switch; which mlsteps
# runs in Jenkins (the action installs its own).
ACTION_EXTRA = ["config", "revoke"]
JENKINS_EXTRA = ["config", "mlsteps"]


def jenkins_key(name: str) -> str:
    # A credential is named by the Jenkins credential that holds it.
    return camel(name) + ("CredentialsId" if name in CREDENTIALS else "")


def run_step() -> dict[str, Any]:
    (step,) = [s for s in ACTION["runs"]["steps"] if s.get("id") == "secrets"]
    return step


def default_config_entries() -> list[tuple[str, str]]:
    return groovy_config.default_config_entries("withVaultSecrets")


def test_the_credentials_have_no_flag_and_everything_else_has_one() -> None:
    assert [o.name for o in secrets.SECTION.options if not o.cli] == CREDENTIALS
    assert all(o.secret for o in secrets.SECTION.options if o.name in CREDENTIALS)


def test_action_inputs_are_the_cli_options() -> None:
    expected = [n for n in OPTIONS if n not in ACTION_LEAVES_OUT] + ACTION_EXTRA
    assert list(ACTION["inputs"]) == expected


def test_action_passes_each_input_to_its_environment_variable() -> None:
    expected = {
        o.env_var("secrets"): f"${{{{ inputs.{o.name} }}}}"
        for o in secrets.SECTION.options
        if o.name not in ACTION_LEAVES_OUT
    }
    expected["MLSTEPS_CONFIG"] = "${{ inputs.config }}"
    expected["MLSTEPS_ACTION_REVOKE"] = "${{ inputs.revoke }}"
    env = dict(run_step()["env"])
    assert env.pop("MLSTEPS_VENV") == "${{ steps.install.outputs.venv }}"
    assert env == expected


def test_action_inputs_default_to_unset() -> None:
    # An action-side default would reach mlsteps as an environment variable and so outrank the
    # config file; defaults belong to mlsteps. `revoke` is the action's own switch.
    defaults = {name: spec.get("default") for name, spec in ACTION["inputs"].items()}
    assert defaults.pop("revoke") == "false"
    assert defaults == {name: "" for name in defaults}
    assert all(spec.get("description") for spec in ACTION["inputs"].values())


def test_action_execs_the_cli_with_no_expression_in_a_script() -> None:
    for step in ACTION["runs"]["steps"]:
        assert "${{" not in step.get("run", "")
    script = run_step()["run"]
    assert 'exec "$MLSTEPS_VENV/bin/mlsteps" --ci github secrets fetch' in script
    assert 'exec "$MLSTEPS_VENV/bin/mlsteps" --ci github secrets revoke' in script


def test_action_outputs_are_the_clis_and_never_values() -> None:
    assert list(ACTION["outputs"]) == [*secrets.OUTPUTS, "revoked"]
    for name, spec in ACTION["outputs"].items():
        assert spec["value"] == f"${{{{ steps.secrets.outputs.{name} }}}}"
        assert spec["description"]


def test_jenkins_keys_are_the_cli_options_in_camel_case() -> None:
    keys = [key for key, _ in default_config_entries()]
    expected = [jenkins_key(n) for n in OPTIONS if n not in JENKINS_LEAVES_OUT]
    # A credential's key comes just before its -file option, as the option does.
    assert keys == expected + JENKINS_EXTRA
    assert [o.jenkins_key for o in secrets.SECTION.options] == [camel(n) for n in OPTIONS]


def test_every_jenkins_default_has_a_comment() -> None:
    missing = [key for key, comment in default_config_entries() if not comment.strip()]
    assert missing == []


def test_jenkins_passes_each_option_as_its_cli_flag(run_jenkins: Any, tmp_path: Path) -> None:
    # mlsteps `true`: fetch "succeeds" without writing the file, so readJSON fails after the
    # command was built; the revoke runs anyway (`finally`).
    args: dict[str, Any] = {"mlsteps": "true"}
    flagged = [o for o in secrets.SECTION.options if o.cli and o.name not in JENKINS_LEAVES_OUT]
    for option in flagged:
        args[option.jenkins_key] = "v"
    run = run_jenkins("withVaultSecrets", args, body="return 1")
    fetch = run.calls("sh")[0]["args"]["script"]
    flags = re.findall(r"'(--[a-z-]+)' 'v'", fetch)
    assert flags == [o.flag for o in flagged]


def test_jenkins_reports_the_same_keys_it_declares(run_jenkins: Any) -> None:
    run = run_jenkins("withVaultSecrets", {"notAnOption": 1}, body="return 1")
    assert run.status == "FAILURE"
    listed = run.error.split("known keys: ", 1)[1].split(", ")
    assert listed == [key for key, _ in default_config_entries()]


@pytest.mark.parametrize("subcommand", ["fetch", "revoke"])
def test_cli_help_lists_each_flag_the_faces_pass(mlsteps_cli: str, subcommand: str) -> None:
    proc = subprocess.run(
        [mlsteps_cli, "secrets", subcommand, "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    wanted = {
        "fetch": [o.flag for o in secrets.SECTION.options if o.cli],
        "revoke": [f"--{name}" for name in secrets.REVOKE_OPTIONS],
    }[subcommand]
    missing = [flag for flag in wanted if flag not in proc.stdout]
    assert missing == []
    # The groovy step's revoke passes exactly the connection options revoke takes.
    if subcommand == "revoke":
        keys = re.search(r"connectionKeys\(\) \{\n\s+return \[(.*?)\]", GROOVY, re.DOTALL)
        assert keys
        assert [
            "--" + re.sub("([A-Z])", lambda m: "-" + m.group(1).lower(), k)
            for k in re.findall(r"'(\w+)'", keys.group(1))
        ] == [f"--{name}" for name in secrets.REVOKE_OPTIONS if name != "lease-file"]
