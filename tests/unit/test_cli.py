"""The root command: fast help, exit codes, one JSON document, no traceback (steps/cli.py)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import steps

HEAVY = ("docker", "mlflow", "requests", "boto3", "hvac", "numpy", "sklearn", "yaml")


def mlsteps(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    if env is None:  # the developer's own MLSTEPS_* settings must not steer the tests
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLSTEPS_")}
    return subprocess.run(
        [sys.executable, "-m", "steps", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
    )


def imported_after(args: list[str], cwd: Path) -> set[str]:
    """Modules loaded by running the CLI with these arguments, in a fresh interpreter."""
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['mlsteps', *{args!r}]\n"
        "try:\n    runpy.run_module('steps', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "roots = sorted({m.split('.')[0] for m in sys.modules})\n"
        "print('MODULES=' + ','.join(roots), file=sys.stderr)\n"
    )
    # VAULT_TOKEN so that a secrets dry run gets past its input checks and builds the plan.
    env = {**os.environ, "VAULT_TOKEN": "dry-run-token"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=60, env=env
    )
    assert "Traceback" not in done.stderr, done.stderr
    line = next(x for x in done.stderr.splitlines() if x.startswith("MODULES="))
    return set(line.removeprefix("MODULES=").split(","))


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["train", "--help"],
        ["--dry-run", "train", "--image", "x", "--", "python", "t.py"],
        ["secrets", "--help"],
        ["secrets", "exec", "--help"],
        [
            "--dry-run",
            "secrets",
            "exec",
            "--url",
            "http://127.0.0.1:1",
            "--secrets",
            "secret/ml/db password",
            "--",
            "true",
        ],
        ["--dry-run", "secrets", "revoke"],
        ["promote", "--help"],
        ["--dry-run", "rollback", "--name", "m", "--tracking-uri", "http://h:1"],
        [
            "--dry-run",
            "rollback",
            "--name",
            "m",
            "--tracking-uri",
            "http://h:1",
            "--sagemaker-model-package-group",
            "churn-models",
        ],
    ],
)
def test_help_and_dry_run_import_no_heavy_library(args: list[str], tmp_path: Path) -> None:
    loaded = imported_after(args, tmp_path)
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_version_and_python_dash_m() -> None:
    done = mlsteps("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"mlsteps, version {steps.__version__}"


def test_usage_error_is_exit_2_without_traceback(tmp_path: Path) -> None:
    done = mlsteps("train", "--no-such-flag", cwd=tmp_path)
    assert done.returncode == 2
    assert "No such option '--no-such-flag'" in done.stderr and "Traceback" not in done.stderr


def test_config_error_is_exit_2_one_paragraph_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "mlsteps.yaml").write_text("train:\n  image: x\n  gpu: all\n")
    done = mlsteps("train", cwd=tmp_path)
    assert done.returncode == 2
    assert (
        "mlsteps.yaml:3: unknown key 'gpu' in section 'train'. Did you mean 'gpus'?" in done.stderr
    )
    assert "Traceback" not in done.stdout + done.stderr


def test_json_mode_prints_exactly_one_document_on_failure(tmp_path: Path) -> None:
    done = mlsteps("--json", "train", "--gpus", "lots", "--image", "x", cwd=tmp_path)
    assert done.returncode == 2
    document = json.loads(done.stdout)  # the whole of stdout is one JSON document
    assert document["ok"] is False and document["exit_code"] == 2
    assert "--gpus 'lots' is not valid" in document["error"]


def test_dry_run_flag_after_the_step_and_json_plan(tmp_path: Path) -> None:
    done = mlsteps(
        "train", "--dry-run", "--json", "--image", "img:1", "--", "python", "t.py", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["dry_run"] is True
    assert [a["kind"] for a in document["plan"]] == [
        "containers.sweep",
        "image.ensure",
        "container.run",
    ]
    assert "run `python t.py` in img:1" in done.stderr


def test_config_show_names_every_source_and_redacts(tmp_path: Path) -> None:
    (tmp_path / "mlsteps.yaml").write_text(
        "mlflow:\n  tracking-uri: http://me:pw@127.0.0.1:5000\ntrain:\n  image: x\n"
    )
    env = {"PATH": "/usr/bin:/bin", "MLSTEPS_TRAIN_PULL": "never"}
    done = mlsteps("--json", "config", "show", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["mlflow"]["tracking-uri"] == {
        "value": "http://***@127.0.0.1:5000",
        "source": f"{tmp_path}/mlsteps.yaml:2",
    }
    assert shown["train"]["pull"] == {"value": "never", "source": "env MLSTEPS_TRAIN_PULL"}
    assert shown["train"]["backend"]["source"] == "default"
    assert "pw" not in done.stdout


def test_config_schema_is_json_schema() -> None:
    schema = json.loads(mlsteps("config", "schema").stdout)
    assert schema["properties"]["train"]["additionalProperties"] is False
    assert "gpus" in schema["properties"]["train"]["properties"]


def test_unexpected_error_writes_the_traceback_to_a_file(tmp_path: Path) -> None:
    # A file where a directory is needed makes the Jenkins face's write fail in an
    # unplanned way: the user sees a short message and where the traceback went.
    (tmp_path / "blocker").write_text("")
    env = {"PATH": "/usr/bin:/bin", "MLSTEPS_OUTPUTS_FILE": str(tmp_path / "blocker" / "o.json")}
    done = mlsteps(
        "--ci", "jenkins", "train", "--backend", "local", "--", "true", cwd=tmp_path, env=env
    )
    assert done.returncode == 1
    match = next(x for x in done.stderr.splitlines() if "unexpected error" in x)
    log = Path(match.split("The traceback is in ")[1].split(";")[0])
    assert "Traceback" in log.read_text() and "Traceback" not in done.stdout + done.stderr
    log.unlink()


@pytest.mark.parametrize("verbose", [[], ["-v"]])
@pytest.mark.parametrize("shape", ["plain", "backslash"])
def test_the_traceback_of_an_unexpected_error_is_masked(
    tmp_path: Path, verbose: list[str], shape: str
) -> None:
    # The same unplanned failure, with a secret's value in the failing path: the message, the
    # log file and (with -v) the traceback printed all show *** instead. The error's message
    # holds the path as a repr: a backslash in it shows doubled, and is masked as such.
    value = f"s3cret-{os.getpid()}-value" + ("\\x" if shape == "backslash" else "")
    (tmp_path / f"blocker-{value}").write_text("")
    env = {
        "PATH": "/usr/bin:/bin",
        "S": value,
        "MLSTEPS_OUTPUTS_FILE": str(tmp_path / f"blocker-{value}" / "o.json"),
    }
    done = mlsteps(
        *verbose, "--ci", "jenkins", "train", "--backend", "local", "--secret-env", "S",
        "--", "true", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "blocker-***" in done.stderr and value not in done.stdout + done.stderr
    assert ("Traceback" in done.stderr) == bool(verbose)
    match = next(x for x in done.stderr.splitlines() if "unexpected error" in x)
    log = Path(match.split("The traceback is in ")[1].split(";")[0])
    mode = stat.S_IMODE(log.stat().st_mode)
    text = log.read_text()
    log.unlink()
    assert mode == 0o600  # a traceback is private even masked
    assert "Traceback" in text and "blocker-***" in text and value not in text
    assert repr(value)[1:-1] not in text + done.stderr


def test_promote_dry_run_reads_mlflow_with_requests_only(tmp_path: Path) -> None:
    """A promote dry run reads the version, its gate report and the champion from MLflow
    (requests; here nothing answers, and it says so); the SageMaker sync plans its actions
    without boto3 (nor AWS)."""
    args = [
        "--dry-run", "promote", "--name", "m", "--version", "2", "--tracking-uri",
        "http://127.0.0.1:9", "--gate-report-digest", "sha256:" + "1" * 64,
    ]  # fmt: skip
    for extra in ([], ["--sagemaker-model-package-group", "churn-models"]):
        loaded = imported_after([*args, *extra], tmp_path)
        assert "requests" in loaded  # the check below is not vacuous: the dry run did read
        assert not loaded & (set(HEAVY) - {"requests"}), loaded & set(HEAVY)


def test_package_help_and_dry_run_import_no_heavy_library(tmp_path: Path) -> None:
    """A package dry run reads the model's MLmodel, which is YAML: yaml is the one library it
    needs (and requests, for a model on an MLflow server); never docker, mlflow or boto3."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "MLmodel").write_text(
        "flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n"
        "    python_version: 3.11.2\nmlflow_version: 3.17.2\n"
    )
    (model / "requirements.txt").write_text("mlflow==3.17.2\nscikit-learn==1.9.1\n")
    assert not imported_after(["package", "--help"], tmp_path) & set(HEAVY)
    loaded = imported_after(["--dry-run", "package", "--model-uri", "model"], tmp_path)
    assert "yaml" in loaded  # the check below is not vacuous: the dry run did read MLmodel
    assert not loaded & (set(HEAVY) - {"yaml"}), loaded & set(HEAVY)
