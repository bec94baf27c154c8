"""The local backend: the training command as a process on this machine, streamed like a
container's log and stopped the same way on timeout or cancel."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from steps.core import signals
from steps.core.errors import ConfigError
from steps.core.signals import STOP_GRACE


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

    assert proc.stdout is not None
    chunks = ((chunk, None) for chunk in iter(proc.stdout.readline, b""))
    reader = threading.Thread(target=pump_lines, args=(chunks, on_line, tail), daemon=True)
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


def pump_lines(
    stream: Iterable[tuple[bytes | None, bytes | None]],
    on_line: Callable[[str], None],
    tail: collections.deque[str],
) -> None:
    """Split the demultiplexed (stdout, stderr) chunks into lines, one buffer per stream, so a
    partial line on one stream is never glued to a line of the other."""
    buffers = [b"", b""]

    def emit(raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        tail.append(line)
        on_line(line)

    try:
        for chunks in stream:
            for index, chunk in enumerate(chunks):
                if chunk:
                    *lines, buffers[index] = (buffers[index] + chunk).split(b"\n")
                    for raw in lines:
                        emit(raw)
    except Exception:  # noqa: BLE001 - the container went away under us: the wait reports it
        pass
    for rest in buffers:
        if rest:
            emit(rest)
