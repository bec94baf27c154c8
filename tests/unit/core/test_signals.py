"""Signals held during cleanup are delivered afterwards, never lost (steps/core/signals.py)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from steps.core import signals


@pytest.fixture()
def handlers() -> Iterator[None]:
    saved = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    signals.install()
    yield
    signal.signal(signal.SIGINT, saved[0])
    signal.signal(signal.SIGTERM, saved[1])


def test_signal_outside_a_shield_cancels_at_once(handlers: None) -> None:
    with pytest.raises(signals.Cancelled) as caught:
        os.kill(os.getpid(), signal.SIGTERM)
    assert caught.value.exit_code == 143


def test_signal_during_a_shield_is_delivered_when_it_closes(handlers: None) -> None:
    finished = []
    with pytest.raises(signals.Cancelled) as caught, signals.shielded():
        os.kill(os.getpid(), signal.SIGINT)
        finished.append("cleanup ran to the end")
    assert finished == ["cleanup ran to the end"]
    assert caught.value.exit_code == 130


def test_cleanup_during_another_error_keeps_that_error(handlers: None) -> None:
    with pytest.raises(ValueError, match="the real failure"):
        try:
            raise ValueError("the real failure")
        finally:
            with signals.shielded(deliver=False):
                os.kill(os.getpid(), signal.SIGTERM)
    # nothing is left held for later
    with signals.shielded():
        pass
