"""``secrets exec``: run a command with the secrets in its environment, its output masked.

Loaded only by a real run. The values exist only in the command's environment; what the command
prints passes through the face's masking (Jenkins and a terminal have no masker of their own),
fenced on GitHub so the command cannot issue workflow commands.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO, TextIO

from steps.ci.base import Face
from steps.core import signals
from steps.core.errors import ConfigError, MlstepsError
from steps.core.plan import Action, Plan
from steps.core.runtime import Runtime, StepResult
from steps.secrets.options import SecretsConfig
from steps.secrets.run import Session, apply_plan

# mlsteps' own names for the login credentials; the VAULT_* ones are the user's and stay, since
# a command may well use the Vault CLI with them.
LOGIN_CREDENTIALS = frozenset(
    f"MLSTEPS_SECRETS_{name}" for name in ("TOKEN", "ROLE_ID", "SECRET_ID", "JWT")
)
# Bytes of one line of a command's output held for masking before they are shown anyway.
MAX_PENDING = 1 << 20


class CommandExited(MlstepsError):
    """``secrets exec``'s command failed: mlsteps exits with the command's own code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def run_exec(config: SecretsConfig, plan: Plan, runtime: Runtime, command: list[str]) -> StepResult:
    session = Session(config, runtime)
    face = session.face
    exit_code: list[int] = []

    def run_command(action: Action) -> None:
        # The command gets the secrets, not the credentials that read them.
        env = {k: v for k, v in config.environ.items() if k not in LOGIN_CREDENTIALS}
        env.update({name: value.reveal() for name, value in session.values.items()})
        # On GitHub the command could print workflow commands (::add-mask::, ::set-env…) of
        # its own: its output is fenced like train's log.
        with face.untrusted_lines():
            exit_code.append(run_child(command, env, face))

    applied = apply_plan(
        plan,
        session,
        {"process.exec": run_command, "vault.revoke": lambda action: session.revoke(action)},
    )
    code = exit_code[0]
    if code != 0:
        raise CommandExited(f"{command[0]} exited with code {code}", code)
    return StepResult({"names": ",".join(session.values)}, applied=tuple(applied))


def run_child(command: Sequence[str], env: Mapping[str, str], face: Face) -> int:
    """Run command with our stdin; its stdout and stderr pass through the face's masking (a
    value it prints shows as *** on every runner, Jenkins and a terminal included). Its stdout
    goes where the face's own lines go: stderr with --json (stdout carries the one result
    object), except on GitHub, whose runner reads workflow commands (the fence) from stdout
    only in order: a line of the command on another stream could pass the fence's end."""
    try:
        proc = subprocess.Popen(
            list(command), env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except FileNotFoundError:
        raise ConfigError(
            f"command {command[0]!r} not found. Check the command after --."
        ) from None
    except PermissionError:
        raise ConfigError(f"command {command[0]!r} is not executable.") from None
    assert proc.stdout is not None and proc.stderr is not None
    output = _Output(face)
    pumps = [
        threading.Thread(target=_pump, args=(source, sink, output, name), daemon=True)
        for source, sink, name in (
            (proc.stdout, face.out, "stdout"),
            (proc.stderr, face.err, "stderr"),
        )
    ]
    for pump in pumps:
        pump.start()
    try:
        code = proc.wait()
    except signals.Cancelled as cancel:
        with signals.shielded(deliver=False):
            proc.send_signal(cancel.signum)
            try:
                proc.wait(timeout=signals.STOP_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        raise
    finally:
        # A grandchild holding the pipes open must not hold up the end: one grace for both.
        deadline = time.monotonic() + signals.STOP_GRACE
        for pump in pumps:
            pump.join(timeout=max(0.0, deadline - time.monotonic()))
        output.close(lingering=any(pump.is_alive() for pump in pumps))
    return 128 - code if code < 0 else code  # a signal N shows as -N


class _Output:
    """Where the command's output goes, shared by the stdout and stderr pumps: one line is
    written at a time, and after close() nothing is. On GitHub the fence ends right after,
    so a background process of the command that writes later would be read as workflow
    commands; and its lines would land amid mlsteps' own."""

    def __init__(self, face: Face) -> None:
        self.face = face
        self._lock = threading.Lock()
        self._closed = False
        self._open_line: dict[int, str] = {}  # sink → the stream whose line is not ended

    def write(self, sink: TextIO, data: bytes, stream: str) -> None:
        with self._lock:
            if self._closed:
                return
            # The other stream left a line open in this sink (one console on GitHub): end
            # it, or the two lines run together ("partial" + "::TOKEN::" is no command).
            if self._open_line.get(id(sink), stream) != stream:
                data = b"\n" + data
            target = getattr(sink, "buffer", None)
            sink.flush()
            if target is not None:
                target.write(data)
                target.flush()
            else:  # a stream without bytes underneath (a test's StringIO)
                sink.write(data.decode("utf-8", "replace"))
                sink.flush()
            if data.endswith((b"\n", b"\r")):
                self._open_line.pop(id(sink), None)
            else:
                self._open_line[id(sink)] = stream

    def close(self, *, lingering: bool) -> None:
        with self._lock:
            self._closed = True
            # A last line without its end would swallow mlsteps' next line; on GitHub that
            # is the fence's end, which the runner then does not see at a line's start.
            for sink in {
                id(self.face.out): self.face.out,
                id(self.face.err): self.face.err,
                id(sys.stderr): sys.stderr,
            }.values():
                if id(sink) in self._open_line:
                    try:
                        sink.write("\n")
                        sink.flush()
                    except BrokenPipeError:  # nobody reads it any more (`| head`)
                        pass
        if lingering:
            self.face.warning(
                "the command has ended, but a process it started still holds its output "
                "open; what that process prints from now on is not shown."
            )


def _pump(source: IO[bytes], sink: TextIO, output: _Output, stream: str) -> None:
    """Copy the command's output masked, a line at a time (a \r ends one too, so progress
    bars move). Bytes that are not UTF-8 pass unchanged (surrogateescape): binary output
    survives. A line too long to hold is shown in parts cut where no masked value crosses."""
    face = output.face

    def emit(piece: bytes) -> None:
        if not piece:
            return
        text = face.scrub(piece.decode("utf-8", "surrogateescape"))
        output.write(sink, text.encode("utf-8", "surrogateescape"), stream)

    pending = b""
    with source:
        try:
            while chunk := source.read1(1 << 16):  # type: ignore[attr-defined]
                *lines, pending = re.split(b"(?<=[\r\n])", pending + chunk)
                emit(b"".join(lines))  # the whole lines read, at once: fast output stays fast
                if len(pending) > MAX_PENDING:  # a line without end: shown, not held forever
                    text = pending.decode("utf-8", "surrogateescape")
                    cut = face.cut_for_scrub(text)
                    emit(text[:cut].encode("utf-8", "surrogateescape"))
                    pending = text[cut:].encode("utf-8", "surrogateescape")
            if pending:
                emit(pending)
        except BrokenPipeError:
            # Our own output was closed (`mlsteps secrets exec -- cmd | head`): closing the
            # pipe lets the command see it too, as it would without mlsteps in between.
            return
