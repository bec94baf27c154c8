"""``FileLock``: ``flock`` on a file, for runs on one machine, and the stale-holder takeover
that unlinks a file whose flock cannot be broken (under a guard file, PATH.takeover, that every
attempt holds, so that a takeover is atomic). Separate because it is the only backend that
works on the local file system (and the only one with no service to reach).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from steps.errors import ConfigError
from steps.locks.base import Attempt, Lock, Record


class FileLock(Lock):
    kind = "file"

    def __init__(self, path: str | Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def where(self) -> str:
        return f"file {self.path}"

    def _open(self, path: str | Path) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(
                f"--lock-path {self.path}: cannot create the lock file ({exc.strerror}). Give "
                "a path in a directory this user may write."
            ) from None

    def _attempt(self, record: Record) -> Attempt:
        """Try once, under the guard: every acquisition and every takeover of this lock
        happens while holding the guard file's flock, so a takeover's look at the record and
        its unlink are one step that no acquisition can come between. (Without it, a waiter
        that saw a stale record could unlink the file after its holder released it and a new
        holder took it: two holders.) Releasing needs no guard: a takeover that then unlinks a
        free file only makes the next file."""
        import fcntl

        guard = self._open(f"{self.path}.takeover")
        try:
            try:
                fcntl.flock(guard, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another attempt is under way: microseconds, try again
                return Attempt(False, None)
            return self._attempt_guarded(record)
        finally:
            os.close(guard)  # closing drops the flock

    def _attempt_guarded(self, record: Record) -> Attempt:
        import fcntl

        fd = self._open(self.path)
        taken_over: Record | None = None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held = _read_record(fd)
            if held is None or not held.expired(time.time()):
                os.close(fd)
                return Attempt(False, held)
            # Alive but stuck past its lease: its flock cannot be broken, so the file is
            # unlinked and a new one made at the same path. Under the guard, the record read
            # is still the one in the file: no one else can have taken it meanwhile.
            os.close(fd)
            self.path.unlink()
            taken_over = held
            fd = self._open(self.path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: no one has it...
            except BlockingIOError:  # ...unless a process outside this protocol took it
                os.close(fd)
                return Attempt(False, None)
        # A dead holder's record may still be in the file (the kernel freed its flock):
        # overwritten, it was never a lock.
        payload = json.dumps(record.to_json()).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, payload, 0)
        self._fd = fd
        return Attempt(True, taken_over)

    def _release(self, record: Record) -> None:
        import fcntl

        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # released: no holder to name
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _read_record(fd: int) -> Record | None:
    try:
        data = os.pread(fd, 4096, 0)
        return Record.from_json(json.loads(data)) if data else None
    except (OSError, ValueError):
        return None  # being written right now, or not ours: an unknown holder, never stale
