"""Docker Engine plumbing shared by the steps: connect, label, sweep, pull, run, clean up.

Containers are children of the Docker daemon, not of mlsteps: if mlsteps dies, they live on.
So every container carries labels naming the invocation and the process that owns it;
cleanup removes by id and by label, a cancel waits for a create call to answer (so the id is
always known), and every start sweeps containers whose owner process is gone.
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from steps.core import signals
from steps.core.errors import ConfigError, StepFailed
from steps.services.processes import pump_lines

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

LABEL = "io.mlsteps"
STOP_GRACE = signals.STOP_GRACE


def _namespace_and_boot() -> str:
    """Which pid namespace of which boot our pids belong to. Runners in containers that share
    the host's Docker socket (and, with host networking, its hostname) see other pids: a pid
    from another namespace or boot says nothing about whether its owner is alive."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as boot:
            return f"{namespace}@{boot.read().strip()}"
    except OSError:
        return ""


def _process_start(pid: int) -> str:
    """The kernel's start time of a process: with the pid, it names the process uniquely
    (pids are reused; a reused pid has another start time)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


@dataclass(frozen=True)
class Owner:
    """Who owns the containers of this invocation."""

    step: str
    invocation: str = field(default_factory=lambda: os.urandom(16).hex())
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)

    def labels(self) -> dict[str, str]:
        return {
            f"{LABEL}.step": self.step,
            f"{LABEL}.invocation": self.invocation,
            f"{LABEL}.owner-host": self.host,
            f"{LABEL}.owner-pid": str(self.pid),
            f"{LABEL}.owner-start": _process_start(self.pid),
            f"{LABEL}.owner-pidns": _namespace_and_boot(),
        }


def connect(alternative: str = ", or use --backend local") -> DockerClient:
    """A client for the engine in DOCKER_HOST (or the default socket), or a clear failure
    ending with the step's ``alternative`` to Docker, if it has one."""
    import docker
    from docker.errors import DockerException

    try:
        # from_env asks the engine for its API version: that call proves it answers.
        client = docker.from_env()
    except DockerException:
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise StepFailed(
            f"cannot reach the Docker daemon at {host}: no answer there. Start it (`sudo systemctl "
            f"start docker`, or `dockerd`) or point DOCKER_HOST at it{alternative}."
        ) from None
    return client


def owner_alive(labels: Mapping[str, str], host: str) -> bool:
    if labels.get(f"{LABEL}.owner-host") != host:
        return True  # another machine's container: not ours to judge
    if labels.get(f"{LABEL}.owner-pidns") != _namespace_and_boot():
        return True  # another pid namespace (a runner in a container) or an earlier boot
    try:
        pid = int(labels.get(f"{LABEL}.owner-pid", ""))
    except ValueError:
        return False
    start = labels.get(f"{LABEL}.owner-start", "")
    return os.path.exists(f"/proc/{pid}") and _process_start(pid) == start


def sweep_orphans(client: DockerClient, say: Callable[[str], None]) -> list[str]:
    """Remove containers left by mlsteps processes on this host that are no longer alive."""
    host = socket.gethostname()
    removed = []
    for container in client.containers.list(
        all=True, filters={"label": f"{LABEL}.owner-host={host}"}
    ):
        if not owner_alive(container.labels, host):
            remove_container(container)
            removed.append(str(container.name))
    if removed:
        say(
            f"removed {len(removed)} container(s) left by mlsteps runs that died: "
            + ", ".join(removed)
        )
    return removed


def remove_invocation(client: DockerClient, invocation: str) -> None:
    # ignore_removed: a container that goes (or is still being made) between the list and
    # its inspect must not stop the removal of the others.
    for container in client.containers.list(
        all=True, filters={"label": f"{LABEL}.invocation={invocation}"}, ignore_removed=True
    ):
        remove_container(container)


def remove_container(container: Container) -> None:
    """Stop (with the short grace) and remove; a container already gone or going is fine."""
    from docker.errors import APIError, NotFound

    try:
        if container.status == "running":
            container.stop(timeout=STOP_GRACE)
        container.remove(force=True)
    except NotFound:
        pass
    except APIError as exc:
        if "already in progress" not in str(exc):
            raise


@dataclass(frozen=True)
class ImageInfo:
    ref: str
    id: str
    digest: str  # the repo digest when the image came from a registry, else the image id


def ensure_image(
    client: DockerClient,
    ref: str,
    pull: str,
    platform: str | None,
    progress: Callable[[str, bool], None],
) -> ImageInfo:
    """Find or pull the image according to the pull policy (always | missing | never)."""
    from docker.errors import APIError, ImageNotFound, NotFound
    from docker.utils import parse_repository_tag

    image = None
    if pull != "always":
        try:
            image = client.images.get(ref)
        except APIError as exc:
            if not isinstance(exc, ImageNotFound):
                raise _bad_image(ref, exc) from None
            if pull == "never":
                raise ConfigError(
                    f"--image {ref}: not on this Docker engine, and --pull never forbids pulling "
                    "it. Build or pull it first, or use --pull missing."
                ) from None
    if image is None:
        # parse_repository_tag knows repo:tag, repo@sha256:… and registry:port/repo forms.
        repository, tag = parse_repository_tag(ref)
        try:
            pull_with_progress(client, repository, tag or "latest", platform, progress)
            image = client.images.get(ref if tag else f"{ref}:latest")
        except (ImageNotFound, NotFound) as exc:
            raise ConfigError(
                f"--image {ref}: not found, neither on this engine nor in its registry "
                f"({_short(exc)}). Check the name and tag, and that you are logged in."
            ) from None
        except APIError as exc:
            if exc.status_code == 400:
                raise _bad_image(ref, exc) from None
            raise StepFailed(
                f"--image {ref}: not on this engine, and pulling it failed ({_short(exc)}). Check "
                "the name, that the registry is reachable and that you are logged in, or build "
                "the image locally."
            ) from None
    digests = image.attrs.get("RepoDigests") or []
    image_id = str(image.id)
    digest = str(digests[0]).rsplit("@", 1)[1] if digests else image_id
    return ImageInfo(ref, image_id, digest)


def pull_with_progress(
    client: DockerClient,
    repository: str,
    tag: str,
    platform: str | None,
    progress: Callable[[str, bool], None],
    auth_config: Mapping[str, str] | None = None,
) -> None:
    """Pull with a progress line per update; NotFound when the registry has no such image,
    APIError for any other refusal. Without auth_config, the Docker config's login."""
    from docker.errors import APIError

    layers: dict[str, tuple[int, int]] = {}
    extra: dict[str, Any] = {"auth_config": dict(auth_config)} if auth_config else {}
    for event in client.api.pull(
        repository, tag=tag, platform=platform, stream=True, decode=True, **extra
    ):
        if "error" in event:
            message = str(event["error"])
            if "not found" in message or "manifest unknown" in message:
                from docker.errors import NotFound

                raise NotFound(message)
            raise APIError(message)
        detail = event.get("progressDetail") or {}
        if event.get("id") and detail.get("total"):
            layers[event["id"]] = (detail.get("current", 0), detail["total"])
            done = sum(c for c, _ in layers.values())
            total = sum(t for _, t in layers.values())
            progress(
                f"pulling {repository}:{tag}: {done / 2**20:.0f}/{total / 2**20:.0f} MiB", False
            )
    progress(f"pulled {repository}:{tag}", True)


def _bad_image(ref: str, exc: BaseException) -> ConfigError:
    return ConfigError(
        f"--image {ref}: the engine refuses this image reference ({_short(exc)}). Use "
        "name[:tag] or name@sha256:digest, lower case, e.g. registry.example/team/trainer:1.4."
    )


def _short(exc: BaseException) -> str:
    return str(getattr(exc, "explanation", None) or exc)[:300]


@dataclass(frozen=True)
class ContainerSpec:
    image: str
    command: Sequence[str]
    environment: Mapping[str, str]
    labels: Mapping[str, str]
    volumes: Mapping[str, Mapping[str, str]]
    # Read-only binds (host path, container path) whose host path must exist: the engine
    # refuses a missing one, where a volume bind would create it empty on the daemon's host.
    read_only_binds: Sequence[tuple[str, str]] = ()
    device_requests: Sequence[Mapping[str, Any]] = ()
    working_dir: str | None = None
    user: str | None = None
    network_mode: str | None = None
    extra_hosts: Mapping[str, str] | None = None
    shm_size: int | None = None
    mem_limit: int | None = None
    nano_cpus: int | None = None
    platform: str | None = None


@dataclass(frozen=True)
class ContainerOutcome:
    exit_code: int
    oom_killed: bool
    timed_out: bool
    log_tail: list[str]


def run_container(
    client: DockerClient,
    spec: ContainerSpec,
    invocation: str,
    *,
    timeout: float | None,
    on_line: Callable[[str], None],
    on_created: Callable[[str], None] | None = None,
    tail_lines: int = 30,
) -> ContainerOutcome:
    """Create, attach, start, stream the output line by line, wait; then remove the container,
    on every path. Low-level API calls, in the order `docker run` makes them: the high-level
    models add an inspect after each call, and reading logs after start costs a round trip
    that attaching before start does not."""
    import requests
    from docker.errors import APIError
    from docker.types import DeviceRequest, Mount

    api = client.api
    container_id: str | None = None
    removed = False
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
    try:
        host_config = api.create_host_config(
            binds={host: dict(bind) for host, bind in spec.volumes.items()},
            mounts=[
                Mount(target, source, type="bind", read_only=True)
                for source, target in spec.read_only_binds
            ]
            or None,
            device_requests=[DeviceRequest(**r) for r in spec.device_requests] or None,
            network_mode=spec.network_mode,
            extra_hosts=dict(spec.extra_hosts) if spec.extra_hosts else None,
            shm_size=spec.shm_size,
            mem_limit=spec.mem_limit,
            # Without a swap limit the container would swap instead of hitting its memory limit.
            memswap_limit=spec.mem_limit,
            nano_cpus=spec.nano_cpus,
        )
        try:
            # A cancel waits for the create to answer (and is raised right after), so the
            # container's id is always known to the cleanup: interrupted mid-call, the daemon
            # would finish making a container nobody knows of.
            with signals.shielded():
                created = api.create_container(
                    spec.image,
                    command=list(spec.command) or None,
                    name=f"mlsteps-{spec.labels.get(f'{LABEL}.step', 'step')}-{invocation[:12]}",
                    environment=dict(spec.environment),
                    labels=dict(spec.labels),
                    working_dir=spec.working_dir,
                    user=spec.user,
                    host_config=host_config,
                    platform=spec.platform,
                )
                container_id = str(created["Id"])
        except APIError as exc:
            if exc.status_code == 400:  # the engine rejected a value: a limit, a mount, a name
                raise ConfigError(
                    f"the Docker engine refused the container settings: {_short(exc)}. "
                    "Fix the option it names (--memory, --shm-size, --cpus, --mount, --user…)."
                ) from None
            raise StepFailed(f"the container could not be created: {_short(exc)}") from None
        if on_created:
            on_created(container_id)
        # Attached before start, so no line is lost and the stream ends when the container does.
        stream = api.attach(
            container_id, stdout=True, stderr=True, stream=True, logs=True, demux=True
        )
        pump = threading.Thread(target=pump_lines, args=(stream, on_line, tail), daemon=True)
        pump.start()
        try:
            api.start(container_id)
        except APIError as exc:
            raise _start_error(exc, spec) from None
        timed_out = False
        wait_for = math.ceil(timeout) if timeout else None
        waiting_since = time.monotonic()
        try:
            exit_code = int(api.wait(container_id, timeout=wait_for)["StatusCode"])
        except requests.exceptions.RequestException as exc:
            # Over the unix socket a read timeout arrives as a ConnectionError, so the clock,
            # not the exception's class, tells a --timeout from a daemon that went away.
            if wait_for is None or time.monotonic() - waiting_since < wait_for - 0.5:
                raise StepFailed(
                    f"lost the Docker daemon while the training ran ({type(exc).__name__}). "
                    "Is dockerd still running? The next mlsteps run removes what is left."
                ) from None
            # The wait call's socket timed out: the training outran --timeout.
            timed_out = True
            api.stop(container_id, timeout=STOP_GRACE)
            exit_code = int(api.wait(container_id, timeout=STOP_GRACE + 10)["StatusCode"])
        pump.join(timeout=5)
        oom = False
        if exit_code != 0:
            oom = bool(api.inspect_container(container_id)["State"].get("OOMKilled"))
        # A signal during this removal is held, then delivered once the container is gone.
        with signals.shielded():
            api.remove_container(container_id, force=True)
            removed = True
        return ContainerOutcome(exit_code, oom, timed_out, list(tail))
    finally:
        if not removed:
            with signals.shielded(deliver=False):
                _cleanup(client, container_id, invocation)


def _cleanup(client: DockerClient, container_id: str | None, invocation: str) -> None:
    import requests
    from docker.errors import DockerException

    # Errors are swallowed here: cleanup must not mask the real error, and the next run's
    # sweep removes what is left. But one failed call must not end the cleanup either.
    failures = (DockerException, requests.exceptions.RequestException)
    if container_id is not None:
        try:
            # Stopped with a short grace: GitHub kills the step 7.5 s after its SIGINT.
            client.api.stop(container_id, timeout=STOP_GRACE)
            client.api.remove_container(container_id, force=True)
        except failures:  # NotFound (gone already) included
            pass
    # Anything else of this invocation (by its label), should there be any.
    with contextlib.suppress(*failures):
        remove_invocation(client, invocation)


def _start_error(exc: Exception, spec: ContainerSpec) -> Exception:
    text = str(getattr(exc, "explanation", None) or exc)
    if spec.device_requests and ("device driver" in text or "gpu" in text.lower()):
        return StepFailed(
            f"the Docker engine cannot give this container GPUs ({text[:200]}). Install the "
            "NVIDIA Container Toolkit on the Docker host (and restart dockerd), or train "
            "without GPUs with --gpus none (gpus: none in mlsteps.yaml)."
        )
    return StepFailed(f"the container did not start: {text[:300]}")
