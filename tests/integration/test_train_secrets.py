"""How `train --secret-env` values reach the training, against the real Docker Engine: as files
on tmpfs by default (never in `docker inspect`, argv, the container's layer or the environment),
as environment variables only with --secrets-as-env, and nothing left in /dev/shm afterwards."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_train import (
    assert_nothing_left,
    mlsteps,
    run_info,
    start,
    step_containers,
)

pytestmark = pytest.mark.services

# Multi-line, JSON, both quotes, backquotes, %, $, backslashes, unicode beyond the BMP, and no
# final newline; the token makes each run's value its own.
TOKEN = f"tok-{os.urandom(6).hex()}"
VALUE = (
    f"{TOKEN} first line\n"
    '{"json": "va\\"lue", "n": [1, 2]}\n'
    "quotes ' \" `id` %s %d 100% $HOME ${PATH} \\back\\slash \\n\n"
    "ünïcødé ☃ 𝄞 end  "
)
DIGEST = hashlib.sha256(VALUE.encode()).hexdigest()
SECRET_ENV = {"S": VALUE}


def forms(value: str) -> list[str]:
    """The value and the shapes a leak may take: JSON-escaped (with and without \\u escapes),
    base64, and each longer line on its own."""
    raw = value.encode()
    return [
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        *[line for line in value.splitlines() if len(line.strip()) >= 8],
        TOKEN,
    ]


def leaks(text: str, value: str = VALUE) -> list[str]:
    return [form for form in forms(value) if form in text]


class Watch:
    """While the step runs: `docker inspect` and `docker diff` of its container (as anyone with
    Docker access would run them), and every process's argv and environment on this host."""

    def __init__(self, docker_client: Any, proc: subprocess.Popen[str]) -> None:
        self.docker = docker_client
        self.proc = proc
        self.inspect = ""
        self.diff = ""
        self.cmdlines: set[bytes] = set()
        self.environs: dict[int, bytes] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set() and self.proc.poll() is None:
            self._sample_processes()
            if not self.inspect:
                mine = [
                    c
                    for c in step_containers(self.docker)
                    if c.attrs["Labels"].get("io.mlsteps.owner-pid") == str(self.proc.pid)
                    and c.attrs.get("State") == "running"
                ]
                if mine:
                    cid = mine[0].id
                    inspect = self._docker("inspect", cid)
                    if '"Running": true' in inspect:
                        self.inspect = inspect
                        self.diff = self._docker("diff", cid)
            time.sleep(0.05)

    def _docker(self, *args: str) -> str:
        return subprocess.run(["docker", *args], capture_output=True, text=True).stdout

    def _sample_processes(self) -> None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                self.cmdlines.add((entry / "cmdline").read_bytes())
            # mlsteps itself was given the value in its environment, as CI gives it.
            if int(entry.name) != self.proc.pid:
                with contextlib.suppress(OSError):
                    self.environs[int(entry.name)] = (entry / "environ").read_bytes()

    def container(self) -> dict[str, Any]:
        assert self.inspect, "the training container was never seen running"
        (attrs,) = json.loads(self.inspect)
        result: dict[str, Any] = attrs
        return result

    def secrets_source(self) -> Path:
        (mount,) = [m for m in self.container()["Mounts"] if m["Destination"] == "/run/secrets"]
        return Path(mount["Source"])


def watched(
    docker_client: Any, *args: str, cwd: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], Watch]:
    proc = start(*args, cwd=cwd, env=env or SECRET_ENV)
    with Watch(docker_client, proc) as watch:
        out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), watch


def secret_dirs_of(pid: int) -> list[Path]:
    """Secret directories under /dev/shm written by the mlsteps process ``pid``."""
    found = []
    for root in Path("/dev/shm").glob("mlsteps-secrets-*"):
        with contextlib.suppress(OSError, ValueError):
            owner = json.loads((root / "owner.json").read_text())
            if owner.get("io.mlsteps.owner-pid") == str(pid):
                found.append(root)
    return found


def assert_gone(source: Path, pid: int) -> None:
    assert source.parent.name.startswith("mlsteps-secrets-"), source
    assert not source.parent.exists(), f"{source.parent} left behind"
    assert secret_dirs_of(pid) == []


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    return tmp_path


# Prints what a training may show: the digest of the file, its mode, and whether the value is
# also in the environment. It sleeps so that the watch sees the container running.
READ_FILE = (
    'sha256sum "$S_FILE" | cut -d" " -f1; stat -c "%a %n" "$S_FILE"; '
    'echo "S is ${S+set}${S-unset}"; id -u; sleep 3'
)


def test_secret_reaches_the_container_as_a_file_and_nowhere_else(
    docker_client: Any, base_image: str, mlflow_server: Any, workdir: Path
) -> None:
    args = [
        "--json", "train", "--image", base_image, "--tracking-uri", mlflow_server.uri,
        "--secret-env", "S", "--user", "1234:1234", "--", "sh", "-c", READ_FILE,
    ]  # fmt: skip
    planned = [
        a["kind"]
        for a in json.loads(mlsteps("--dry-run", *args, cwd=workdir, env=SECRET_ENV).stdout)["plan"]
    ]
    done, watch = watched(docker_client, *args, cwd=workdir)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    # byte for byte, readable by a non-root uid, and not in the container's environment
    assert f"{DIGEST}\n444 /run/secrets/S\nS is unset\n1234\n" in done.stderr
    assert result["applied"] == planned
    assert planned.index("secrets.write") == planned.index("container.run") - 1

    container = watch.container()
    assert "S_FILE=/run/secrets/S" in container["Config"]["Env"]
    assert not any(e.startswith("S=") for e in container["Config"]["Env"])
    (mount,) = [m for m in container["Mounts"] if m["Destination"] == "/run/secrets"]
    assert mount["Type"] == "bind" and mount["RW"] is False
    assert mount["Source"].startswith("/dev/shm/mlsteps-secrets-")
    assert leaks(watch.inspect) == []
    # not written into the container's own layer (what `docker commit` would keep): only the
    # empty mount point is there
    assert "A /run/secrets" in watch.diff.splitlines() and "/run/secrets/" not in watch.diff
    # no process's argv or (but mlsteps') environment held it while the step ran
    assert len(watch.cmdlines) > 10 and len(watch.environs) > 10
    assert [c for c in watch.cmdlines if leaks(c.decode(errors="replace"))] == []
    assert [p for p, e in watch.environs.items() if leaks(e.decode(errors="replace"))] == []
    # nor any output or the MLflow run
    assert leaks(done.stdout + done.stderr) == []
    assert leaks(json.dumps(run_info(mlflow_server.uri, result["outputs"]["run-id"]))) == []
    assert_gone(watch.secrets_source(), watch.proc.pid)
    assert_nothing_left(docker_client)


PRINT_ENV = 'printf %s "$S" | sha256sum | cut -d" " -f1; echo "${S_FILE-no file}"; sleep 3'


def test_the_watch_would_see_a_leak_secrets_as_env(
    docker_client: Any, base_image: str, workdir: Path
) -> None:
    """--secrets-as-env: the opt-in, its warning, and the control for the test above: the same
    watch finds the value in `docker inspect` and in the container's environment."""
    done, watch = watched(
        docker_client,
        "--json", "train", "--image", base_image, "--secret-env", "S",
        "--secrets-as-env", "true",
        "--", "sh", "-c", PRINT_ENV,
        cwd=workdir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{DIGEST}\nno file\n" in done.stderr
    assert (
        "warning: --secrets-as-env: S reach the container as environment variables: anyone "
        "with access to the Docker daemon can read their values with `docker inspect`"
    ) in done.stderr
    assert json.loads(done.stdout)["applied"] == [
        "containers.sweep",
        "image.ensure",
        "container.run",
    ]
    assert json.dumps(VALUE, ensure_ascii=False)[1:-1] in leaks(watch.inspect)
    assert f"S={VALUE}" in watch.container()["Config"]["Env"]
    assert [m for m in watch.container()["Mounts"] if m["Destination"] == "/run/secrets"] == []
    assert any(leaks(e.decode(errors="replace")) for e in watch.environs.values())
    assert leaks(done.stdout + done.stderr) == []  # still masked in the log
    assert secret_dirs_of(watch.proc.pid) == []
    assert_nothing_left(docker_client)


def test_secret_files_are_removed_when_the_training_fails(
    docker_client: Any, base_image: str, mlflow_server: Any, workdir: Path
) -> None:
    done, watch = watched(
        docker_client,
        "--json", "train", "--image", base_image, "--tracking-uri", mlflow_server.uri,
        "--secret-env", "S", "--", "sh", "-c", 'test -s "$S_FILE" && sleep 2 && exit 1',
        cwd=workdir,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)
    assert result["error"].startswith("training exited with code 1.")
    assert result["outputs"]["exit-code"] == "1"
    assert run_info(mlflow_server.uri, result["outputs"]["run-id"])["info"]["status"] == "FAILED"
    assert_gone(watch.secrets_source(), watch.proc.pid)
    assert_nothing_left(docker_client)


def test_secret_files_are_removed_when_the_container_cannot_start(
    docker_client: Any, base_image: str, workdir: Path
) -> None:
    done = mlsteps(
        "--verbose", "train", "--image", base_image, "--secret-env", "S",
        "--", "/no/such/command",
        cwd=workdir, env=SECRET_ENV,
    )  # fmt: skip
    assert done.returncode == 1
    assert "error: the container did not start" in done.stderr
    match = re.search(r"secret files written to (/\S+) \(S_FILE\)", done.stdout)
    assert match, done.stdout
    assert_gone(Path(match.group(1)), -1)
    assert leaks(done.stdout + done.stderr) == []
    assert_nothing_left(docker_client)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_secret_files_are_removed_on_cancel(
    docker_client: Any, base_image: str, workdir: Path, signum: int
) -> None:
    proc = start(
        "--json", "train", "--image", base_image, "--secret-env", "S",
        "--", "sh", "-c", 'test -s "$S_FILE" && echo started && sleep 300',
        cwd=workdir, env=SECRET_ENV,
    )  # fmt: skip
    with Watch(docker_client, proc) as watch:
        deadline = time.monotonic() + 60
        while not watch.inspect:
            assert time.monotonic() < deadline, "the training container never started"
            time.sleep(0.1)
        source = watch.secrets_source()
        assert (source / "S").read_bytes() == VALUE.encode()
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signum, err
    assert json.loads(out)["error"] == f"cancelled by {signal.Signals(signum).name}"
    assert_gone(source, proc.pid)
    assert_nothing_left(docker_client)


ENV_DIGEST = (
    "import hashlib, os; "
    "print('S_FILE' in os.environ, hashlib.sha256(os.environb[b'S']).hexdigest())"
)


def test_local_backend_gets_the_file_path_not_the_value(workdir: Path) -> None:
    script = (
        "import hashlib, os\n"
        "path = os.environ['S_FILE']\n"
        "print(hashlib.sha256(open(path, 'rb').read()).hexdigest())\n"
        "print(path)\n"
        "print('S' in os.environ)\n"
    )
    done = mlsteps(
        "--json", "train", "--backend", "local", "--secret-env", "S",
        "--", sys.executable, "-c", script,
        cwd=workdir, env=SECRET_ENV,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    digest, path, in_env = done.stderr.splitlines()[-3:]
    assert digest == DIGEST and in_env == "False"
    assert re.fullmatch(r"/dev/shm/mlsteps-secrets-[^/]+/run/S", path), path
    assert json.loads(done.stdout)["applied"] == ["secrets.write", "process.run"]
    assert not Path(path).parent.parent.exists()

    as_env = mlsteps(
        "train", "--backend", "local", "--secret-env", "S", "--secrets-as-env", "true",
        "--", sys.executable, "-c", ENV_DIGEST,
        cwd=workdir, env=SECRET_ENV,
    )  # fmt: skip
    assert as_env.returncode == 0, as_env.stderr
    assert f"False {DIGEST}" in as_env.stdout
    assert "warning: --secrets-as-env: S reach the training process as environment" in (
        as_env.stderr
    )


def test_dry_run_names_the_secrets_and_where_they_go_never_the_values(
    base_image: str, workdir: Path
) -> None:
    env = {**SECRET_ENV, "T": "second-" + TOKEN}
    args = ["train", "--image", base_image, "--secret-env", "S", "--secret-env", "T", "--", "true"]
    shown = mlsteps("--dry-run", *args, cwd=workdir, env=env)
    as_json = mlsteps("--dry-run", "--json", *args, cwd=workdir, env=env)
    for done in (shown, as_json):
        assert done.returncode == 0, done.stderr
        assert leaks(done.stdout + done.stderr) == []
        assert "second-" not in done.stdout + done.stderr
    assert (
        "3. write 2 secret file(s) (S, T) to a private directory under /dev/shm (tmpfs), "
        "mounted read-only at /run/secrets; S_FILE, T_FILE name the files"
    ) in shown.stdout
    assert (
        "4. run `true` in mlsteps-base:bookworm; GPUs: none; secrets S, T as files in /run/secrets"
        in (shown.stdout)
    )
    plan = json.loads(as_json.stdout)["plan"]
    write = next(a for a in plan if a["kind"] == "secrets.write")
    assert write["names"] == ["S", "T"] and write["container_dir"] == "/run/secrets"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a private mount namespace")
def test_a_daemon_that_cannot_see_the_files_is_named(base_image: str, workdir: Path) -> None:
    """What a runner in a container sharing the host's Docker socket meets: its /dev/shm is not
    the daemon's. A private mount namespace with its own /dev/shm shows the same."""
    done = subprocess.run(
        [
            "unshare", "--mount", "sh", "-c", 'mount -t tmpfs tmpfs /dev/shm && exec "$@"', "sh",
            sys.executable, "-m", "steps", "train", "--image", base_image, "--secret-env", "S",
            "--", "true",
        ],
        capture_output=True, text=True, cwd=workdir, env={**os.environ, **SECRET_ENV}, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "error: the Docker daemon cannot see the secret files mlsteps wrote in /dev/shm/" in (
        done.stderr
    )
    assert "--secrets-as-env true (then docker inspect shows the values)" in done.stderr
    assert "Traceback" not in done.stderr


def test_files_left_by_a_killed_run_are_removed_by_the_next(
    docker_client: Any, base_image: str, workdir: Path
) -> None:
    """kill -9 runs no cleanup; the next run with secrets sweeps what the dead one left."""
    proc = start(
        "train", "--image", base_image, "--secret-env", "S", "--", "sh", "-c", "sleep 300",
        cwd=workdir, env=SECRET_ENV,
    )  # fmt: skip
    with Watch(docker_client, proc) as watch:
        deadline = time.monotonic() + 60
        while not watch.inspect:
            assert time.monotonic() < deadline, "the training container never started"
            time.sleep(0.1)
        proc.kill()
        proc.communicate(timeout=30)
    left = watch.secrets_source().parent
    assert left.exists() and secret_dirs_of(proc.pid) == [left]
    done = mlsteps(
        "train", "--image", base_image, "--secret-env", "S", "--", "true",
        cwd=workdir, env=SECRET_ENV,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert re.search(
        r"removed \d+ secret directory\(ies\) left by mlsteps runs that died", done.stdout
    )
    assert not left.exists()
    assert_nothing_left(docker_client)
