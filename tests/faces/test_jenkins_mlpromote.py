"""vars/mlPromote.groovy under the Groovy harness: the `mlsteps promote` and `mlsteps rollback`
commands it builds, the approval it asks for with the input step, the tokens it binds (and
keeps off the command line), the outputs it returns and how it fails.

The command is run for real by the harness's `sh`: mostly the executable it names is a probe
(tests/faces/gate_promote_setup.py); the last tests drive the real mlsteps CLI as a dry run,
which plans the move and touches nothing.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.faces.gate_promote_setup import AWKWARD, probed, write_probe
from tests.leak_forms import leaked

pytestmark = pytest.mark.faces

KNOWN_KEYS = (
    "version, alias, previousAlias, expectedChampion, requireGate, gateReportDigest, "
    "requireApproval, approvalEnvironment, "
    "approvedBy, lock, lockPath, lockTtl, lockTimeout, vaultUrl, vaultNamespace, vaultCaCert, "
    "sagemakerModelPackageGroup, vaultTokenCredentialsId, githubTokenCredentialsId, trackingUri, "
    "name, rollback, approvers, config, mlsteps"
)
VAULT_TOKEN = "hvs.vault 'tok\"en' $HOME %s ünï"
GITHUB_TOKEN = "ghs_" + "g" * 36
OUTPUTS = {
    "champion-version": "7",
    "previous-version": "6",
    "decision": "promoted",
    "sagemaker-model-package-arn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/churn/3",
}


@pytest.fixture
def probe(tmp_path: Path) -> list[str]:
    return write_probe(tmp_path / "probe dir")


def test_builds_the_exact_promote_command_with_every_value_single_quoted(
    run_jenkins: Any,
) -> None:
    run = run_jenkins(
        "mlPromote",
        {
            "mlsteps": "true",  # the command is checked as text; `true` just exits 0
            "config": "conf dir/mlsteps.yaml",
            "version": 7,
            "alias": "prod",
            "previousAlias": "prod-before",
            "expectedChampion": "none",
            "requireGate": "false",
            "gateReportDigest": "sha256:" + "ab" * 32,
            "requireApproval": False,
            "approvedBy": AWKWARD,
            "lock": "file",
            "lockPath": "/var/lock/ml locks/churn.lock",
            "lockTtl": "10m",
            "lockTimeout": "30s",
            "trackingUri": "http://127.0.0.1:5000",
            "name": "churn; rm -rf /",
        },
    )
    assert run.status == "SUCCESS", run.console
    assert run.sh["args"]["returnStatus"] is True
    assert run.sh["args"]["label"] == "mlsteps promote"
    assert run.sh["args"]["script"] == (
        "'true' '--ci' 'jenkins' '--config' 'conf dir/mlsteps.yaml' 'promote'"
        " '--version' '7' '--alias' 'prod' '--previous-alias' 'prod-before'"
        " '--expected-champion' 'none' '--require-gate' 'false'"
        f" '--gate-report-digest' 'sha256:{'ab' * 32}' '--require-approval' 'false'"
        " '--approved-by' 'it'\\''s \"quoted\" $HOME `id` \\ ; | & *'"
        " '--lock' 'file' '--lock-path' '/var/lock/ml locks/churn.lock' '--lock-ttl' '10m'"
        " '--lock-timeout' '30s' '--name' 'churn; rm -rf /'"
    )
    assert run.sh["env"]["MLSTEPS_MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"
    assert run.calls("withCredentials") == [{"step": "withCredentials", "args": {"bindings": []}}]
    assert run.calls("input") == []


def test_rollback_builds_the_rollback_command(run_jenkins: Any) -> None:
    run = run_jenkins(
        "mlPromote",
        {
            "mlsteps": "true",
            "rollback": "true",
            "name": "churn",
            "expectedChampion": "7",
            "lock": "vault",
            "lockPath": "secret/mlsteps/locks/churn",
            "vaultUrl": "https://vault.internal:8200",
            "vaultNamespace": "ml",
            "vaultCaCert": "certs/vault ca.pem",
            "sagemakerModelPackageGroup": "churn-models",
        },
    )
    assert run.status == "SUCCESS", run.console
    assert run.sh["args"]["label"] == "mlsteps rollback"
    assert run.sh["args"]["script"] == (
        "'true' '--ci' 'jenkins' 'rollback' '--expected-champion' '7' '--lock' 'vault'"
        " '--lock-path' 'secret/mlsteps/locks/churn' '--vault-url' 'https://vault.internal:8200'"
        " '--vault-namespace' 'ml' '--vault-ca-cert' 'certs/vault ca.pem'"
        " '--sagemaker-model-package-group' 'churn-models' '--name' 'churn'"
    )


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"version": "7"}, "version; remove it"),
        (
            {"requireApproval": True, "approvers": "leads"},
            "requireApproval, approvers; remove them",
        ),
        ({"requireGate": False}, "requireGate; remove it"),
    ],
)
def test_rollback_refuses_the_keys_of_promote(
    run_jenkins: Any, given: dict[str, Any], named: str
) -> None:
    run = run_jenkins("mlPromote", {"rollback": True, "name": "churn", **given})
    assert run.status == "FAILURE"
    assert run.error == (
        "mlPromote: rollback: true moves the alias back to the version under previousAlias and "
        f"takes no {named}, or promote without rollback"
    )
    assert run.calls("input") == []
    assert run.calls("sh") == []


def test_require_approval_asks_with_the_input_step_and_passes_the_submitter(
    run_jenkins: Any, probe: list[str], tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    run = run_jenkins(
        "mlPromote",
        {
            "mlsteps": probe,
            "version": "7",
            "name": "churn",
            "requireApproval": True,
            "approvers": "release-lead, ops",
        },
        workspace=workspace,
        answers=[{"submitter": "release-lead"}],
    )
    assert run.status == "SUCCESS", run.console
    (asked,) = run.calls("input")
    assert asked["args"] == {
        "message": "Promote version 7 of churn to champion?",
        "ok": "Promote",
        "submitterParameter": "approver",
        "submitter": "release-lead, ops",
    }
    # Asked before mlsteps ran, which got who answered.
    steps = [c["step"] for c in run.record["calls"]]
    assert steps.index("input") < steps.index("sh")
    assert probed(workspace)["argv"] == [
        "--ci",
        "jenkins",
        "promote",
        "--version",
        "7",
        "--require-approval",
        "true",
        "--approved-by",
        "release-lead",
        "--name",
        "churn",
    ]


def test_an_aborted_approval_stops_before_mlsteps_runs(run_jenkins: Any) -> None:
    run = run_jenkins(
        "mlPromote",
        {"mlsteps": "true", "version": "7", "name": "churn", "requireApproval": True},
        answers=[{"abort": "release-lead"}],
    )
    assert run.status == "FAILURE"
    assert run.error == "Aborted by release-lead"
    assert len(run.calls("input")) == 1
    assert run.calls("sh") == []


def test_an_approval_given_as_approved_by_asks_nobody(
    run_jenkins: Any, probe: list[str], tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    run = run_jenkins(
        "mlPromote",
        {"mlsteps": probe, "version": "7", "requireApproval": True, "approvedBy": "cab-1234"},
        workspace=workspace,
    )
    assert run.status == "SUCCESS", run.console
    assert run.calls("input") == []
    argv = probed(workspace)["argv"]
    assert argv[argv.index("--approved-by") + 1] == "cab-1234"


def test_the_tokens_are_bound_to_the_environment_only(
    run_jenkins: Any, probe: list[str], tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    run = run_jenkins(
        "mlPromote",
        {
            "mlsteps": probe,
            "version": "7",
            "lock": "vault",
            "vaultTokenCredentialsId": "vault-promote",
            "githubTokenCredentialsId": "github-token",
        },
        workspace=workspace,
        credentials={"vault-promote": VAULT_TOKEN, "github-token": GITHUB_TOKEN},
    )
    assert run.status == "SUCCESS", run.console
    assert run.calls("withCredentials") == [
        {
            "step": "withCredentials",
            "args": {
                "bindings": [
                    {
                        "type": "string",
                        "credentialsId": "vault-promote",
                        "variable": "MLSTEPS_PROMOTE_VAULT_TOKEN",
                    },
                    {
                        "type": "string",
                        "credentialsId": "github-token",
                        "variable": "MLSTEPS_PROMOTE_GITHUB_TOKEN",
                    },
                ]
            },
        }
    ]
    seen = probed(workspace)
    assert seen["env"]["MLSTEPS_PROMOTE_VAULT_TOKEN"] == VAULT_TOKEN
    assert seen["env"]["MLSTEPS_PROMOTE_GITHUB_TOKEN"] == GITHUB_TOKEN
    assert seen["argv"] == ["--ci", "jenkins", "promote", "--version", "7", "--lock", "vault"]
    assert run.sh["env"]["MLSTEPS_PROMOTE_VAULT_TOKEN"] == "****"
    secrets = {"Vault token": VAULT_TOKEN, "GitHub token": GITHUB_TOKEN}
    assert leaked(run.console + json.dumps(run.record), secrets) == []


def test_a_missing_credential_fails_before_mlsteps_runs(run_jenkins: Any) -> None:
    run = run_jenkins(
        "mlPromote", {"mlsteps": "true", "version": "7", "vaultTokenCredentialsId": "nope"}
    )
    assert run.status == "FAILURE"
    assert run.error == "Could not find credentials entry with ID 'nope'"
    assert run.calls("sh") == []


def test_returns_the_outputs_and_archives_the_summary(
    run_jenkins: Any, probe: list[str], tmp_path: Path
) -> None:
    run = run_jenkins(
        "mlPromote",
        {"mlsteps": probe, "version": "7"},
        workspace=tmp_path / "ws",
        env={"PROBE_OUTPUTS": json.dumps(OUTPUTS), "PROBE_SUMMARY": "### mlsteps promote\n"},
    )
    assert run.status == "SUCCESS", run.console
    assert run.result == OUTPUTS
    (read,) = run.calls("readJSON")
    assert re.fullmatch(
        r"\.mlsteps/outputs/promote-jenkins-faces-test-1-[0-9a-f]{8}\.json", read["args"]["file"]
    )
    (archived,) = run.calls("archiveArtifacts")
    assert re.fullmatch(r"\.mlsteps/summary/promote-.*\.md", archived["args"]["artifacts"])


def test_unknown_key_fails_naming_the_known_keys(run_jenkins: Any) -> None:
    run = run_jenkins("mlPromote", {"version": "7", "vaultToken": "x"})
    assert run.status == "FAILURE"
    assert run.returncode == 1
    assert run.error == f"mlPromote: unknown key 'vaultToken'; known keys: {KNOWN_KEYS}"
    assert run.calls("sh") == []


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("version", ["7"], "must be a String or a number, not ArrayList"),
        ("mlsteps", 3, "must be a List of strings or one String, not Integer"),
        ("requireApproval", "yes", "must be true or false, not 'yes'"),
        ("rollback", 1, "must be true or false, not '1'"),
    ],
)
def test_a_value_of_the_wrong_type_fails(
    run_jenkins: Any, key: str, value: Any, expected: str
) -> None:
    run = run_jenkins("mlPromote", {"version": "7", key: value})
    assert run.status == "FAILURE"
    assert run.error == f"mlPromote: key '{key}' {expected}"
    assert run.calls("sh") == []


@pytest.mark.parametrize(
    ("code", "meaning"),
    [
        (1, "the step failed, or another promotion moved the champion first"),
        (3, "the gate rejected the version"),
    ],
)
def test_nonzero_exit_fails_with_the_code(
    run_jenkins: Any, probe: list[str], tmp_path: Path, code: int, meaning: str
) -> None:
    run = run_jenkins(
        "mlPromote",
        {"mlsteps": probe, "version": "7"},
        workspace=tmp_path / "ws",
        env={"PROBE_EXIT": str(code), "PROBE_SUMMARY": "failed"},
    )
    assert run.status == "FAILURE"
    assert run.error == (
        f"mlPromote: mlsteps promote exited with code {code} ({meaning}); see its message above"
    )
    assert len(run.calls("archiveArtifacts")) == 1


# ------------------------------------------------------------- the real CLI, as a dry run


def test_real_cli_dry_run_plans_the_move_with_the_approver_from_the_input_step(
    run_jenkins: Any, mlsteps_cli: str, tmp_path: Path
) -> None:
    run = run_jenkins(
        "mlPromote",
        {
            "mlsteps": [mlsteps_cli, "--dry-run"],
            "version": "7",
            "gateReportDigest": "sha256:" + "c" * 64,
            "name": "churn",
            "trackingUri": "http://127.0.0.1:9",
            "requireApproval": True,
            "lockPath": str(tmp_path / "churn.lock"),
        },
        workspace=tmp_path / "ws",
        answers=[{"submitter": "release-lead"}],
    )
    assert run.status == "SUCCESS", run.console
    assert "record the approval of release-lead (--approved-by)" in run.console
    assert f"must hash to sha256:{'c' * 64} (--gate-report-digest)" in run.console
    assert f"take the file lock {tmp_path / 'churn.lock'}" in run.console
    assert run.result == {}  # a dry run sets no outputs
    assert not (tmp_path / "churn.lock").exists()


def test_real_cli_rollback_dry_run(run_jenkins: Any, mlsteps_cli: str, tmp_path: Path) -> None:
    run = run_jenkins(
        "mlPromote",
        {
            "mlsteps": [mlsteps_cli, "--dry-run"],
            "rollback": True,
            "name": "churn",
            "trackingUri": "http://127.0.0.1:9",
            "lockPath": str(tmp_path / "churn.lock"),
            "sagemakerModelPackageGroup": "churn-models",
        },
        workspace=tmp_path / "ws",
    )
    assert run.status == "SUCCESS", run.console
    assert "point 'champion' at the version under 'previous-champion'" in run.console
    assert "in SageMaker group churn-models, set the demoted version's" in run.console


def test_real_cli_bad_input_fails_the_step_with_exit_code_2(
    run_jenkins: Any, mlsteps_cli: str, tmp_path: Path
) -> None:
    run = run_jenkins(
        "mlPromote",
        {
            "mlsteps": [mlsteps_cli, "--dry-run"],
            "version": "seven",
            "name": "churn",
            "trackingUri": "http://127.0.0.1:9",
        },
        workspace=tmp_path / "ws",
    )
    assert run.status == "FAILURE"
    assert run.error == (
        "mlPromote: mlsteps promote exited with code 2 (bad input or configuration);"
        " see its message above"
    )
    assert "--version" in run.console and "'seven'" in run.console


# ------------------------------------------------ the stage-level input that mlPromote.txt advises


def advised_pipeline() -> str:
    """The declarative pipeline mlPromote.txt shows (its stage-level input directive)."""
    import html

    page = (Path(__file__).resolve().parents[2] / "vars" / "mlPromote.txt").read_text()
    (pipeline,) = [
        html.unescape(block)
        for block in re.findall(r"<pre>\n(.*?)</pre>", page, flags=re.S)
        if "input {" in block
    ]
    return pipeline


def run_advice(run_jenkinsfile: Any, tmp_path: Path, answer: dict[str, Any]) -> tuple[Any, Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    jenkinsfile = tmp_path / "Jenkinsfile"
    jenkinsfile.write_text(advised_pipeline(), encoding="utf-8")
    # `mlsteps` on the agent's PATH is the probe: the command mlPromote builds is recorded.
    probe = write_probe(tmp_path / "probe dir")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mlsteps").write_text(
        "#!/bin/sh\nexec " + " ".join(f"'{word}'" for word in probe) + ' "$@"\n'
    )
    (bin_dir / "mlsteps").chmod(0o755)
    workspace = tmp_path / "ws"
    digest = "sha256:" + "d" * 64
    run = run_jenkinsfile(
        jenkinsfile,
        workspace=workspace,
        env={
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "MODEL_VERSION": "7",
            "GATE_REPORT_DIGEST": digest,
            "PROBE_OUTPUTS": json.dumps(OUTPUTS),
        },
        answers=[answer],
    )
    return run, workspace


def test_the_advised_stage_input_asks_before_the_agent_and_passes_who_answered(
    run_jenkinsfile: Any, tmp_path: Path
) -> None:
    answer = {"submitter": "release-leads", "parameters": {"REASON": "hotfix 12"}}
    run, workspace = run_advice(run_jenkinsfile, tmp_path, answer)
    assert run.status == "SUCCESS", run.console
    (asked,) = run.calls("input")
    assert asked["args"] == {
        "message": "Promote the gated version of churn to champion?",
        "ok": "Promote",
        "submitter": "release-leads",
        "submitterParameter": "APPROVER",
        "parameters": [
            {
                "type": "string",
                "name": "REASON",
                "defaultValue": "release",
                "description": "Why, for the build log",
            }
        ],
    }
    # Asked before the stage's agent: no executor waits on a person.
    steps = [c["step"] for c in run.record["calls"]]
    assert steps.index("input") < steps.index("agent") < steps.index("mlPromote")
    # The answers are the stage's environment: the parameter and who answered.
    assert "promoting for hotfix 12, approved by release-leads" in run.console
    assert probed(workspace)["argv"] == [
        "--ci", "jenkins", "promote", "--version", "7", "--gate-report-digest",
        "sha256:" + "d" * 64, "--require-approval", "true", "--approved-by", "release-leads",
        "--name", "churn",
    ]  # fmt: skip
    # mlPromote asked nothing more: approvedBy came from the stage's input.
    assert len(run.calls("input")) == 1


def test_the_advised_stage_input_takes_defaults_and_stops_the_build_on_abort(
    run_jenkinsfile: Any, tmp_path: Path
) -> None:
    done, _ = run_advice(run_jenkinsfile, tmp_path / "default", {"submitter": "release-leads"})
    assert done.status == "SUCCESS", done.console
    assert "promoting for release, approved by release-leads" in done.console
    aborted, workspace = run_advice(run_jenkinsfile, tmp_path / "abort", {"abort": "ops"})
    assert aborted.status == "FAILURE" and aborted.error == "Aborted by ops"
    assert aborted.calls("mlPromote") == [] and not (workspace / "probe.json").exists()
    # Someone outside the submitter list cannot answer.
    other, _ = run_advice(run_jenkinsfile, tmp_path / "other", {"submitter": "intern"})
    assert other.status == "FAILURE" and "intern may not answer" in (other.error or "")
    assert other.calls("mlPromote") == []
