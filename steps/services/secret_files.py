"""Secrets handed to the training as files on tmpfs: ``/run/secrets/NAME``, with ``NAME_FILE``
naming the path (the Docker secrets convention).

Why files: a container's environment is part of its configuration, and ``docker inspect`` shows
that configuration to anyone who can talk to the Docker daemon. A bind mount shows only its
path. The values never go through argv, build args or an image layer either: the files live on
the host, in a private directory on tmpfs (so they never reach a disk), and are bind-mounted
read-only into the container.

Permissions, and why:

    /dev/shm/mlsteps-secrets-XXXX/        0700, ours   other host users cannot enter it
        owner.json                        0600         who wrote it, for the sweep after a kill -9
        run/                              0555         bind-mounted read-only at /run/secrets
            NAME                          0444

The training may run as any uid (``--user 1234:1234``, or the image's USER, or a name only the
image knows), and giving the files to that uid would need root on the host. So the files are
world-readable (mode 0444, Docker Swarm's default for secrets) inside a directory that is not:
a bind mount hands the container ``run/`` itself, so the container never passes through the
0700 parent, while on the host everyone but us (and root, who can read anything of ours, e.g.
through ``docker exec``) is stopped by that parent. ``run/`` and the files are read-only, so the
training cannot change or add to what the next reader sees.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from steps.core.errors import StepFailed

CONTAINER_DIR = "/run/secrets"
PREFIX = "mlsteps-secrets-"
SHM = "/dev/shm"
# A directory without its owner file is one whose writer died within microseconds of making it.
_ORPHAN_AGE = 60.0


def file_variable(name: str) -> str:
    return f"{name}_FILE"


def _fs_type(path: str) -> str:
    """The file system type of the mount holding ``path`` (the longest mount point above it)."""
    best, kind = "", ""
    try:
        with open("/proc/self/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) < 3:
                    continue
                point = fields[1].replace("\\040", " ")
                inside = path == point or path.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best, kind = point, fields[2]
    except OSError:
        return ""
    return kind


def base_dir() -> tuple[str, bool]:
    """(where the private directory goes, whether that is tmpfs): /dev/shm when it is a
    writable tmpfs, else the temp directory (which may be a disk)."""
    shm = os.path.realpath(SHM)
    if _fs_type(shm) == "tmpfs" and os.access(shm, os.W_OK | os.X_OK):
        return SHM, True
    temp = tempfile.gettempdir()
    return temp, _fs_type(os.path.realpath(temp)) == "tmpfs"


@dataclass(frozen=True)
class SecretFiles:
    root: Path  # the private 0700 directory
    names: tuple[str, ...]

    @property
    def dir(self) -> Path:
        """The directory holding one file per secret (bind-mounted at /run/secrets)."""
        return self.root / "run"

    def env(self, *, in_container: bool) -> dict[str, str]:
        """NAME_FILE → the path the training opens: in the container, or on this host."""
        where = CONTAINER_DIR if in_container else str(self.dir)
        return {file_variable(name): f"{where}/{name}" for name in self.names}

    def remove(self) -> str | None:
        """Delete the directory; None when done (or already gone), else why not."""
        return _remove_tree(self.root)


def _remove_tree(root: Path) -> str | None:
    try:
        # The read-only inner directory would refuse the unlinks of a non-root owner.
        os.chmod(root / "run", 0o700)
    except FileNotFoundError:
        pass
    except OSError as exc:
        return f"{root}: {exc.strerror}"
    try:
        shutil.rmtree(root)
    except FileNotFoundError:
        pass
    except OSError as exc:
        return f"{root}: {exc.strerror}"
    return None


def write(values: Mapping[str, bytes], base: str, owner: Mapping[str, str]) -> SecretFiles:
    """Write one file per secret into a new private directory under ``base``. On a failure the
    directory is removed before the error is raised. Callers shield this from signals, so the
    directory is either not made or handed back for removal."""
    root = Path(tempfile.mkdtemp(prefix=PREFIX, dir=base))  # mode 0700, owned by us
    files = SecretFiles(root, tuple(values))
    try:
        _write_private(root / "owner.json", json.dumps(dict(owner)).encode(), 0o600)
        files.dir.mkdir(mode=0o700)
        for name, value in values.items():
            _write_private(files.dir / name, value, 0o444)
        os.chmod(files.dir, 0o555)
    except OSError as exc:
        _remove_tree(root)
        raise StepFailed(
            f"could not write the secret files under {base} ({exc.strerror}). Free space there "
            "(or set TMPDIR to a writable directory when /dev/shm is not a writable tmpfs)."
        ) from None
    return files


def _write_private(path: Path, data: bytes, mode: int) -> None:
    # Created 0600 and only opened up once complete: no reader sees a partial value.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def sweep(base: str, say: Callable[[str], None]) -> list[str]:
    """Remove secret directories under ``base`` left by mlsteps processes of this user that are
    gone (a kill -9 runs no cleanup); like the container sweep, live owners are left alone."""
    from steps.services.containers import owner_alive

    removed = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return []
    host = os.uname().nodename
    for entry in entries:
        if not entry.name.startswith(PREFIX):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not entry.is_dir(follow_symlinks=False) or info.st_uid != os.geteuid():
            continue
        root = Path(entry.path)
        try:
            owner = json.loads((root / "owner.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            owner = None
        if owner is None:
            if time.time() - info.st_mtime < _ORPHAN_AGE:
                continue  # being written right now
        elif owner_alive(owner, host):
            continue
        if _remove_tree(root) is None:
            removed.append(entry.name)
    if removed:
        say(f"removed {len(removed)} secret directory(ies) left by mlsteps runs that died")
    return removed
