"""vars/mlTrain.groovy under the Groovy harness: the command it builds, how the shell passes
each value, the outputs it returns and how it fails.

The command is run for real by the harness's `sh`; here the executable it names is a probe that
records the argv and environment the shell handed it (tests/faces/test_jenkins_e2e.py drives
the real mlsteps).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

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
    "run-id": "0123abcd",
    "experiment-id": "7",
    "model-uri": "models:/m-1",
    "metrics": '{"accuracy": 0.9}',
    "image-digest": "sha256:" + "a" * 64,
    "exit-code": "0",
}


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
        "mlTrain",
        {
            "mlsteps": "true",  # the command is checked as text; `true` just exits 0
            "config": "conf dir/mlsteps.yaml",
            "image": "registry.local/trainer:1.2",
            "command": ["python", "train.py", "--note", AWKWARD],
            "backend": "docker",
            "workdir": "/work dir",
            "env": ["A=1", "MSG=it's here"],
            "secretEnv": ["HF_TOKEN", "DB_PASSWORD"],
            "secretsAsEnv": True,
            "mount": ["/data sets:/data:ro"],
            "dataDir": "data",
            "outputDir": "out",
            "gpus": "0,2",
            "shmSize": "1g",
            "memory": "4g",
            "cpus": 1.5,
            "user": "1000:1000",
            "network": "host",
            "timeout": "30m",
            "pull": "never",
            "label": {"team": "ml ops", "quote": "a'b"},
            "platform": "linux/amd64",
            "runId": "abc",
            "runName": "run; rm -rf /",
        },
    )
    assert run.status == "SUCCESS", run.console
    assert run.sh["args"]["returnStatus"] is True
    assert run.sh["args"]["script"] == (
        "'true' '--ci' 'jenkins' '--config' 'conf dir/mlsteps.yaml' 'train'"
        " '--image' 'registry.local/trainer:1.2' '--backend' 'docker' '--workdir' '/work dir'"
        " '--env' 'A=1' '--env' 'MSG=it'\\''s here'"
        " '--secret-env' 'HF_TOKEN' '--secret-env' 'DB_PASSWORD' '--secrets-as-env' 'true'"
        " '--mount' '/data sets:/data:ro' '--data-dir' 'data' '--output-dir' 'out'"
        " '--gpus' '0,2' '--shm-size' '1g' '--memory' '4g' '--cpus' '1.5'"
        " '--user' '1000:1000' '--network' 'host' '--timeout' '30m' '--pull' 'never'"
        " '--label' 'team=ml ops' '--label' 'quote=a'\\''b' '--platform' 'linux/amd64'"
        " '--run-id' 'abc' '--run-name' 'run; rm -rf /'"
        " '--' 'python' 'train.py' '--note'"
        " 'it'\\''s \"quoted\" $HOME `id` \\ ; | & *'"
    )


def test_the_shell_hands_every_value_over_unchanged(
    run_jenkins: Any, probe: list[str], tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    multi_line = "line one\nline 'two'\n"
    run = run_jenkins(
        "mlTrain",
        {
            "mlsteps": probe,
            "image": "img:1",
            "command": ["python", "-c", "print('hi')", AWKWARD, multi_line, "--"],
            "env": {"MSG": AWKWARD, "EMPTY": ""},
            "runName": "ünïcødé ☃",
        },
        workspace=workspace,
    )
    assert run.status == "SUCCESS", run.console
    assert probed(workspace)["argv"] == [
        "--ci",
        "jenkins",
        "train",
        "--image",
        "img:1",
        "--env",
        f"MSG={AWKWARD}",
        "--env",
        "EMPTY=",
        "--run-name",
        "ünïcødé ☃",
        "--",
        "python",
        "-c",
        "print('hi')",
        AWKWARD,
        multi_line,
        "--",
    ]


def test_default_executable_is_mlsteps_on_path(
    run_jenkins: Any, tmp_path: Path, probe: list[str]
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "mlsteps"
    wrapper.write_text(f"#!/bin/sh\nexec '{probe[0]}' '{probe[1]}' \"$@\"\n")
    wrapper.chmod(0o755)
    workspace = tmp_path / "ws"
    run = run_jenkins(
        "mlTrain",
        {"image": "img:1"},
        workspace=workspace,
        extra_env={"PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )
    assert run.status == "SUCCESS", run.console
    assert run.sh["args"]["script"] == "'mlsteps' '--ci' 'jenkins' 'train' '--image' 'img:1'"
    assert probed(workspace)["argv"] == ["--ci", "jenkins", "train", "--image", "img:1"]


def test_tracking_experiment_and_a_string_command_travel_as_environment(
    run_jenkins: Any, probe: list[str], tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    run = run_jenkins(
        "mlTrain",
        {
            "mlsteps": probe,
            "image": "img:1",
            "command": "python train.py --note 'two words'",
            "trackingUri": "http://127.0.0.1:5000",
            "experiment": "it's an experiment",
        },
        workspace=workspace,
    )
    assert run.status == "SUCCESS", run.console
    seen = probed(workspace)
    assert seen["argv"] == ["--ci", "jenkins", "train", "--image", "img:1"]
    assert seen["env"]["MLSTEPS_TRAIN_COMMAND"] == "python train.py --note 'two words'"
    assert seen["env"]["MLSTEPS_MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"
    assert seen["env"]["MLSTEPS_MLFLOW_EXPERIMENT"] == "it's an experiment"
    # One outputs file per call, under the workspace, named after the build.
    assert re.fullmatch(
        r"\.mlsteps/outputs/train-jenkins-faces-test-1-[0-9a-f]{8}\.json",
        seen["env"]["MLSTEPS_OUTPUTS_FILE"],
    )
    assert re.fullmatch(
        r"\.mlsteps/summary/train-jenkins-faces-test-1-[0-9a-f]{8}\.md",
        seen["env"]["MLSTEPS_SUMMARY_FILE"],
    )


def test_empty_values_are_not_passed(run_jenkins: Any) -> None:
    run = run_jenkins(
        "mlTrain",
        {"mlsteps": "true", "image": "img:1", "gpus": "", "env": [], "label": {}, "memory": None},
    )
    assert run.status == "SUCCESS", run.console
    assert run.sh["args"]["script"] == "'true' '--ci' 'jenkins' 'train' '--image' 'img:1'"


def test_returns_the_outputs_and_archives_the_summary(
    run_jenkins: Any, probe: list[str], tmp_path: Path
) -> None:
    run = run_jenkins(
        "mlTrain",
        {"mlsteps": probe, "image": "img:1"},
        workspace=tmp_path / "ws",
        env={"PROBE_OUTPUTS": json.dumps(OUTPUTS), "PROBE_SUMMARY": "## train\n"},
    )
    assert run.status == "SUCCESS", run.console
    assert run.result == OUTPUTS
    (read,) = run.calls("readJSON")
    outputs_file = read["args"]["file"]
    assert outputs_file.startswith(".mlsteps/outputs/train-")
    (archived,) = run.calls("archiveArtifacts")
    assert re.fullmatch(r"\.mlsteps/summary/train-.*\.md", archived["args"]["artifacts"])
    assert (tmp_path / "ws" / archived["args"]["artifacts"]).read_text() == "## train\n"


def test_unknown_key_fails_naming_the_known_keys(run_jenkins: Any) -> None:
    run = run_jenkins("mlTrain", {"image": "img:1", "imgae": "typo"})
    assert run.status == "FAILURE"
    assert run.returncode == 1
    assert run.error == (
        "mlTrain: unknown key 'imgae'; known keys: image, command, backend, workdir, env, "
        "secretEnv, secretsAsEnv, mount, dataDir, outputDir, gpus, shmSize, memory, cpus, user, "
        "network, timeout, pull, label, platform, runId, runName, trackingUri, experiment, "
        "config, mlsteps"
    )
    assert run.calls("sh") == []


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("image", ["a", "b"], "mlTrain: key 'image' must be a String or a number, not ArrayList"),
        (
            "env",
            5,
            "mlTrain: key 'env' must be a List of 'KEY=VALUE' strings or a Map, not Integer",
        ),
        (
            "mount",
            {"a": "b"},
            "mlTrain: key 'mount' must be a List of strings or one String, not LinkedHashMap",
        ),
        ("secretsAsEnv", "yes", "mlTrain: key 'secretsAsEnv' must be true or false, not 'yes'"),
    ],
)
def test_a_value_of_the_wrong_type_fails(
    run_jenkins: Any, key: str, value: Any, expected: str
) -> None:
    run = run_jenkins("mlTrain", {"image": "img:1", key: value})
    assert run.status == "FAILURE"
    assert run.error == expected
    assert run.calls("sh") == []


def test_nonzero_exit_reads_the_outputs_then_fails_with_the_code(
    run_jenkins: Any, probe: list[str], tmp_path: Path
) -> None:
    failed = {**OUTPUTS, "exit-code": "3", "model-uri": ""}
    run = run_jenkins(
        "mlTrain",
        {"mlsteps": probe, "image": "img:1"},
        workspace=tmp_path / "ws",
        env={"PROBE_EXIT": "1", "PROBE_OUTPUTS": json.dumps(failed), "PROBE_SUMMARY": "failed"},
    )
    assert run.status == "FAILURE"
    assert run.error == (
        "mlTrain: mlsteps train exited with code 1 (the step failed); see its message above"
        " [training command exit code 3, MLflow run 0123abcd]"
    )
    assert len(run.calls("readJSON")) == 1
    assert len(run.calls("archiveArtifacts")) == 1
    assert run.sh["status"] == 1


def test_nonzero_exit_without_outputs_still_fails(run_jenkins: Any) -> None:
    run = run_jenkins("mlTrain", {"mlsteps": "false", "image": "img:1"})
    assert run.status == "FAILURE"
    assert run.error == (
        "mlTrain: mlsteps train exited with code 1 (the step failed); see its message above"
    )
    assert run.calls("readJSON") == []
