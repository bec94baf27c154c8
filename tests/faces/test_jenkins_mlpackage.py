"""vars/mlPackage.groovy under the Groovy harness: the command it builds, the registry
credential it binds (and keeps off the command line), the outputs it returns and how it fails.

The command is run for real by the harness's `sh`: mostly the executable it names is a probe
that records the argv and environment the shell handed it; the last tests drive the real
mlsteps CLI as a dry run, which plans the build and the push and touches nothing.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.faces.package_setup import PASSWORD, TAG, tiny_model
from tests.leak_forms import leaked

pytestmark = pytest.mark.faces

PROBE = """\
import json, os, sys
from pathlib import Path

Path("probe.json").write_text(json.dumps({
    "argv": sys.argv[1:],
    "env": {k: v for k, v in os.environ.items() if k.startswith("MLSTEPS_")},
}))
for variable, content in (("MLSTEPS_OUTPUTS_FILE", "PROBE_OUTPUTS"),
                          ("MLSTEPS_SUMMARY_FILE", "PROBE_SUMMARY")):
    if os.environ.get(content):
        path = Path(os.environ[variable])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(os.environ[content])
sys.exit(int(os.environ.get("PROBE_EXIT", "0")))
"""

AWKWARD = 'it\'s "quoted" $HOME `id` \\ ; | & *'

OUTPUTS = {
    "image": "127.0.0.1:5000/ml/churn:v3",
    "digest": "sha256:" + "b" * 64,
    "image-ref": "127.0.0.1:5000/ml/churn@sha256:" + "b" * 64,
    "model-version": "3",
    "cache-hit": "true",
}

KNOWN_KEYS = (
    "modelUri, registry, repository, tag, baseImage, gpu, platform, buildArg, systemPackage, "
    "pipIndexUrl, "
    "pipExtraIndexUrl, caBundle, noCache, push, load, smokeTest, smokeTimeout, register, "
    "registryUsername, registryCredentialsId, trackingUri, name, config, mlsteps"
)


@pytest.fixture
def probe(tmp_path: Path) -> list[str]:
    """The `mlsteps` key's value that runs the probe: [python, probe.py]."""
    path = tmp_path / "probe dir" / "probe.py"
    path.parent.mkdir()
    path.write_text(PROBE, encoding="utf-8")
    return [sys.executable, str(path)]


def probed(workspace: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((workspace / "probe.json").read_text(encoding="utf-8"))
    return result


def test_builds_the_exact_command_with_every_value_single_quoted(run_jenkins: Any) -> None:
    run = run_jenkins(
        "mlPackage",
        {
            "mlsteps": "true",  # the command is checked as text; `true` just exits 0
            "config": "conf dir/mlsteps.yaml",
            "modelUri": "models:/churn@champion",
            "registry": "127.0.0.1:5000/ml",
            "repository": "churn",
            "tag": "v3",
            "baseImage": "python:3.11-slim",
            "gpu": False,
            "platform": "linux/amd64",
            "buildArg": {"NOTE": AWKWARD, "B": "2"},
            "pipIndexUrl": "https://pypi.internal/simple",
            "pipExtraIndexUrl": ["https://a.internal/simple", "https://b.internal/simple"],
            "caBundle": "certs/proxy ca.pem",
            "noCache": "true",
            "push": True,
            "load": False,
            "smokeTest": True,
            "smokeTimeout": "2m",
            "register": True,
            "registryUsername": "ci-push",
            "trackingUri": "http://127.0.0.1:5000",
            "name": "churn; rm -rf /",
        },
    )
    assert run.status == "SUCCESS", run.console
    assert run.sh["args"]["returnStatus"] is True
    assert run.sh["args"]["label"] == "mlsteps package"
    assert run.sh["args"]["script"] == (
        "'true' '--ci' 'jenkins' '--config' 'conf dir/mlsteps.yaml' 'package'"
        " '--model-uri' 'models:/churn@champion' '--registry' '127.0.0.1:5000/ml'"
        " '--repository' 'churn' '--tag' 'v3' '--base-image' 'python:3.11-slim' '--gpu' 'false'"
        " '--platform' 'linux/amd64'"
        " '--build-arg' 'NOTE=it'\\''s \"quoted\" $HOME `id` \\ ; | & *' '--build-arg' 'B=2'"
        " '--pip-index-url' 'https://pypi.internal/simple'"
        " '--pip-extra-index-url' 'https://a.internal/simple'"
        " '--pip-extra-index-url' 'https://b.internal/simple'"
        " '--ca-bundle' 'certs/proxy ca.pem' '--no-cache' 'true' '--push' 'true'"
        " '--load' 'false' '--smoke-test' 'true' '--smoke-timeout' '2m' '--register' 'true'"
        " '--registry-username' 'ci-push' '--name' 'churn; rm -rf /'"
    )
    # The tracking URI travels as the environment, as in mlTrain; no credential is bound.
    assert run.sh["env"]["MLSTEPS_MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"
    assert run.calls("withCredentials") == [{"step": "withCredentials", "args": {"bindings": []}}]


def test_the_shell_hands_every_value_over_unchanged(
    run_jenkins: Any, probe: list[str], tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    multi_line = "line one\nline 'two'\n"
    run = run_jenkins(
        "mlPackage",
        {
            "mlsteps": probe,
            "modelUri": "runs:/abc/model",
            "buildArg": [f"NOTE={AWKWARD}", f"LINES={multi_line}", "EMPTY="],
            "name": "ünïcødé ☃",
            "registry": "",  # empty: not set
        },
        workspace=workspace,
    )
    assert run.status == "SUCCESS", run.console
    assert probed(workspace)["argv"] == [
        "--ci",
        "jenkins",
        "package",
        "--model-uri",
        "runs:/abc/model",
        "--build-arg",
        f"NOTE={AWKWARD}",
        "--build-arg",
        f"LINES={multi_line}",
        "--build-arg",
        "EMPTY=",
        "--name",
        "ünïcødé ☃",
    ]


def test_the_registry_credential_is_bound_to_the_environment_only(
    run_jenkins: Any, probe: list[str], tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    run = run_jenkins(
        "mlPackage",
        {
            "mlsteps": probe,
            "modelUri": "models:/churn/3",
            "registry": "127.0.0.1:5000",
            "registryCredentialsId": "registry-push",
        },
        workspace=workspace,
        credentials={"registry-push": {"username": "ci-push", "password": PASSWORD}},
    )
    assert run.status == "SUCCESS", run.console
    assert run.calls("withCredentials") == [
        {
            "step": "withCredentials",
            "args": {
                "bindings": [
                    {
                        "type": "usernamePassword",
                        "credentialsId": "registry-push",
                        "usernameVariable": "MLSTEPS_PACKAGE_REGISTRY_USERNAME",
                        "passwordVariable": "MLSTEPS_PACKAGE_REGISTRY_PASSWORD",
                    }
                ]
            },
        }
    ]
    # mlsteps got both from its environment; neither is on the command line.
    seen = probed(workspace)
    assert seen["env"]["MLSTEPS_PACKAGE_REGISTRY_USERNAME"] == "ci-push"
    assert seen["env"]["MLSTEPS_PACKAGE_REGISTRY_PASSWORD"] == PASSWORD
    assert seen["argv"] == [
        "--ci",
        "jenkins",
        "package",
        "--model-uri",
        "models:/churn/3",
        "--registry",
        "127.0.0.1:5000",
    ]
    # The sh call ran inside the binding; the console and the record show it masked.
    assert run.sh["env"]["MLSTEPS_PACKAGE_REGISTRY_PASSWORD"] == "****"
    assert leaked(run.console + json.dumps(run.record), {"registry password": PASSWORD}) == []


def test_a_missing_credential_fails_before_mlsteps_runs(run_jenkins: Any) -> None:
    run = run_jenkins(
        "mlPackage",
        {"mlsteps": "true", "modelUri": "models:/churn/3", "registryCredentialsId": "nope"},
    )
    assert run.status == "FAILURE"
    assert run.error == "Could not find credentials entry with ID 'nope'"
    assert run.calls("sh") == []


def test_credential_and_user_name_together_fail(run_jenkins: Any) -> None:
    run = run_jenkins(
        "mlPackage",
        {
            "modelUri": "models:/churn/3",
            "registryCredentialsId": "registry-push",
            "registryUsername": "someone-else",
        },
    )
    assert run.status == "FAILURE"
    assert run.error == (
        "mlPackage: give registryCredentialsId (its credential holds the user name) or "
        "registryUsername, not both"
    )
    assert run.calls("withCredentials") == []
    assert run.calls("sh") == []


def test_returns_the_outputs_and_archives_the_summary(
    run_jenkins: Any, probe: list[str], tmp_path: Path
) -> None:
    run = run_jenkins(
        "mlPackage",
        {"mlsteps": probe, "modelUri": "models:/churn/3"},
        workspace=tmp_path / "ws",
        env={"PROBE_OUTPUTS": json.dumps(OUTPUTS), "PROBE_SUMMARY": "### mlsteps package\n"},
    )
    assert run.status == "SUCCESS", run.console
    assert run.result == OUTPUTS
    (read,) = run.calls("readJSON")
    assert re.fullmatch(
        r"\.mlsteps/outputs/package-jenkins-faces-test-1-[0-9a-f]{8}\.json", read["args"]["file"]
    )
    (archived,) = run.calls("archiveArtifacts")
    assert re.fullmatch(r"\.mlsteps/summary/package-.*\.md", archived["args"]["artifacts"])
    summary = tmp_path / "ws" / archived["args"]["artifacts"]
    assert summary.read_text() == "### mlsteps package\n"


def test_unknown_key_fails_naming_the_known_keys(run_jenkins: Any) -> None:
    run = run_jenkins("mlPackage", {"modelUri": "models:/churn/3", "registryPassword": "x"})
    assert run.status == "FAILURE"
    assert run.returncode == 1
    assert run.error == f"mlPackage: unknown key 'registryPassword'; known keys: {KNOWN_KEYS}"
    assert run.calls("sh") == []


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (
            "registry",
            ["a"],
            "mlPackage: key 'registry' must be a String or a number, not ArrayList",
        ),
        (
            "buildArg",
            5,
            "mlPackage: key 'buildArg' must be a List of 'KEY=VALUE' strings or a Map, not Integer",
        ),
        (
            "pipExtraIndexUrl",
            {"a": "b"},
            "mlPackage: key 'pipExtraIndexUrl' must be a List of strings or one String, "
            "not LinkedHashMap",
        ),
        ("push", "yes", "mlPackage: key 'push' must be true or false, not 'yes'"),
    ],
)
def test_a_value_of_the_wrong_type_fails(
    run_jenkins: Any, key: str, value: Any, expected: str
) -> None:
    run = run_jenkins("mlPackage", {"modelUri": "models:/churn/3", key: value})
    assert run.status == "FAILURE"
    assert run.error == expected
    assert run.calls("sh") == []


def test_nonzero_exit_fails_with_the_code(
    run_jenkins: Any, probe: list[str], tmp_path: Path
) -> None:
    run = run_jenkins(
        "mlPackage",
        {"mlsteps": probe, "modelUri": "models:/churn/3"},
        workspace=tmp_path / "ws",
        env={"PROBE_EXIT": "1", "PROBE_SUMMARY": "failed"},
    )
    assert run.status == "FAILURE"
    assert run.error == (
        "mlPackage: mlsteps package exited with code 1 (the step failed); see its message above"
    )
    assert run.calls("readJSON") == []
    assert len(run.calls("archiveArtifacts")) == 1


# ------------------------------------------------------------- the real CLI, as a dry run


def test_real_cli_dry_run_plans_the_push_with_the_bound_credential(
    run_jenkins: Any, mlsteps_cli: str, tmp_path: Path
) -> None:
    model = tiny_model(tmp_path / "model")
    run = run_jenkins(
        "mlPackage",
        {
            "mlsteps": [mlsteps_cli, "--dry-run"],
            "modelUri": str(model),
            "registry": "127.0.0.1:5000/ml",
            "name": "churn",
            "registryCredentialsId": "registry-push",
        },
        workspace=tmp_path / "ws",
        credentials={"registry-push": {"username": "ci-push", "password": PASSWORD}},
    )
    assert run.status == "SUCCESS", run.console
    assert f"build 127.0.0.1:5000/ml/churn:{TAG} FROM the dependencies image" in run.console
    # The username is masked too: withCredentials masks every value it binds.
    assert "as **** (password from MLSTEPS_PACKAGE_REGISTRY_PASSWORD)" in run.console
    assert run.result == {}  # a dry run sets no outputs
    assert leaked(run.console + json.dumps(run.record), {"registry password": PASSWORD}) == []


def test_real_cli_bad_input_fails_the_step_with_exit_code_2(
    run_jenkins: Any, mlsteps_cli: str, tmp_path: Path
) -> None:
    run = run_jenkins(
        "mlPackage",
        {
            "mlsteps": [mlsteps_cli, "--dry-run"],
            "modelUri": str(tiny_model(tmp_path / "model")),
            "registry": "https://registry.example",
        },
        workspace=tmp_path / "ws",
    )
    assert run.status == "FAILURE"
    assert run.error == (
        "mlPackage: mlsteps package exited with code 2 (bad input or configuration);"
        " see its message above"
    )
    assert "--registry" in run.console
    assert "'https://registry.example' is not valid" in run.console


@pytest.mark.parametrize(
    "value", [["libgomp1", "$(touch pwned)"], "libgomp1; touch pwned", "libgomp1\ntouch pwned"]
)
def test_real_cli_refuses_a_system_package_that_is_not_a_debian_name(
    run_jenkins: Any, mlsteps_cli: str, tmp_path: Path, value: Any
) -> None:
    """Each item is one single-quoted word the CLI checks: exit 2 naming the option, and the
    shell ran none of it."""
    run = run_jenkins(
        "mlPackage",
        {
            "mlsteps": [mlsteps_cli, "--dry-run"],
            "modelUri": str(tiny_model(tmp_path / "model")),
            "systemPackage": value,
        },
        workspace=tmp_path / "ws",
    )
    assert run.status == "FAILURE"
    assert run.error == (
        "mlPackage: mlsteps package exited with code 2 (bad input or configuration);"
        " see its message above"
    )
    assert "error: --system-package '" in run.console
    assert "is not valid: expected a Debian package name" in run.console
    assert not list(tmp_path.rglob("pwned"))
