"""``FileLock``: ``flock`` on a file, for runs on one machine, and the stale-holder takeover
that unlinks a file whose flock cannot be broken. Separate because it is the only backend that
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

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(
                f"--lock-path {self.path}: cannot create the lock file ({exc.strerror}). Give "
                "a path in a directory this user may write."
            ) from None

    def _attempt(self, record: Record) -> Attempt:
        import fcntl

        taken_over: Record | None = None
        for _ in range(5):  # each turn: the file at path was replaced under us
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                held = _read_record(fd)
                inode = os.fstat(fd).st_ino
                os.close(fd)
                if held is None or not held.expired(time.time()):
                    return Attempt(False, held)
                # Alive but stuck past its lease: its flock cannot be broken, so the file is
                # unlinked and the next turn locks a new one at the same path.
                if self._unlink_if(inode):
                    taken_over = held
                continue
            if not self._is_current(fd):  # someone unlinked it between our open and flock
                os.close(fd)
                continue
            # A dead holder's record may still be in the file (the kernel freed its flock):
            # overwritten, it was never a lock.
            payload = json.dumps(record.to_json()).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, payload, 0)
            self._fd = fd
            return Attempt(True, taken_over)
        return Attempt(False, None)

    def _is_current(self, fd: int) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def _unlink_if(self, inode: int) -> bool:
        """Unlink the lock file if it is still the one with this inode. Two waiters that both
        saw it stale do this one after the other under a guard lock: the second finds a new
        file there and leaves it."""
        import fcntl

        guard = os.open(f"{self.path}.takeover", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(guard, fcntl.LOCK_EX)
            try:
                if os.stat(self.path).st_ino != inode:
                    return False
                self.path.unlink()
            except FileNotFoundError:
                return False
            return True
        finally:
            os.close(guard)  # closing drops the flock

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
