"""The embedded default target: the champion's and the candidate's images (from ``mlsteps
package``) run as containers behind a real nginx (steps/deploy/proxy.py) on loopback.

The endpoint outlives mlsteps: nginx is a daemon and the containers are the engine's, found
again by their labels (io.mlsteps.endpoint=NAME) and by the endpoint's state directory, which
holds nginx's config, pid and logs and state.json (what serves, on which port, at which weight).
A later DockerTarget on the same directory finds them serving; a dead part is reported by
current() and restarted by ensure_champion().

Containers publish the model server's port on 127.0.0.1 only (a random host port), join the
upstream only once /ping answers, and leave it before they are removed: weights first (a
graceful reload), then the old nginx workers drain their requests in flight, then the container
goes. These containers carry no owner labels on purpose: services/containers.py's sweep
removes containers whose mlsteps process died, and an endpoint must outlive its deploy.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steps.core.errors import ConfigError, StepFailed
from steps.deploy import accesslog, capture, proxy
from steps.deploy.observations import CANDIDATE, CHAMPION, Observations, Pair
from steps.deploy.options import check_image
from steps.deploy.targets.base import Endpoint, Target
from steps.services.containers import LABEL, connect, ensure_image, remove_container

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

    from steps.deploy.options import DeployConfig

SERVER_PORT = "8080/tcp"  # steps/serve/server.py's PORT default, which package images keep
CAPTURE_DIR = "/opt/ml/capture"
STATE = "state.json"
ENDPOINT_LABEL = f"{LABEL}.endpoint"
ROLE_LABEL = f"{LABEL}.role"  # the role a container was started in (a candidate may be promoted)
# Docker's container-name alphabet, which also keeps names out of nginx's and a shell's syntax.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_HISTORY = 32  # address → variant entries kept for reading older log lines


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"endpoint name {name!r}: use 1 to 63 letters, digits, '.', '_' or '-', starting "
            "with a letter or digit (it names the endpoint's containers)"
        )
    return name


class DockerTarget(Target):
    name = "docker"

    def __init__(
        self,
        endpoint: str,
        state_dir: Path,
        *,
        listen: int = 0,
        read_timeout: float = 60.0,
        start_timeout: float = 180.0,
        capture_sample: float = 1.0,
        prediction_tolerance: float = 0.0,
        nginx: str | None = None,
        say: Callable[[str], None] = lambda _line: None,
    ) -> None:
        self.endpoint = check_name(endpoint)
        self.root = Path(state_dir)
        self.listen = listen  # 0: a free port is chosen when the endpoint is first made
        self.read_timeout = read_timeout
        self.start_timeout = start_timeout
        self.capture_sample = capture_sample
        self.prediction_tolerance = prediction_tolerance
        self.nginx = proxy.Nginx(self.root, nginx)
        self.say = say
        self._docker: DockerClient | None = None

    @classmethod
    def from_config(cls, config: DeployConfig, say: Callable[[str], None]) -> DockerTarget:
        return cls(
            config.endpoint,
            Path(config.state_dir),
            listen=config.listen,
            prediction_tolerance=config.prediction_tolerance,
            say=say,
        )

    # ----- state ------------------------------------------------------------------------------

    def _load(self) -> dict[str, Any] | None:
        try:
            state = json.loads((self.root / STATE).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StepFailed(
                f"the endpoint's state {self.root / STATE} is unreadable: {exc}"
            ) from None
        if not isinstance(state, dict) or state.get("endpoint") != self.endpoint:
            raise StepFailed(
                f"{self.root / STATE} is not the state of endpoint {self.endpoint}: give each "
                "endpoint its own state directory"
            )
        return state

    def _save(self, state: dict[str, Any]) -> None:
        # Private: it holds the access log and data capture (sampled request bodies and
        # predictions), and the capture directories inside are opened to the image's user.
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        temp = self.root / f"{STATE}.new"
        temp.write_text(json.dumps(state, indent=1))
        temp.replace(self.root / STATE)

    def _endpoint(self, state: dict[str, Any], down: str = "") -> Endpoint:
        candidate = state.get("candidate") or {}
        return Endpoint(
            url=f"http://127.0.0.1:{state['listen']}",
            champion=state["champion"]["image"],
            candidate=candidate.get("image", ""),
            candidate_weight=state["weight"] if candidate else 0,
            mirror=bool(state["mirror"] and candidate),
            down=down,
        )

    # ----- containers -------------------------------------------------------------------------

    @property
    def docker(self) -> DockerClient:
        if self._docker is None:
            self._docker = connect(alternative=", or deploy with another --target")
        return self._docker

    def _container(self, variant: Mapping[str, Any] | None) -> Container | None:
        from docker.errors import NotFound

        if not variant:
            return None
        try:
            return self.docker.containers.get(variant["container"])
        except NotFound:
            return None

    def _running(self, variant: Mapping[str, Any] | None) -> bool:
        container = self._container(variant)
        return container is not None and container.status == "running"

    def _start(self, image: str, role: str, *, capture: bool) -> dict[str, Any]:
        """Run ``image`` and return its record once /ping answers; on failure it is removed."""
        from docker.errors import APIError

        try:
            ensure_image(self.docker, image, "missing", None, lambda line, _done: self.say(line))
        except (ConfigError, StepFailed) as exc:  # it names train's --image: name the role
            raise type(exc)(
                exc.message.replace(f"--image {image}:", f"the {role} image {image}:", 1)
            ) from None
        name = f"mlsteps-{self.endpoint}-{role}-{os.urandom(3).hex()}"
        environment, volumes = {}, {}
        if capture:
            host = self.root / "capture" / name
            host.mkdir(parents=True, exist_ok=True)
            _writable_by_image(host, self.docker.images.get(image).attrs)
            volumes[str(host)] = {"bind": CAPTURE_DIR, "mode": "rw"}
            environment = {
                "MLSTEPS_CAPTURE_DIR": CAPTURE_DIR,
                "MLSTEPS_CAPTURE_SAMPLE": f"{self.capture_sample:g}",
                "MLSTEPS_VARIANT": role,
            }
        # Loopback only, a port the engine picks (the stubs do not know the None that asks it).
        ports: dict[str, Any] = {SERVER_PORT: ("127.0.0.1", None)}
        try:
            container = self.docker.containers.run(
                image, detach=True, name=name, environment=environment, volumes=volumes,
                labels={ENDPOINT_LABEL: self.endpoint, ROLE_LABEL: role},
                ports=ports,
            )  # fmt: skip
        except APIError as exc:
            # run() is create then start: a start the engine refused leaves a created container.
            with contextlib.suppress(APIError):
                remove_container(self.docker.containers.get(name))
            raise StepFailed(f"the {role} container ({image}) did not start: {exc}") from None
        try:
            container.reload()
            bindings = container.ports.get(SERVER_PORT) or []
            if not bindings:
                raise StepFailed(f"the {role} ({image}) exited before its port was published")
            port = int(bindings[0]["HostPort"])
            deadline = time.monotonic() + self.start_timeout
            while not _pings(port):
                container.reload()
                if container.status != "running" or time.monotonic() > deadline:
                    tail = container.logs(tail=20).decode(errors="replace").strip()
                    raise StepFailed(
                        f"the {role} ({image}) did not answer /ping"
                        f"{' (it exited)' if container.status != 'running' else ''} within "
                        f"{self.start_timeout:g} s; its last lines:\n{tail[-2000:]}"
                    )
                time.sleep(0.25)
        except BaseException:
            remove_container(container)
            raise
        self.say(f"{role} {image} answers on 127.0.0.1:{port}")
        # variant: the name its capture files are under (MLSTEPS_VARIANT), kept when a
        # candidate becomes the champion.
        return {"image": image, "container": container.id, "name": name, "port": port,
                "capture": capture, "variant": role}  # fmt: skip

    def _remove_strays(self, state: Mapping[str, Any]) -> None:
        """Containers of this endpoint that state.json does not know (a crash between their
        start and the state's write) or no longer serves."""
        keep = {v["container"] for v in (state.get("champion"), state.get("candidate")) if v}
        for container in self.docker.containers.list(
            all=True, filters={"label": f"{ENDPOINT_LABEL}={self.endpoint}"}, ignore_removed=True
        ):
            if container.id not in keep:
                remove_container(container)

    # ----- nginx ------------------------------------------------------------------------------

    def _apply(self, state: dict[str, Any]) -> set[int]:
        """Make nginx serve what ``state`` says (start it if it is down) and save the state.
        Returns the old workers, whose requests in flight go to what was served before."""
        served = [(state["champion"]["port"], 100 - state["weight"])]
        candidate = state.get("candidate")
        if candidate:
            served.append((candidate["port"], state["weight"]))
        mirror = candidate["port"] if candidate and state["mirror"] else None
        text = proxy.render(state["listen"], served, mirror=mirror, read_timeout=self.read_timeout)
        if self.nginx.master() is None:
            if not self.nginx.orphans():  # they hold the port: start() ends them first
                proxy.check_port(state["listen"])
            self.nginx.start(text, state["listen"])
            old: set[int] = set()
        else:
            old = self.nginx.reload(text)
        self._save(state)
        return old

    def _retire(self, container_id: str, old_workers: set[int]) -> None:
        """Remove a container nginx no longer routes to, once no request is in flight on it
        (the old workers have exited), or after a bounded grace."""
        if not self.nginx.drain(old_workers, self.read_timeout + 5):
            self.say("nginx's old workers still hold requests: removing after the grace anyway")
        container = self._container({"container": container_id})
        if container is not None:
            remove_container(container)

    # ----- the interface ----------------------------------------------------------------------

    def current(self) -> Endpoint | None:
        state = self._load()
        if state is None:
            return None
        down = [] if self.nginx.master() is not None else ["proxy"]
        down += [CHAMPION] if not self._running(state["champion"]) else []
        if state.get("candidate") and not self._running(state["candidate"]):
            down.append(CANDIDATE)
        return self._endpoint(state, ", ".join(down))

    def ensure_champion(self, champion: str | None) -> Endpoint:
        state = self._load()
        if state is None:
            if champion is None:
                raise ConfigError(
                    f"endpoint {self.endpoint}: nothing serves it yet, and no champion image was "
                    "given to start it with (a candidate needs a champion to be compared with). "
                    "Give the champion's image, or deploy the first model with --champion."
                )
            check_image(champion, "champion image")
            proxy.find_nginx(self.nginx.binary)  # before anything is started
            listen = self.listen or proxy.free_port()
            proxy.check_port(listen)
            first = self._start(champion, CHAMPION, capture=False)
            state = {"endpoint": self.endpoint, "listen": listen, "champion": first,
                     "candidate": None, "weight": 0, "mirror": False, "history": []}  # fmt: skip
            _remember(state, first, CHAMPION)
            try:
                self._apply(state)
            except BaseException:
                self.nginx.stop()
                if (container := self._container(first)) is not None:
                    remove_container(container)
                (self.root / STATE).unlink(missing_ok=True)
                raise
            return self._endpoint(state)
        if not self._running(state["champion"]):
            self.say(f"the champion of {self.endpoint} is not running: starting it again")
            self._replace_champion(state, capture=state["champion"].get("capture", False))
        elif self.nginx.master() is None:
            self.say(f"the proxy of {self.endpoint} is not running: starting it again")
            self._apply(state)
        return self._endpoint(state)

    def _replace_champion(self, state: dict[str, Any], *, capture: bool) -> None:
        """A new champion container from the same image takes over, then the old one goes."""
        old = state["champion"]
        state["champion"] = self._start(old["image"], CHAMPION, capture=capture)
        _remember(state, state["champion"], CHAMPION)
        self._retire(old["container"], self._apply(state))

    def start_candidate(self, candidate: str, *, capture: bool) -> None:
        check_image(candidate, "candidate image")
        state = self._load()
        if state is None:
            raise StepFailed(f"endpoint {self.endpoint} is not up: ensure_champion comes first")
        existing = state.get("candidate")
        if existing and existing["image"] == candidate and self._running(existing):
            return  # started already (a resumed rollout)
        if existing:
            self.remove_candidate()
            state = self._load() or state
        self._remove_strays(state)
        if capture and not state["champion"].get("capture"):
            self._replace_champion(state, capture=True)
        state["candidate"] = self._start(candidate, CANDIDATE, capture=capture)
        state["weight"], state["mirror"] = 0, False
        _remember(state, state["candidate"], CANDIDATE)
        self._save(state)  # at weight 0 nginx's config does not change: nothing to reload

    def set_weights(self, candidate_weight: int, *, mirror: bool = False) -> None:
        if type(candidate_weight) is not int or not 0 <= candidate_weight <= 100:
            raise ValueError(f"candidate weight {candidate_weight!r}: a whole percent, 0 to 100")
        state = self._load()
        if state is None or not state.get("candidate"):
            raise StepFailed(f"endpoint {self.endpoint} has no candidate to send traffic to")
        state["weight"], state["mirror"] = candidate_weight, mirror
        self._apply(state)

    def observe(self, since: Mapping[str, object]) -> tuple[Observations, dict[str, object]]:
        try:
            state = self._load()
        except StepFailed as exc:
            return Observations(source_error=exc.message), dict(since)
        if state is None:
            return Observations(source_error=f"endpoint {self.endpoint} is not up"), dict(since)
        history = [tuple(entry) for entry in state.get("history", [])]
        # (Lines of earlier rollouts are in the log too: the controller leaves out whatever
        # came before its candidate started, on every target.)

        def variant(addr: str, when: float) -> str | None:
            found = None
            for known, name, start in history:  # oldest first: the latest start wins
                if known == addr and start <= when:
                    found = name
            return found

        log_cursor = since.get("log")
        observations, cursor = accesslog.read_log(
            self.root / proxy.ACCESS_LOG,
            log_cursor if isinstance(log_cursor, Mapping) else {},
            variant,
        )
        captured = since.get("capture")
        try:
            observations.pairs, capture_cursor = self._pairs(
                state, captured if isinstance(captured, Mapping) else {}
            )
        except ValueError as exc:  # a capture cursor that is not one (a damaged state file)
            observations.source_error = f"data capture: {exc}"
            capture_cursor = {}
        return observations, {"log": cursor, "capture": capture_cursor}

    def _pairs(
        self, state: Mapping[str, Any], since: Mapping[str, Any]
    ) -> tuple[list[Pair], dict[str, Any]]:
        """The champion's and the candidate's answers to the same requests (mirrored ones),
        from both servers' data capture, joined by the proxy's request id."""
        readers = {}
        for role in ("champion", "candidate"):
            record = state.get(role)
            if not record or not record.get("capture"):
                return [], {}
            cursor = since.get(record["name"])
            readers[role] = capture.CaptureReader(
                self.root / "capture" / record["name"],
                record.get("variant", role),
                cursor if isinstance(cursor, Mapping) else None,
            )
        pending = since.get("pending")
        found, left = capture.join_pending(
            readers["champion"].read(),
            readers["candidate"].read(),
            pending if isinstance(pending, Mapping) else {},
            self.prediction_tolerance,
        )
        names = {role: state[role]["name"] for role in readers}
        return found, {
            **{names[role]: reader.cursor for role, reader in readers.items()},
            "pending": left,
        }

    def finish(self) -> Endpoint:
        state = self._load()
        if state is None:
            raise StepFailed(f"endpoint {self.endpoint} is not up: nothing to finish")
        candidate = state.get("candidate")
        if candidate:
            old = state["champion"]
            state["weight"], state["mirror"] = 100, False
            workers = self._apply(state)  # all traffic on the candidate
            state.update(champion=candidate, candidate=None, weight=0)
            _remember(state, candidate, CHAMPION)
            workers |= self._apply(state)
            self._retire(old["container"], workers)
        self._remove_strays(state)
        return self._endpoint(state)

    def remove_candidate(self) -> Endpoint:
        state = self._load()
        if state is None:
            return Endpoint(url="", champion="", candidate="", candidate_weight=0, mirror=False,
                            down="proxy, champion")  # fmt: skip
        candidate = state.get("candidate")
        if candidate:
            state["weight"], state["mirror"] = 0, False
            workers = self._apply(state)  # all traffic on the champion first
            state["candidate"] = None
            self._save(state)
            self._retire(candidate["container"], workers)
        self._remove_strays(state)
        return self._endpoint(state)

    def tear_down(self) -> None:
        """Stop the endpoint for good: nginx, every container of it, its state (the logs and
        capture stay in the state directory). Not part of a rollout; idempotent."""
        self.nginx.stop()
        self._remove_strays({})
        (self.root / STATE).unlink(missing_ok=True)


def _remember(state: dict[str, Any], variant: Mapping[str, Any], role: str) -> None:
    """Log lines name upstream addresses; this says which variant an address was from when."""
    history = state.setdefault("history", [])
    history.append([f"127.0.0.1:{variant['port']}", role, time.time()])
    del history[:-_HISTORY]


def _pings(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as answer:
            return int(answer.status) == 200
    except (OSError, ValueError):
        return False


def _writable_by_image(path: Path, image: Mapping[str, Any]) -> None:
    """The server writes capture as the image's user (package images run as a non-root uid):
    as root, the directory is given to that uid; otherwise it is opened to all, which its
    parent (the user's own state directory) still keeps from other users."""
    user = str((image.get("Config") or {}).get("User") or "0").split(":")[0]
    if os.geteuid() == 0 and user.isdigit():
        os.chown(path, int(user), -1)
    else:
        path.chmod(0o1777)
