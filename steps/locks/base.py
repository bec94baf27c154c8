"""The lock every backend shares: the holder's record, the acquire loop with its jittered
backoff, the timeout and lease checks, and release on every way out. Separate from the backends
so each of them (file, vault, dynamodb) is only its own ``_attempt`` and ``_release``, and so
this module imports nothing beyond the standard library.
"""

from __future__ import annotations

import os
import random
import secrets
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from steps.core import signals
from steps.core.errors import StepFailed

KINDS = ("file", "vault", "dynamodb")
BACKOFF_BASE = 0.05
BACKOFF_CAP = 2.0
# A holder gives up waiting on a write this long before its lease ends: the time a request
# already sent may still take to land (no backend can fence a write the server applies late).
SAFETY_MARGIN = 5.0
# ...and does not start a write it cannot give at least this long.
MIN_WRITE_TIME = 1.0


def new_holder_id() -> str:
    """host:pid:random; the random part tells apart two holders that reuse a pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s" if rest else f"{minutes}m"
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes % 60 else f"{minutes // 60}h"


@dataclass(frozen=True)
class Record:
    """What a lock says about its holder."""

    holder: str  # new_holder_id(); "" when released
    purpose: str  # e.g. "mlsteps promote of version 9 of 'churn'"
    acquired: float  # epoch seconds
    expires: float

    def expired(self, now: float) -> bool:
        return self.expires < now

    def describe(self, now: float) -> str:
        host, _, rest = self.holder.partition(":")
        pid = rest.partition(":")[0]
        who = f"{host} (pid {pid})" if pid else self.holder or "an unknown holder"
        purpose = f"{self.purpose} on " if self.purpose else ""
        return f"{purpose}{who}, taken {duration(now - self.acquired)} ago"

    def to_json(self) -> dict[str, Any]:
        return {
            "holder": self.holder,
            "purpose": self.purpose,
            "acquired": self.acquired,
            "expires": self.expires,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Record | None:
        """None for no record, a released one, or one that cannot be read."""
        if not data or not data.get("holder"):
            return None
        try:
            return cls(
                holder=str(data["holder"]),
                purpose=str(data.get("purpose") or ""),
                acquired=float(data.get("acquired") or 0),
                expires=float(data["expires"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class Attempt:
    acquired: bool
    # Not acquired: who holds it (None when unknown, e.g. a write lost a race just now).
    # Acquired: the expired record this attempt took over, if any.
    record: Record | None = None


class LockTimeout(StepFailed):
    """Another holder kept the lock for all of --lock-timeout (exit 1)."""


class Lock(ABC):
    """acquire() waits (with jittered backoff) until the lock is ours or the timeout passes;
    release() gives it back and is safe to call twice. Used as a context manager, the lock
    is released on every way out, signals included."""

    kind = ""

    def __init__(
        self,
        *,
        ttl: float,
        timeout: float,
        purpose: str = "",
        on_wait: Callable[[str], None] = lambda line: None,
        on_warning: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.ttl = ttl
        self.timeout = timeout
        self.purpose = purpose
        self.holder = new_holder_id()
        self.on_wait = on_wait
        self.on_warning = on_warning
        self.record: Record | None = None  # ours, while held

    @property
    @abstractmethod
    def where(self) -> str:
        """The lock as a person finds it: a file path, a Vault key, a DynamoDB item."""

    @abstractmethod
    def _attempt(self, record: Record) -> Attempt:
        """Try once to make ``record`` the lock's record."""

    @abstractmethod
    def _release(self, record: Record) -> None:
        """Give the lock back if ``record`` is still its record."""

    @property
    def held(self) -> bool:
        return self.record is not None

    def _new_record(self) -> Record:
        now = time.time()
        return Record(self.holder, self.purpose, now, now + self.ttl)

    def acquire(self) -> None:
        started = time.monotonic()
        tries = 0
        last: Record | None = None
        while True:
            tries += 1
            record = self._new_record()
            # A signal between the write and noting it down would leave the lock held with
            # nobody to release it: the attempt is shielded, the signal comes right after.
            with signals.shielded():
                attempt = self._attempt(record)
                if attempt.acquired:
                    self.record = record
            if attempt.acquired:
                if attempt.record is not None:
                    self.on_warning(
                        f"took over the stale lock {self.where} held by "
                        f"{attempt.record.describe(time.time())}: it expired "
                        f"{duration(time.time() - attempt.record.expires)} ago without being "
                        "released (--lock-ttl), so its holder is taken to be dead or stuck."
                    )
                return
            last = attempt.record or last
            waited = time.monotonic() - started
            if waited >= self.timeout:
                raise LockTimeout(self._timeout_message(last, waited))
            who = last.describe(time.time()) if last else "another process"
            self.on_wait(f"waiting for the lock {self.where} held by {who} ({duration(waited)})")
            delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(tries, 10)) * random.uniform(0.5, 1)
            time.sleep(max(0.01, min(delay, self.timeout - waited)))

    def _timeout_message(self, last: Record | None, waited: float) -> str:
        now = time.time()
        if last is not None:
            held = f"is held by {last.describe(now)} (it expires in {duration(last.expires - now)})"
        else:
            held = "stayed busy (other processes kept winning it)"
        return (
            f"gave up waiting for the lock {self.where} after {duration(waited)} "
            f"(--lock-timeout): it {held}. Another promotion of this model is running: run this "
            "one again when it has ended, or raise --lock-timeout. A holder that died holds it "
            "until its --lock-ttl has passed; then it is taken over."
        )

    def remaining(self) -> float:
        """Seconds left of our lease (0 when not held)."""
        return max(0.0, self.record.expires - time.time()) if self.record else 0.0

    def write_timeout(self, wanted: float) -> float:
        """Right before each write under the lock: the request timeout it may have, ``wanted``
        at most, so that it ends (or is given up) SAFETY_MARGIN before the lease does; a
        lease running out sooner would be taken over while we write, so then no write starts.
        """
        left = self.remaining() - SAFETY_MARGIN
        if self.record is None or left < MIN_WRITE_TIME:
            raise StepFailed(
                f"the lock {self.where} "
                + (f"expires in {duration(self.remaining())}" if self.record else "is not held")
                + ", too soon to write to the registry safely: this run took longer than "
                "--lock-ttl allows. Raise --lock-ttl and run again."
            )
        return min(wanted, left)

    def release(self) -> None:
        record, self.record = self.record, None
        if record is not None:
            self._release(record)

    def __enter__(self) -> Lock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with signals.shielded(deliver=exc is None):
            self.release()
