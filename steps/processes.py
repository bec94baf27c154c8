"""The local backend: the training command as a process on this machine, streamed like a
container's log and stopped the same way on timeout or cancel."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from steps import signals
from steps.errors import ConfigError
from steps.signals import STOP_GRACE


@dataclass(frozen=True)
class ProcessOutcome:
    exit_code: int
    timed_out: bool
    log_tail: list[str]


def run_process(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None,
    timeout: float | None,
    on_line: Callable[[str], None],
) -> ProcessOutcome:
    tail: collections.deque[str] = collections.deque(maxlen=30)
    try:
        # A session of its own: stopping it reaches the command's children too.
        proc = subprocess.Popen(
            list(command),
            env=dict(env),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise ConfigError(
            f"command {command[0]!r} not found. Check the command after -- (or train.command)."
        ) from None
    except NotADirectoryError:
        raise ConfigError(f"--workdir {cwd}: not a directory.") from None
    except PermissionError:
        raise ConfigError(
            f"command {command[0]!r} is not executable. Make it executable (chmod +x) or run it "
            "through its interpreter, e.g. -- python train.py."
        ) from None

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            tail.append(line)
            on_line(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            code = _stop(proc)
    finally:
        if proc.poll() is None:
            with signals.shielded(deliver=False):
                _stop(proc)
    reader.join(timeout=5)
    return ProcessOutcome(code, timed_out, list(tail))


def _stop(proc: subprocess.Popen[bytes]) -> int:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        return proc.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait()
    except ProcessLookupError:
        return proc.wait()
