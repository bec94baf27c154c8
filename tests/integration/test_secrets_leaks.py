"""Leak sweep: secrets of every awkward shape, read from the real OpenBao server, delivered by
each mode (exec, the GitHub face's $GITHUB_ENV export, a file, train into a container) — and
none of them anywhere it must not be, raw or base64-, URL- or JSON-escaped: captured output,
$GITHUB_OUTPUT / $GITHUB_STEP_SUMMARY, files left on disk, outputs, the lease record, MLflow,
`docker inspect` and `docker diff` of the training container, or any process's argv sampled
while the step ran. The GitHub action under act and withVaultSecrets under the Groovy harness
are swept the same way in tests/faces (test_action_secrets.py, test_jenkins_vault_secrets.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests import services
from tests import vault_setup as vs
from tests.integration.test_secrets import Cli, Done
from tests.integration.test_train_secrets import Watch
from tests.leak_forms import leaked

pytestmark = pytest.mark.services

# Each shape a masker or an escaper has got wrong somewhere: several lines (a PEM key), JSON,
# both quotes and backquotes, %, $, backslashes, unicode beyond the BMP, CRLF, a trailing space.
AWKWARD = {
    "pem": "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD9\n0sd8Gk2+/x==\n-----END KEY-----\n",
    "json": '{"user": "ml", "pass": "p\\"w\'d", "list": [1, 2], "nested": {"k": "v"}}',
    "quotes": 'it\'s "quoted" and `backquoted` and $(not run)',
    "percent": "100%25 %0A %s %d %% ${HOME} $PATH \\n \\\\server\\share",
    "unicode": "pässwörd ☃ 𝄞 日本語 ",
    "crlf": "first line\r\nsecond line\r\n",
}


class ArgvSampler:
    """Every process's argv on this host, sampled every 50 ms while the step runs."""

    def __init__(self) -> None:
        self.cmdlines: set[bytes] = set()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ArgvSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    with contextlib.suppress(OSError):
                        self.cmdlines.add((entry / "cmdline").read_bytes())
            self.samples += 1
            time.sleep(0.05)

    def leaks(self, values: Mapping[str, str]) -> list[str]:
        assert self.samples >= 3, "the sampler did not run while the step did"
        text = "\n".join(c.replace(b"\0", b" ").decode(errors="replace") for c in self.cmdlines)
        return leaked(text, values)


class DescendantWatch(Watch):
    """train's Watch, for a training started by `secrets exec`: the container's owner is the
    exec child (mlsteps train), not the process we started."""

    def _run(self) -> None:
        while not self._stop.is_set() and self.proc.poll() is None:
            if not self.inspect:
                found = services.no_labelled_containers(
                    self.docker, "io.mlsteps.invocation", prefix=None
                )
                for container in found:
                    owner = int(container.attrs["Labels"].get("io.mlsteps.owner-pid", "0"))
                    if container.attrs.get("State") == "running" and parent_of(owner) == (
                        self.proc.pid
                    ):
                        inspect = self._docker("inspect", container.id)
                        if '"Running": true' in inspect:
                            self.inspect = inspect
                            self.diff = self._docker("diff", container.id)
            time.sleep(0.05)


def parent_of(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])


def files_under(root: Path) -> dict[Path, str]:
    return {
        p: p.read_text(encoding="utf-8", errors="replace")
        for p in root.rglob("*")
        if p.is_file() and p.name != "child.py"
    }


@pytest.fixture
def awkward(cli: Cli) -> tuple[str, dict[str, str]]:
    """The awkward values in one KV v2 secret of this test, and --secrets reading each into an
    upper-case variable of the same name."""
    cli.put("secret", f"{cli.uid}/leaks", AWKWARD)
    requests = "; ".join(f"secret/{cli.uid}/leaks {k} | {k.upper()}" for k in AWKWARD)
    return requests, {k.upper(): v for k, v in AWKWARD.items()}


def approle_env(cli: Cli) -> dict[str, str]:
    policy = vs.read_policy(cli.vault, f"leaks-{cli.uid}", [f"secret/data/{cli.uid}/*"])
    role_id, secret_id = vs.approle(cli.vault, f"leaks-{cli.uid}", [policy])
    cli.hide(role_id=role_id, secret_id=secret_id)
    return {"VAULT_ROLE_ID": role_id, "VAULT_SECRET_ID": secret_id}


def checked(done: Done, values: Mapping[str, str]) -> Done:
    assert not leaked(done.out + done.err, values), done.code
    return done


def test_exec_leaks_nothing_and_writes_nothing(
    cli: Cli, awkward: tuple[str, dict[str, str]]
) -> None:
    requests, values = awkward
    with ArgvSampler() as argv:
        proc = cli.start(
            "secrets", "exec", "--method", "approle", "--secrets", requests,
            "--", *cli.child(*values, hold=cli.cwd / "hold"),
            env=approle_env(cli),
        )  # fmt: skip
        # hold: the child waits for this file, so the sampler sees it (and mlsteps) running
        time.sleep(1.0)
        (cli.cwd / "hold").write_text("go")
        done = checked(cli.finish(proc), values)
    assert done.code == 0, done
    assert done.hashes() == {n: hashlib.sha256(v.encode()).hexdigest() for n, v in values.items()}
    assert argv.leaks(values) == []
    written = [p.name for p in files_under(cli.cwd) if not p.name.startswith("hold")]
    assert written == [], "exec wrote something to disk"


def parse_file_commands(text: str) -> dict[str, str]:
    """$GITHUB_ENV / $GITHUB_OUTPUT as the runner reads them: NAME<<DELIM … DELIM blocks."""
    found, lines = {}, iter(text.split("\n"))
    for line in lines:
        if "<<" in line:
            name, delimiter = line.split("<<", 1)
            body = []
            for inner in lines:
                if inner == delimiter:
                    break
                body.append(inner)
            found[name] = "\n".join(body)
    return found


def test_github_face_masks_first_and_exports_only_to_github_env(
    cli: Cli, awkward: tuple[str, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    requests, values = awkward
    runner = tmp_path_factory.mktemp("runner")  # the runner's files, outside the working dir
    files = {
        name: runner / name.lower()
        for name in ("GITHUB_ENV", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY")
    }
    for path in files.values():
        path.write_text("")
    github = {"GITHUB_ACTIONS": "true", "RUNNER_TEMP": str(runner / "temp")}
    github.update({name: str(path) for name, path in files.items()})
    # Not cli.run: its leak check would trip on the ::add-mask:: lines, which must hold values.
    proc = cli.start(
        "secrets", "fetch", "--method", "approle", "--secrets", requests,
        env={**approle_env(cli), **github},
    )  # fmt: skip
    out, err = proc.communicate(timeout=60)
    done = Done(proc.returncode, out, err, 0.0)
    assert done.code == 0, done

    # Masks first: every line of every value is registered before any line that is not a mask.
    lines = done.out.splitlines()
    masks = [i for i, line in enumerate(lines) if line.startswith("::add-mask::")]
    other = [i for i, line in enumerate(lines) if not line.startswith("::add-mask::")]
    masked = {urllib.parse.unquote(lines[i].removeprefix("::add-mask::")) for i in masks}
    for value in values.values():
        for line in value.splitlines():
            if line.strip():
                assert line.replace("\r", "") in {m.replace("\r", "") for m in masked}
    first_value_mask = min(
        i for i in masks if any(lines[i].endswith(v.splitlines()[0]) for v in values.values())
    )
    read_line = next(i for i in other if lines[i].startswith("read "))
    assert first_value_mask < read_line
    without_masks = "\n".join(lines[i] for i in other) + done.err
    assert leaked(without_masks, values) == []

    # $GITHUB_ENV holds exactly the values (the delivery); outputs and summary hold none.
    # (bytes: read_text would turn the CRLF value's \r\n into \n)
    exported = parse_file_commands(files["GITHUB_ENV"].read_bytes().decode())
    assert exported == values
    for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"):
        assert leaked(files[name].read_text(encoding="utf-8"), values) == [], name
    assert "CRLF" in files["GITHUB_STEP_SUMMARY"].read_text(encoding="utf-8")  # names, not values
    outputs = parse_file_commands(files["GITHUB_OUTPUT"].read_text(encoding="utf-8"))
    assert set(outputs) == {"names", "file", "lease-file"}

    # The lease record holds the login token (to revoke it), never a value; revoke removes it.
    record = Path(outputs["lease-file"])
    assert record.stat().st_mode & 0o777 == 0o600
    assert leaked(record.read_text(encoding="utf-8"), values) == []
    revoked = checked(cli.run("secrets", "revoke", env=github), values)
    assert revoked.code == 0, revoked
    assert not record.exists()
    for path, text in files_under(runner).items():
        if path != files["GITHUB_ENV"]:
            assert leaked(text, values) == [], path


def test_file_delivery_is_private_and_revoke_leaves_no_trace(
    cli: Cli, awkward: tuple[str, dict[str, str]]
) -> None:
    requests, values = awkward
    for name in ("secrets.env", "secrets.json"):
        target = cli.cwd / "out" / name
        done = checked(
            cli.run(
                "secrets", "fetch", "--method", "approle", "--secrets", requests,
                "--file", str(target), "--lease-file", str(cli.cwd / "lease.json"),
                env=approle_env(cli),
            ),
            values,
        )  # fmt: skip
        assert done.code == 0, done
        assert target.stat().st_mode & 0o777 == 0o600
        assert leaked((cli.cwd / "lease.json").read_text(), values) == []
        assert checked(cli.run("secrets", "revoke", "--lease-file", str(cli.cwd / "lease.json")),
                       values).code == 0  # fmt: skip
        assert not target.exists() and not (cli.cwd / "lease.json").exists()
        # no temporary sibling of the file or the record left either
        assert files_under(cli.cwd) == {}


def mlflow_run_text(uri: str, run_id: str) -> str:
    with urllib.request.urlopen(f"{uri}/api/2.0/mlflow/runs/get?run_id={run_id}") as answer:
        return answer.read().decode()


def test_train_in_a_container_gets_files_and_nothing_leaks(
    cli: Cli,
    awkward: tuple[str, dict[str, str]],
    docker_client: Any,
    base_image: str,
    mlflow_server: services.MlflowServer,
) -> None:
    requests, values = awkward
    shm_before = set(Path("/dev/shm").glob("mlsteps-secrets-*"))
    digests = " ".join(f'"${name}_FILE"' for name in values)
    secret_env = [arg for name in values for arg in ("--secret-env", name)]
    proc = cli.start(
        "secrets", "exec", "--method", "approle", "--secrets", requests, "--",
        str(Path(sys.executable).parent / "mlsteps"), "--json", "train", "--image", base_image,
        "--tracking-uri", mlflow_server.uri, "--experiment", "leaks", *secret_env,
        "--", "sh", "-c", f"sha256sum {digests} | cut -c1-64; env | cut -d= -f1; sleep 3",
        env=approle_env(cli),
    )  # fmt: skip
    with ArgvSampler() as argv, DescendantWatch(docker_client, proc) as watch:
        done = checked(cli.finish(proc, timeout=300), values)
    assert done.code == 0, done

    for value in values.values():
        assert hashlib.sha256(value.encode()).hexdigest() in done.err, "file content differs"
    container = watch.container()
    assert leaked(watch.inspect, values) == []
    assert leaked(watch.diff, values) == []
    assert not any(e.split("=", 1)[0] in values for e in container["Config"]["Env"])
    assert argv.leaks(values) == []
    (line,) = [x for x in done.out.splitlines() if x.startswith('{"step": "train"')]
    result = json.loads(line)
    assert leaked(json.dumps(result), values) == []
    assert leaked(mlflow_run_text(mlflow_server.uri, result["outputs"]["run-id"]), values) == []
    # nothing new (a dead run's directory from before may even have been swept)
    assert set(Path("/dev/shm").glob("mlsteps-secrets-*")) <= shm_before
    assert files_under(cli.cwd) == {}


@pytest.fixture(autouse=True)
def _nothing_stays_in_the_working_directory(cli: Cli) -> Iterator[None]:
    yield
    stray = [p for p in files_under(cli.cwd) if not p.name.startswith("hold")]
    assert stray == [], f"left behind: {stray}"
