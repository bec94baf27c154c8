"""``FileLock``: ``flock`` on a file, for runs on one machine, and the stale-holder takeover
that unlinks a file whose flock cannot be broken (under a guard file, PATH.takeover, that every
attempt holds, so that a takeover is atomic). Separate because it is the only backend that
works on the local file system (and the only one with no service to reach).
"""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

from steps.core.errors import ConfigError
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
        """The lock or guard file, refused unless it is a regular file of this user's: the
        record is written into it, so a link planted in a shared directory (/tmp) would make
        this user overwrite the file it points to, and another user's file could be held or
        rewritten by them at will."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            why = "a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
            raise ConfigError(
                f"--lock-path {self.path}: cannot create the lock file {path} ({why}). Give "
                "a path in a directory only this user may write."
            ) from None
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid():
            return fd
        os.close(fd)
        why = (
            "not a regular file"
            if not stat.S_ISREG(info.st_mode)
            else (f"owned by user id {info.st_uid}, not this user ({os.geteuid()})")
        )
        raise ConfigError(
            f"--lock-path {self.path}: the lock file {path} is {why}: someone else could hold "
            "or rewrite it. Give a path in a directory only this user may write (the default "
            "is in this user's cache directory)."
        )

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
