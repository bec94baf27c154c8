"""Run ``steps.cli.main`` in this process, as a shell would run ``mlsteps``: its own
environment, working directory and streams, its exit code caught. About a hundred times faster
than a subprocess, which the property tests need; test_cli.py checks the real entry point."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from steps.cli import main


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str
    seconds: float  # wall clock: a hang
    cpu_seconds: float  # this process's own work, whatever else the machine is doing


@contextlib.contextmanager
def _environment(env: Mapping[str, str], cwd: Path) -> Iterator[None]:
    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    saved_signals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        for signum, handler in saved_signals.items():
            signal.signal(signum, handler)


def base_env() -> dict[str, str]:
    """This environment without the developer's MLSTEPS_* settings or a CI's markers."""
    drop = ("MLSTEPS_", "GITHUB_", "JENKINS_", "MLFLOW_", "VAULT_", "BAO_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop) and k != "CI"}


def run(args: list[str], *, cwd: Path, env: Mapping[str, str] | None = None) -> Ran:
    out, err = io.StringIO(), io.StringIO()
    start, cpu_start = time.monotonic(), time.process_time()
    code = -1
    with (
        _environment(base_env() if env is None else env, cwd),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            main(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    wall, cpu = time.monotonic() - start, time.process_time() - cpu_start
    return Ran(code, out.getvalue(), err.getvalue(), wall, cpu)
