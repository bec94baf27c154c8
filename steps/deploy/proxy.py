"""The docker target's proxy: a real nginx (Debian's 1.22) in front of the model containers.

mlsteps is the controller, never the proxy: it renders nginx's config, starts nginx as an
unprivileged daemon on loopback (``-p DIR -c CONF -e ERRLOG``), moves weights by rewriting the
config and reloading it gracefully (``-t`` first, then SIGHUP to the master), and reads the
access log nginx writes (one JSON line per request, read by accesslog.py).

The config holds no string a user gave: every path in it is relative to the prefix (-p, the
endpoint's state directory, passed as an argument, never written into the file) and every
value is an integer checked here. So no endpoint name, image reference or directory can break
out of it.

Linux only: the master's workers are found in /proc (a reload is done when the old workers
stop taking requests; a removal waits until they have exited).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from steps.core.errors import ConfigError, StepFailed

CONF = "nginx.conf"
PID = "nginx.pid"
ACCESS_LOG = "access.log"
ERROR_LOG = "error.log"
MIRROR_LOCATION = "/.mlsteps-mirror"  # internal: a client asking for it gets 404

# One JSON object per request; escape=json makes every value a valid JSON string whatever a
# client sent. The served request and its mirrored copy carry the same $request_id (nginx
# shares the variable with the subrequest), which data capture joins on.
_FIELDS = (
    '"id":"$request_id","addr":"$upstream_addr","ustatus":"$upstream_status",'
    '"utime":"$upstream_response_time","status":"$status","msec":"$msec"'
)
_LOG_FORMATS = (
    f"    log_format mlsteps escape=json '{{{_FIELDS},\"mirror\":false}}';\n"
    f"    log_format mlsteps_mirror escape=json '{{{_FIELDS},\"mirror\":true}}';\n"
)
# uvicorn closes idle connections after 5 s: nginx drops its own first, so it never sends a
# request on a connection the server is closing.
_KEEPALIVE = "        keepalive 16;\n        keepalive_timeout 4s;\n"
_PROXY_COMMON = (
    "            proxy_http_version 1.1;\n"
    '            proxy_set_header Connection "";\n'
    "            proxy_set_header Host $host;\n"
    "            proxy_set_header X-Request-ID $request_id;\n"
    "            proxy_connect_timeout 1s;\n"
)


def _port(value: object, what: str) -> int:
    if type(value) is not int or not 0 < value < 65536:
        raise ValueError(f"{what}={value!r}: not a TCP port (a whole number from 1 to 65535)")
    return value


def render(
    listen: int,
    served: Sequence[tuple[int, int]],
    *,
    mirror: int | None = None,
    read_timeout: float = 60.0,
) -> str:
    """nginx's config: ``served`` is (port, weight) of each model server on 127.0.0.1; a weight
    of 0 leaves the server out of the upstream. ``mirror``: the port of a server that gets a
    copy of every request (shadow), whose answer no client sees."""
    _port(listen, "listen")
    servers = []
    for port, weight in served:
        _port(port, "upstream port")
        if type(weight) is not int or not 0 <= weight <= 100:
            raise ValueError(f"weight={weight!r}: not a whole percentage from 0 to 100")
        if weight:
            servers.append(f"        server 127.0.0.1:{port} weight={weight};\n")
    if not servers:
        raise ValueError("no upstream server with a weight above 0: nothing would serve")
    if mirror is not None:
        _port(mirror, "mirror port")
    if not isinstance(read_timeout, (int, float)) or not 0 < read_timeout <= 3600:
        raise ValueError(f"read_timeout={read_timeout!r}: not a number of seconds in (0, 3600]")
    timeout = f"            proxy_read_timeout {int(read_timeout * 1000)}ms;\n"
    text = (
        "# Written by mlsteps deploy (steps/deploy/proxy.py); rewritten at every weight change.\n"
        "daemon on;\nworker_processes 1;\n"
        f"pid {PID};\nerror_log {ERROR_LOG} warn;\n"
        "events {\n    worker_connections 1024;\n}\n"
        "http {\n"
        # No idle client connection is kept: at a reload the old workers close theirs, and a
        # client sending on one just then gets a reset (about 1 in 1,000 requests across 30
        # reloads under load, measured). A new connection per request costs a handshake.
        "    keepalive_timeout 0;\n"
        # Debian's compiled-in temp paths are root's: every one is put under the prefix.
        "    client_body_temp_path tmp/body;\n    proxy_temp_path tmp/proxy;\n"
        "    fastcgi_temp_path tmp/fastcgi;\n    uwsgi_temp_path tmp/uwsgi;\n"
        "    scgi_temp_path tmp/scgi;\n"
        # The model server's own body limit (100 MiB) decides; nginx's default 1 MiB would not.
        "    client_max_body_size 100m;\n"
        f"{_LOG_FORMATS}"
        # The mirrored subrequest is logged too: the judge counts the candidate's answers.
        "    log_subrequest on;\n"
        "    access_log off;\n"
        f"    upstream mlsteps_served {{\n{''.join(servers)}{_KEEPALIVE}    }}\n"
    )
    if mirror is not None:
        text += (
            f"    upstream mlsteps_mirror {{\n        server 127.0.0.1:{mirror};\n"
            f"{_KEEPALIVE}    }}\n"
        )
    text += (
        "    server {\n"
        f"        listen 127.0.0.1:{listen};\n"
        f"        access_log {ACCESS_LOG} mlsteps;\n"
        "        location / {\n"
        + (f"            mirror {MIRROR_LOCATION};\n" if mirror is not None else "")
        + "            proxy_pass http://mlsteps_served;\n"
        + _PROXY_COMMON
        + timeout
        # Connection-level failures only (never http_500: a model's error is its own, and the
        # judge must see it). A request on a server that went away is sent to the other, so a
        # container being removed fails no client, while the log keeps the failed try.
        + "            proxy_next_upstream error timeout non_idempotent;\n"
        + "            proxy_next_upstream_tries 2;\n"
        + "        }\n"
    )
    if mirror is not None:
        text += (
            f"        location = {MIRROR_LOCATION} {{\n"
            "            internal;\n"
            f"            access_log {ACCESS_LOG} mlsteps_mirror;\n"
            "            proxy_pass http://mlsteps_mirror$request_uri;\n"
            + _PROXY_COMMON
            + timeout
            + "        }\n"
        )
    return text + "    }\n}\n"


def find_nginx(path: str | None = None) -> str:
    """nginx's executable: ``path``, else PATH, else Debian's /usr/sbin (not on a user's PATH)."""
    found = path or shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if not found or not os.access(found, os.X_OK):
        raise StepFailed(
            "nginx is not installed (the docker target's proxy): install Debian's nginx "
            "(`apt-get install nginx`; mlsteps runs it itself, unprivileged on loopback, never "
            "as the system service), or deploy with another --target."
        )
    return found


class Nginx:
    """One nginx of one endpoint, living in its state directory ``root``."""

    def __init__(self, root: Path, binary: str | None = None) -> None:
        self.root = root
        self.binary = binary

    def _argv(self, conf: str = CONF) -> list[str]:
        self.binary = find_nginx(self.binary)
        root = str(self.root)
        return [self.binary, "-p", root + "/", "-c", str(self.root / conf), "-e",
                str(self.root / ERROR_LOG)]  # fmt: skip

    def master(self) -> int | None:
        """The pid of this endpoint's running master, None when it is not running (a stale
        pid file, a reused pid, another program)."""
        try:
            pid = int((self.root / PID).read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        # nginx rewrites its title to "nginx: master process <argv>": ours names our config.
        title = cmdline.replace(b"\0", b" ")
        ours = str(self.root / CONF).encode()
        return pid if title.startswith(b"nginx: master process") and ours in title else None

    def workers(self) -> set[int]:
        master = self.master()
        return set() if master is None else _children(master)

    def orphans(self) -> set[int]:
        """Workers of ours whose master died (killed alone): they still hold the port. Known
        by the access log they keep open, which is this endpoint's."""
        ours = str(self.root / ACCESS_LOG)
        found: set[int] = set()
        for entry in os.listdir("/proc"):
            if entry.isdigit() and _title(int(entry)).startswith(b"nginx: worker process"):
                with contextlib.suppress(OSError):
                    fds = os.listdir(f"/proc/{entry}/fd")
                    if any(_link(f"/proc/{entry}/fd/{fd}") == ours for fd in fds):
                        found.add(int(entry))
        return found - self.workers()

    def _test(self, text: str) -> None:
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        new = self.root / f"{CONF}.new"
        new.write_text(text)
        done = subprocess.run(
            [*self._argv(f"{CONF}.new"), "-t", "-q"], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise StepFailed(f"nginx refused the config mlsteps wrote: {_tail(done.stderr)}")
        new.replace(self.root / CONF)

    def start(self, text: str, listen: int) -> None:
        """Write the config and start nginx (a daemon: it outlives mlsteps, the endpoint stays
        up between deploys). A port in use is a ConfigError naming ``listen``."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)  # its logs hold request ids
        self._test(text)
        for pid in self.orphans():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        done = subprocess.run(self._argv(), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            said = done.stderr + _read_tail(self.root / ERROR_LOG)
            self.stop()  # a master that half started (there should be none) goes too
            if "Address already in use" in said or "(98:" in said:
                raise ConfigError(
                    f"--listen {listen}: 127.0.0.1:{listen} is in use by another program, so "
                    "the endpoint's proxy cannot listen there. Choose a free port with --listen."
                )
            raise StepFailed(f"nginx did not start: {_tail(said)}")
        if _wait(lambda: self.master() is not None, 10) is False:
            raise StepFailed(f"nginx did not start: {_tail(_read_tail(self.root / ERROR_LOG))}")

    def reload(self, text: str, timeout: float = 30.0) -> set[int]:
        """Test and apply a new config gracefully. Returns once new requests follow it (every
        old worker has stopped taking requests); the result is the old workers, which finish
        their requests in flight and exit (``drain``)."""
        self._test(text)
        master = self.master()
        if master is None:
            raise StepFailed("nginx is not running: the endpoint's proxy must be started first")
        old = _children(master)
        os.kill(master, signal.SIGHUP)

        def applied() -> bool:
            now = _children(master)
            return bool(now - old) and all(
                _title(pid).endswith(b"is shutting down") or pid not in now for pid in old
            )

        if not _wait(applied, timeout):
            raise StepFailed(
                f"nginx did not apply its new config within {timeout:g} s: "
                f"{_tail(_read_tail(self.root / ERROR_LOG))}"
            )
        return old

    def drain(self, old: set[int], timeout: float) -> bool:
        """Wait until the old workers have exited, i.e. no request is in flight on what the
        previous config served. False when ``timeout`` passed first."""
        return _wait(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in old), timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (SIGQUIT: requests in flight finish), then for good. Idempotent."""
        master = self.master()
        if master is None:
            return
        workers = _children(master)
        with contextlib.suppress(ProcessLookupError):
            os.kill(master, signal.SIGQUIT)
        if not _wait(lambda: not os.path.exists(f"/proc/{master}"), timeout):
            for pid in (master, *workers):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            _wait(lambda: not os.path.exists(f"/proc/{master}"), 5)


def _children(ppid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == ppid:
                found.add(int(entry))
    return found


def _title(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").strip()
    except OSError:
        return b""


def _link(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def _wait(ready: object, timeout: float) -> bool:
    assert callable(ready)
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def _read_tail(path: Path) -> str:
    try:
        with path.open("rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - 2000))
            return log.read().decode(errors="replace")
    except OSError:
        return ""


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-3:])[-600:] or "(nginx said nothing)"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def check_port(port: int) -> None:
    """A port in use is bad input (exit 2): found before any container is started."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            why = (
                "is in use by another program"
                if exc.errno == errno.EADDRINUSE
                else f"cannot be bound by this user ({exc.strerror}; ports below 1024 need root)"
            )
            raise ConfigError(
                f"--listen {port}: 127.0.0.1:{port} {why}, so the endpoint's proxy cannot "
                "listen there. Choose a free port above 1023 with --listen."
            ) from None
