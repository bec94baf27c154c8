"""`mlsteps train` against a real Docker Engine and a real MLflow server."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from tests.services import describe, no_labelled_containers

pytestmark = pytest.mark.services


# pids of the mlsteps processes these tests started: other suites may share the engine, so
# "nothing left behind" is checked for the containers these processes own.
STARTED: set[str] = {str(os.getpid())}


def start(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "steps", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
    STARTED.add(str(proc.pid))
    return proc


def mlsteps(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    proc = start(*args, cwd=cwd, env=env)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run_info(uri: str, run_id: str) -> dict[str, Any]:
    response = requests.get(f"{uri}/api/2.0/mlflow/runs/get", params={"run_id": run_id}, timeout=10)
    response.raise_for_status()
    run: dict[str, Any] = response.json()["run"]
    return run


def tags_of(run: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def count_runs(uri: str) -> int:
    experiments = requests.post(
        f"{uri}/api/2.0/mlflow/experiments/search", json={"max_results": 1000}, timeout=10
    ).json()["experiments"]
    ids = [e["experiment_id"] for e in experiments]
    found = requests.post(
        f"{uri}/api/2.0/mlflow/runs/search",
        json={"experiment_ids": ids, "max_results": 1000},
        timeout=10,
    ).json()
    return len(found.get("runs", []))


def step_containers(docker_client: Any) -> list[Any]:
    """Containers that mlsteps processes of these tests created, in any state."""
    found = no_labelled_containers(docker_client, "io.mlsteps.invocation", prefix=None)
    return [
        c for c in found if (c.attrs.get("Labels") or {}).get("io.mlsteps.owner-pid") in STARTED
    ]


def assert_nothing_left(docker_client: Any) -> None:
    left = step_containers(docker_client)
    assert left == [], describe(left)


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def test_quickstart_trains_in_a_container_and_lands_in_mlflow(
    docker_client: Any, trainer_image: str, mlflow_server: Any, workdir: Path
) -> None:
    data = workdir / "data"
    data.mkdir()
    (data / "notes.txt").write_text("the data dir is mounted read-only and digested\n")
    done = mlsteps(
        "--json", "train", "--image", trainer_image, "--tracking-uri", mlflow_server.uri,
        "--experiment", "it-quickstart", "--data-dir", str(data), "--memory", "2g",
        "--", "python", "/app/train.py", "--n-estimators", "10",
        cwd=workdir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    outputs = result["outputs"]
    assert result["applied"] == [
        "containers.sweep",
        "image.ensure",
        "mlflow.start-run",
        "container.run",
        "mlflow.end-run",
    ]
    assert outputs["exit-code"] == "0"
    assert outputs["model-uri"].startswith("models:/")
    metrics = json.loads(outputs["metrics"])
    assert 0.8 < metrics["accuracy"] <= 1.0
    run = run_info(mlflow_server.uri, outputs["run-id"])
    assert run["info"]["status"] == "FINISHED"
    assert run["info"]["experiment_id"] == outputs["experiment-id"]
    tags = tags_of(run)
    assert tags["mlsteps.image"] == trainer_image
    assert (
        tags["mlsteps.image-digest"]
        == outputs["image-digest"]
        == docker_client.images.get(trainer_image).id
    )
    assert tags["mlsteps.gpus"] == "none"
    assert tags["mlsteps.data-digest"].startswith("sha256:")
    assert {m["key"] for m in run["data"]["metrics"]} >= {"accuracy", "f1"}
    # the live log reached the terminal line by line
    assert "accuracy=" in done.stderr
    assert_nothing_left(docker_client)


def test_failing_training_exits_1_marks_the_run_failed_and_shows_the_tail(
    docker_client: Any, base_image: str, mlflow_server: Any, workdir: Path
) -> None:
    done = mlsteps(
        "--json", "train", "--image", base_image, "--tracking-uri", mlflow_server.uri,
        "--", "sh", "-c", "echo preparing; echo 'loss exploded' >&2; exit 3",
        cwd=workdir,
    )  # fmt: skip
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert "training exited with code 3" in result["error"]
    assert "| loss exploded" in result["error"] and "| preparing" in result["error"]
    assert result["outputs"]["exit-code"] == "3"
    assert run_info(mlflow_server.uri, result["outputs"]["run-id"])["info"]["status"] == "FAILED"
    assert "Traceback" not in done.stderr
    assert_nothing_left(docker_client)


def test_out_of_memory_is_named_with_the_limit(
    docker_client: Any, trainer_image: str, mlflow_server: Any, workdir: Path
) -> None:
    done = mlsteps(
        "train", "--image", trainer_image, "--memory", "64m", "--tracking-uri", mlflow_server.uri,
        "--", "python", "-c", "x = bytearray(500 * 1024 * 1024); print(len(x))",
        cwd=workdir,
    )  # fmt: skip
    assert done.returncode == 1
    assert "training ran out of memory" in done.stderr
    assert "memory limit of 64 MiB (--memory)" in done.stderr
    assert_nothing_left(docker_client)


def test_sigterm_stops_the_container_and_marks_the_run_killed(
    docker_client: Any, base_image: str, mlflow_server: Any, workdir: Path
) -> None:
    proc = start(
        "--json", "train", "--image", base_image, "--tracking-uri", mlflow_server.uri,
        "--", "sh", "-c", "echo started; sleep 300",
        cwd=workdir,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not step_containers(docker_client):
        assert time.monotonic() < deadline, "the training container never started"
        time.sleep(0.1)
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    result = json.loads(out)
    assert result["error"] == "cancelled by SIGTERM"
    assert run_info(mlflow_server.uri, result["outputs"]["run-id"])["info"]["status"] == "KILLED"
    assert_nothing_left(docker_client)


def startup_seconds(cwd: Path) -> float:
    """How long this machine takes to bring mlsteps up to the point where it handles signals
    (the import path `--version` shares with every step), median of three."""
    times = []
    for _ in range(3):
        started = time.monotonic()
        mlsteps("--version", cwd=cwd)
        times.append(time.monotonic() - started)
    return sorted(times)[1]


@pytest.mark.slow
def test_github_cancel_schedule_at_20_random_moments_leaves_no_container(
    docker_client: Any, base_image: str, registry: str, workdir: Path
) -> None:
    """GitHub cancels with SIGINT, then SIGTERM 7.5 s later (then SIGKILL 2.5 s after).
    The 20 moments fall between the image pull (from a real registry, --pull always) and log
    streaming; they are seeded, so a failure is reproducible. Before mlsteps is up, a signal
    meets CPython's own startup, where nothing can have been created, so the window starts
    after the measured startup time. The run has a secret, so its files on tmpfs must go too."""
    from tests.integration.test_train_secrets import secret_dirs_of

    ref = f"{registry}/mlsteps-base:cancel"
    docker_client.images.get(base_image).tag(ref)
    docker_client.images.push(f"{registry}/mlsteps-base", tag="cancel")
    offset = startup_seconds(workdir)
    moments = random.Random(20261123).sample([offset + i / 100 for i in range(0, 200)], 20)
    reached_logs = 0
    try:
        for moment in moments:
            proc = start(
                "train", "--image", ref, "--pull", "always", "--secret-env", "CANCEL_SECRET",
                "--", "sh", "-c", "echo started; sleep 300",
                cwd=workdir, env={"CANCEL_SECRET": "cancel-secret-value"},
            )  # fmt: skip
            time.sleep(moment)
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=7.5)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=2.5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    pytest.fail(
                        f"cleanup outlasted GitHub's grace period (SIGINT at {moment:.2f}s)"
                    )
            out, err = proc.communicate()
            reached_logs += "started" in out
            assert proc.returncode in (130, 143), (moment, proc.returncode, err[-500:])
            left = step_containers(docker_client)
            assert left == [], (moment, describe(left))
            assert secret_dirs_of(proc.pid) == [], moment
    finally:
        docker_client.images.remove(ref, force=True)
    # The window is meaningful: some cancels hit a streaming container, some came earlier.
    assert 0 < reached_logs < len(moments), reached_logs


def test_gpu_request_the_engine_cannot_serve(
    docker_client: Any, base_image: str, workdir: Path
) -> None:
    done = mlsteps("train", "--image", base_image, "--gpus", "all", "--", "true", cwd=workdir)
    assert done.returncode == 1
    assert "NVIDIA Container Toolkit" in done.stderr and "--gpus none" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert_nothing_left(docker_client)


def test_gpu_device_request_as_the_engine_records_it(docker_client: Any, base_image: str) -> None:
    """The DeviceRequest on the created container, read back through the engine's inspect
    before the failed start removes it."""
    from steps.core.errors import StepFailed
    from steps.services import containers
    from steps.train.options import parse_gpus

    owner = containers.Owner("train")
    seen: dict[str, Any] = {}
    spec = containers.ContainerSpec(
        image=base_image,
        command=["true"],
        environment={},
        labels=owner.labels(),
        volumes={},
        device_requests=parse_gpus("0,2").device_requests(),
    )

    def inspect(container_id: str) -> None:
        seen.update(docker_client.api.inspect_container(container_id)["HostConfig"])

    with pytest.raises(StepFailed, match="NVIDIA Container Toolkit"):
        containers.run_container(
            docker_client, spec, owner.invocation, timeout=None, on_line=print, on_created=inspect
        )
    assert seen["DeviceRequests"] == [
        {
            "Driver": "",
            "Count": 0,
            "DeviceIDs": ["0", "2"],
            "Capabilities": [["gpu"]],
            "Options": {},
        }
    ]
    assert_nothing_left(docker_client)


def test_timeout_stops_the_training(docker_client: Any, base_image: str, workdir: Path) -> None:
    started = time.monotonic()
    done = mlsteps(
        "train", "--image", base_image, "--timeout", "2s", "--", "sleep", "300", cwd=workdir
    )
    assert done.returncode == 1
    assert "training timed out after 2s (--timeout)" in done.stderr
    assert time.monotonic() - started < 30
    assert_nothing_left(docker_client)


def test_dry_run_creates_nothing(
    docker_client: Any, trainer_image: str, mlflow_server: Any, workdir: Path
) -> None:
    runs_before = count_runs(mlflow_server.uri)
    containers_before = len(docker_client.containers.list(all=True))
    env = {"HF_TOKEN": "hf_dry_run_secret_value_123"}
    done = mlsteps(
        "--dry-run", "--json", "train", "--image", trainer_image,
        "--tracking-uri", mlflow_server.uri, "--gpus", "all", "--mount", f"{workdir}:/work:ro",
        "--env", "EPOCHS=2", "--secret-env", "HF_TOKEN",
        "--", "python", "/app/train.py",
        cwd=workdir, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)["plan"]
    run = next(a for a in plan if a["kind"] == "container.run")
    assert run["image"] == trainer_image and run["command"] == ["python", "/app/train.py"]
    assert run["mounts"] == [f"{workdir}:/work:ro"]
    assert run["device_requests"] == [{"Driver": "", "Capabilities": [["gpu"]], "Count": -1}]
    assert run["env_names"] == ["EPOCHS"] and run["secret_env_names"] == ["HF_TOKEN"]
    assert "hf_dry_run_secret_value_123" not in done.stdout + done.stderr
    assert count_runs(mlflow_server.uri) == runs_before
    assert len(docker_client.containers.list(all=True)) == containers_before


def test_dry_run_lists_what_a_run_then_does(
    docker_client: Any, base_image: str, mlflow_server: Any, workdir: Path
) -> None:
    """Fidelity against what really happens, not against the plan's own list: each planned
    container.run is one container the engine creates, each mlflow.start-run one new run."""
    args = ["train", "--image", base_image, "--tracking-uri", mlflow_server.uri, "--", "true"]
    planned = [
        a["kind"]
        for a in json.loads(mlsteps("--dry-run", "--json", *args, cwd=workdir).stdout)["plan"]
    ]
    runs_before = count_runs(mlflow_server.uri)
    since = int(time.time()) - 1
    proc = start("--json", *args, cwd=workdir)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    until = int(time.time()) + 1
    events = docker_client.events(
        since=since,
        until=until,
        decode=True,
        filters={"type": "container", "label": "io.mlsteps.step=train"},
    )
    # this run's containers only: the time window can reach into the previous test
    mine = [
        e for e in events if e["Actor"]["Attributes"].get("io.mlsteps.owner-pid") == str(proc.pid)
    ]
    created = sum(e["Action"] == "create" for e in mine)
    destroyed = sum(e["Action"] == "destroy" for e in mine)
    assert planned.count("container.run") == created == destroyed == 1
    assert planned.count("mlflow.start-run") == count_runs(mlflow_server.uri) - runs_before == 1
    assert json.loads(out)["applied"] == planned


def test_cancel_while_mlflow_stalls_still_ends_at_once(
    docker_client: Any, base_image: str, tmp_path_factory: pytest.TempPathFactory, workdir: Path
) -> None:
    """A cancelled CI job is killed seconds after its signal: closing the MLflow run must not
    hold the exit (nor turn 143 into 1) when the server does not answer."""
    from tests.services import start_mlflow

    server = start_mlflow(tmp_path_factory.mktemp("stalling-mlflow"))
    try:
        proc = start(
            "train", "--image", base_image, "--tracking-uri", server.uri,
            "--", "sh", "-c", "echo started; sleep 300",
            cwd=workdir,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not step_containers(docker_client):
            assert time.monotonic() < deadline, "the training container never started"
            time.sleep(0.1)
        os.killpg(os.getpgid(server.server.process.pid), signal.SIGSTOP)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 143, err
        assert time.monotonic() - started < 9, "cleanup outlasted the CI systems' grace"
        assert "is left RUNNING" in err
    finally:
        os.killpg(os.getpgid(server.server.process.pid), signal.SIGCONT)
        server.server.stop()
    assert_nothing_left(docker_client)


def test_engine_refusals_are_bad_input(docker_client: Any, base_image: str, workdir: Path) -> None:
    bad_ref = mlsteps("train", "--image", "Bad Image", "--", "true", cwd=workdir)
    assert bad_ref.returncode == 2
    assert "--image Bad Image: the engine refuses this image reference" in bad_ref.stderr
    # Within the option's range (up to 4096) but more CPUs than this engine has.
    many = mlsteps("train", "--image", base_image, "--cpus", "4000", "--", "true", cwd=workdir)
    assert many.returncode == 2
    assert "the Docker engine refused the container settings" in many.stderr
    assert "Range of CPUs is from 0.01" in many.stderr
    # Below Docker's minimum memory: refused before the engine is asked.
    tiny = mlsteps("train", "--image", base_image, "--memory", "1k", "--", "true", cwd=workdir)
    assert tiny.returncode == 2
    assert "--memory 1 KiB: Docker needs a memory limit of at least 6m" in tiny.stderr
    for done in (bad_ref, many, tiny):
        assert "Traceback" not in done.stderr and "unexpected error" not in done.stderr
    assert_nothing_left(docker_client)


def test_local_command_that_is_not_executable(workdir: Path) -> None:
    script = workdir / "train.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    done = mlsteps("train", "--backend", "local", "--", "./train.sh", cwd=workdir)
    assert done.returncode == 2
    assert "command './train.sh' is not executable" in done.stderr


def test_bad_inputs_exit_with_a_clear_message(
    docker_client: Any, base_image: str, workdir: Path
) -> None:
    (workdir / "mlsteps.yaml").write_text("train:\n  image: x\n  gpu: all\n")
    unknown = mlsteps("train", cwd=workdir)
    assert unknown.returncode == 2 and "Did you mean 'gpus'?" in unknown.stderr
    (workdir / "mlsteps.yaml").unlink()

    bad_gpus = mlsteps("train", "--image", base_image, "--gpus", "lots", cwd=workdir)
    assert bad_gpus.returncode == 2 and "--gpus 'lots' is not valid" in bad_gpus.stderr

    missing = mlsteps("train", "--image", "mlsteps-no-such-image:1", "--pull", "never", cwd=workdir)
    assert missing.returncode == 2
    assert "--image mlsteps-no-such-image:1: not on this Docker engine" in missing.stderr

    no_mlflow = mlsteps(
        "train",
        "--image",
        base_image,
        "--tracking-uri",
        "http://127.0.0.1:9",
        "--",
        "true",
        cwd=workdir,
    )
    assert no_mlflow.returncode == 1
    assert "cannot reach the MLflow tracking server at http://127.0.0.1:9" in no_mlflow.stderr

    no_docker = mlsteps(
        "train",
        "--image",
        base_image,
        cwd=workdir,
        env={"DOCKER_HOST": f"unix://{workdir}/none.sock"},
    )
    assert no_docker.returncode == 1
    assert f"cannot reach the Docker daemon at unix://{workdir}/none.sock" in no_docker.stderr
    for done in (unknown, bad_gpus, missing, no_mlflow, no_docker):
        assert "Traceback" not in done.stdout + done.stderr
    assert_nothing_left(docker_client)


def test_sweep_removes_containers_of_dead_runs(
    docker_client: Any, base_image: str, workdir: Path
) -> None:
    from steps.services import containers

    dead = subprocess.Popen(["true"])
    dead.wait()
    labels = containers.Owner("train", pid=dead.pid).labels()
    labels["io.mlsteps.owner-start"] = "1"  # the pid is gone (or reused): either way not its owner
    STARTED.add(str(dead.pid))
    orphan = docker_client.containers.create(base_image, ["sleep", "300"], labels=labels)
    orphan.start()
    done = mlsteps("train", "--image", base_image, "--", "true", cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert f"left by mlsteps runs that died: {orphan.name}" in done.stdout
    assert_nothing_left(docker_client)


def test_pull_always_from_a_registry_reports_the_repo_digest(
    docker_client: Any, base_image: str, registry: str, workdir: Path
) -> None:
    ref = f"{registry}/mlsteps-base:it"
    docker_client.images.get(base_image).tag(ref)
    pushed = docker_client.images.push(f"{registry}/mlsteps-base", tag="it")
    assert '"error"' not in pushed
    docker_client.images.remove(ref)
    try:
        done = mlsteps(
            "--json", "train", "--image", ref, "--pull", "always", "--", "true", cwd=workdir
        )
    finally:
        if any(ref in image.tags for image in docker_client.images.list()):
            docker_client.images.remove(ref, force=True)
    assert done.returncode == 0, done.stdout + done.stderr
    digest = json.loads(done.stdout)["outputs"]["image-digest"]
    manifest = requests.head(
        f"http://{registry}/v2/mlsteps-base/manifests/it",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        timeout=10,
    )
    assert digest == manifest.headers["Docker-Content-Digest"]
    # pinned by digest, as delivery pipelines do
    pinned = f"{registry}/mlsteps-base@{digest}"
    try:
        by_digest = mlsteps(
            "--json", "train", "--image", pinned, "--pull", "always", "--", "true", cwd=workdir
        )
    finally:
        # Untag by reference: the id is the base image's own, which must stay.
        for reference in (pinned, ref):
            with contextlib.suppress(docker.errors.ImageNotFound):
                docker_client.images.remove(reference)
    assert by_digest.returncode == 0, by_digest.stderr
    assert json.loads(by_digest.stdout)["outputs"]["image-digest"] == digest
    assert_nothing_left(docker_client)


def test_local_backend_trains_the_quickstart_as_a_process(
    mlflow_server: Any, workdir: Path
) -> None:
    pytest.importorskip("sklearn")
    train_py = Path(__file__).parents[2] / "examples" / "quickstart" / "train.py"
    done = mlsteps(
        "--json", "train", "--backend", "local", "--tracking-uri", mlflow_server.uri,
        "--", sys.executable, str(train_py), "--n-estimators", "5",
        cwd=workdir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    outputs = json.loads(done.stdout)["outputs"]
    assert outputs["model-uri"].startswith("models:/")
    assert run_info(mlflow_server.uri, outputs["run-id"])["info"]["status"] == "FINISHED"


def test_local_backend_with_a_sqlite_store_uses_the_mlflow_client(workdir: Path) -> None:
    mlflow = pytest.importorskip("mlflow")
    store = f"sqlite:///{workdir}/mlflow.db"
    script = "import mlflow; mlflow.log_metric('loss', 0.25)"  # resumes MLFLOW_RUN_ID
    done = mlsteps(
        "--json", "train", "--backend", "local", "--tracking-uri", store, "--experiment", "db",
        "--", sys.executable, "-c", script,
        cwd=workdir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    outputs = json.loads(done.stdout)["outputs"]
    assert json.loads(outputs["metrics"]) == {"loss": 0.25}
    run = mlflow.tracking.MlflowClient(store).get_run(outputs["run-id"])
    assert run.info.status == "FINISHED" and run.data.tags["mlsteps.backend"] == "local"


def test_a_store_mlflow_refuses_is_a_step_failure_not_a_crash(workdir: Path) -> None:
    pytest.importorskip("mlflow")
    # MLflow 3 refuses new writes to the deprecated file store unless told otherwise.
    env = {"MLFLOW_ALLOW_FILE_STORE": "false"}
    done = mlsteps(
        "train", "--backend", "local", "--tracking-uri", f"file://{workdir}/mlruns",
        "--", sys.executable, "-c", "pass",
        cwd=workdir, env=env,
    )  # fmt: skip
    assert done.returncode == 1
    assert f"MLflow at file://{workdir}/mlruns refused opening the tracking store" in done.stderr
    assert "unexpected error" not in done.stderr and "Traceback" not in done.stderr


def test_run_id_continues_an_existing_run(
    docker_client: Any, base_image: str, mlflow_server: Any, workdir: Path
) -> None:
    experiment = requests.post(
        f"{mlflow_server.uri}/api/2.0/mlflow/experiments/create",
        json={"name": "continued"},
        timeout=10,
    ).json()["experiment_id"]
    created = requests.post(
        f"{mlflow_server.uri}/api/2.0/mlflow/runs/create",
        json={"experiment_id": experiment, "run_name": "made-elsewhere"},
        timeout=10,
    ).json()["run"]["info"]["run_id"]
    done = mlsteps(
        "--json", "train", "--image", base_image, "--tracking-uri", mlflow_server.uri,
        "--run-id", created, "--", "true",
        cwd=workdir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    outputs = json.loads(done.stdout)["outputs"]
    assert outputs["run-id"] == created and outputs["experiment-id"] == experiment
    run = run_info(mlflow_server.uri, created)
    assert run["info"]["status"] == "FINISHED" and tags_of(run)["mlsteps.image"] == base_image

    unknown = mlsteps(
        "train", "--image", base_image, "--tracking-uri", mlflow_server.uri,
        "--run-id", "0123456789abcdef0123456789abcdef", "--", "true",
        cwd=workdir,
    )  # fmt: skip
    assert unknown.returncode == 2
    assert "--run-id 0123456789abcdef0123456789abcdef: no such run" in unknown.stderr
    assert_nothing_left(docker_client)
