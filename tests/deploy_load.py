"""A client load for deploy's tests: ``rate`` requests/s through an endpoint from a pool of
threads, keeping every outcome, so a test can say that no request failed while traffic moved
and which answers clients saw."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import requests


class Outcome(NamedTuple):
    time: float
    status: object  # the HTTP status, or the exception's name when there was no answer
    predictions: Any  # None without a JSON answer
    sent: Any  # the request body, decoded


class Load:
    def __init__(
        self, url: str, body: Callable[[], bytes], rate: float = 80, threads: int = 8
    ) -> None:
        self.url, self.body = url, body
        self.interval, self.threads = threads / rate, threads
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._pool = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        session = requests.Session()
        headers = {"Content-Type": "application/json"}
        next_at = time.monotonic()
        while not self._stop.is_set():
            sent = self.body()
            try:
                answer = session.post(
                    f"{self.url}/invocations", data=sent, headers=headers, timeout=10
                )
                try:
                    predictions = answer.json().get("predictions")
                except ValueError:
                    predictions = None
                outcome = Outcome(time.time(), answer.status_code, predictions, json.loads(sent))
            except requests.RequestException as exc:
                outcome = Outcome(time.time(), type(exc).__name__, None, json.loads(sent))
            self.outcomes.append(outcome)
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def __enter__(self) -> Load:
        self.started = time.monotonic()
        for thread in self._pool:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._pool:
            thread.join(timeout=20)
        self.seconds = time.monotonic() - self.started

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status != 200]

    def rate(self) -> float:
        return len(self.outcomes) / self.seconds
