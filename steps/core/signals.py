"""Cancellation as CI systems really do it.

GitHub sends SIGINT to the step's process, SIGTERM 7.5 s later and SIGKILL 2.5 s after;
Jenkins sends SIGTERM to the whole process tree. Both become ``Cancelled`` raised in the
main thread, so ``finally`` blocks stop containers and close MLflow runs. While that cleanup
runs, later signals are held back: the second signal of GitHub's schedule must not abort
the cleanup the first one started.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Cancelled(BaseException):
    """A signal asked the step to stop. BaseException, like KeyboardInterrupt, so that no
    ``except Exception`` in a library can swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


# Seconds between SIGTERM and SIGKILL when mlsteps stops a container or a process. Docker's
# default of 10 s outlasts GitHub's 7.5 s between its SIGINT and SIGTERM; cleanup must fit.
STOP_GRACE = 3

_shield_depth = 0
_held: list[int] = []


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _shield_depth:
        _held.append(signum)
        return
    raise Cancelled(signum)


def install() -> None:
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)


@contextmanager
def shielded(*, deliver: bool = True) -> Iterator[None]:
    """Run cleanup without being interrupted by signals. A signal that came meanwhile is
    raised when the outermost shield closes (``deliver``), so it is never lost; cleanup that
    runs while another exception is already on its way out passes ``deliver=False``."""
    global _shield_depth
    _shield_depth += 1
    try:
        yield
    finally:
        _shield_depth -= 1
    if _shield_depth == 0 and _held:
        signum = _held[0]
        _held.clear()
        if deliver:
            raise Cancelled(signum)
