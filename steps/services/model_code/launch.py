"""Running a model's code in a process without the job's credentials.

Loading an MLflow model runs code whoever logged the model wrote (a pickle, cloudpickle, its
``loader_module`` and ``code_paths``), and the steps that load one -- package's host reference
(steps/package/smoke.py) and ``gate --data`` (steps/services/model_code/runner.py) -- hold the job's
credentials: the registry password, tokens, cloud and MLflow credentials. Both start that code
through ``launch()``: an environment built from an allow-list with a HOME of its own, and where
this user may create user namespaces, PID, network and IPC namespaces of its own.
"""

from __future__ import annotations

import functools
import os
import shutil
import site
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# What loading and running a model needs from the environment, by name: where programs and
# modules are, language settings and thread counts. Nothing else passes.
ALLOWED = frozenset(
    {"PATH", "LANG", "LANGUAGE", "TZ", "PYTHONPATH", "PYTHONHASHSEED",
     "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"}
)  # fmt: skip

# Said where the model's code ran without namespaces (isolation() found none allowed).
WITHOUT_NAMESPACES = "as this user, without namespaces of its own: none allowed here"


def environment(environ: Mapping[str, str], home: Path) -> dict[str, str]:
    """The allow-listed environment, with a HOME and temporary directory of its own, so that
    no library finds this user's credential files through HOME either."""
    env = {k: v for k, v in environ.items() if k in ALLOWED or k.startswith("LC_")}
    place = str(home)
    # Packages installed with pip --user live under the real home: keep them importable.
    user_base = {"PYTHONUSERBASE": site.getuserbase()}
    return {**env, **user_base, "HOME": place, "TMPDIR": place, "TMP": place, "TEMP": place}


# The environment is not all: run as this user, the model's code could still read this job's
# variables from /proc/PARENT/environ (and the runner's), reach the Docker socket (root on this
# machine), loopback services and a cloud's metadata endpoint. Where this user may create user
# namespaces, it runs in PID, network and IPC namespaces of its own: its /proc shows no other
# process, no network leads anywhere, and /run (the Docker socket's directory) is an empty
# tmpfs, mounted by an outer namespace so that the model's code cannot unmount it. Its files
# stay this user's: see README, "What packaging trusts".
_OUTER = ("--user", "--map-root-user", "--mount", "--pid", "--fork", "--mount-proc", "--net",
          "--ipc", "--kill-child")  # fmt: skip
_HIDE_RUN = (
    'unset PWD; for d in /run /var/run; do if [ -d "$d" ] && [ ! -L "$d" ]; then '
    'mount -t tmpfs -o mode=755 tmpfs "$d" || exit 97; fi; done; '
    'exec "$0" --user --map-root-user --mount "$@"'
)


@functools.cache
def isolation() -> tuple[str, ...]:
    """The command prefix that runs a process in namespaces of its own, or () where user
    namespaces are not allowed (some CI hosts) or util-linux's unshare is missing."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    prefix = (unshare, *_OUTER, "sh", "-c", _HIDE_RUN, unshare)
    try:
        probe = subprocess.run(
            [*prefix, "sh", "-c", "test ! -e /run/docker.sock && test ! -e /proc/2"],
            capture_output=True, timeout=15, env={"PATH": os.environ.get("PATH", "")},
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return prefix if probe.returncode == 0 else ()


@dataclass(frozen=True)
class Launch:
    """How to start a process that runs a model's code: its command, its environment, and
    whether it gets namespaces of its own. Start it in a session of its own and kill its whole
    group: in namespaces, the model's process is unshare's child."""

    argv: list[str]
    env: dict[str, str]
    isolated: bool


def launch(
    argv: Sequence[str], home: Path, extra: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Launch:  # fmt: skip
    """ARGV run with environment() (HOME in ``home``, plus ``extra``, which the caller writes
    and so holds no credential) in the namespaces of isolation() where it can have them."""
    prefix = isolation()
    env = environment(os.environ if environ is None else environ, home)
    return Launch([*prefix, *argv], {**env, **(extra or {})}, bool(prefix))
