"""The private files of ``secrets fetch``: the values file and the lease record, and how
``secrets revoke`` reads a record back without trusting more of it than fetch wrote.

A lease record says what to revoke and which files to remove. Anyone who can put a file where
revoke looks (a repository can commit ``.mlsteps/secrets/lease-x.json``) could otherwise make
revoke delete any file this user may delete, or send a token to a server of their choosing.
So revoke takes a record only when it is what fetch writes: a regular file (not a symlink),
owned by this user, mode 0600 — another user cannot make one of those, but a checkout or an
unpacked archive can (git and tar under `umask 077` give 0600 files of ours). So a record is
not trusted to name a file by path alone: revoke removes a listed file only while it still is
the file fetch wrote — the same inode on the same device, regular, ours, 0600, and the same
content (its SHA-256, which only whoever holds the file's content can know). Before its name
is removed the file is emptied through the descriptor that was checked, so a hard link made
elsewhere keeps no value.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steps.core.errors import ConfigError

RECORD_VERSION = 2
# A record holds a token, a few lease ids and paths: anything near this size is not one.
MAX_RECORD_BYTES = 1 << 20
TLS_KEYS = ("ca-cert", "client-cert", "client-key")
# Vault holds a few MiB of secrets at most: a listed file larger than this is not fetch's.
MAX_VALUES_BYTES = 64 << 20


@dataclass(frozen=True)
class FileIdentity:
    path: str
    device: int
    inode: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "device": self.device,
            "inode": self.inode,
            "sha256": self.sha256,
        }


@dataclass(frozen=True, kw_only=True)
class LeaseRecord:
    url: str
    namespace: str | None
    token: str | None
    token_owned: bool
    leases: tuple[str, ...]
    files: tuple[FileIdentity, ...]
    tls: Mapping[str, Any]  # ca-cert, client-cert, client-key (paths or None), tls-skip-verify


def make_private_parents(path: Path) -> None:
    """Create the missing parents of path, each 0700: a new directory holding secret files
    tells no one else even their names (mkdir(parents=True) gives the upper ones 0755)."""
    missing = []
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)


def write_private(path: Path, text: str) -> FileIdentity:
    """Write text readable by this user only (0600), atomically: never a moment of 0644.
    Returns the identity of the file written, which revoke checks before removing it."""
    make_private_parents(path)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            info = os.fstat(out.fileno())
        os.replace(tmp, path)  # the inode moves with the name
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return FileIdentity(str(path.resolve()), info.st_dev, info.st_ino, digest)


def record_text(
    *,
    url: str,
    namespace: str | None,
    token: str | None,
    token_owned: bool,
    leases: Sequence[str],
    files: Sequence[FileIdentity],
    tls: Mapping[str, Any],
) -> str:
    record = {
        "version": RECORD_VERSION,
        "url": url,
        "namespace": namespace,
        "token": token,
        "token_owned": token_owned,
        "leases": list(leases),
        "files": [f.to_json() for f in files],
        "tls": dict(tls),
    }
    return json.dumps(record, indent=2) + "\n"


def _not_private(info: os.stat_result) -> str | None:
    """Why a file is not one this user wrote privately, or None when it is."""
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_uid != os.geteuid():
        return f"owned by uid {info.st_uid}, not by this user (uid {os.geteuid()})"
    if stat.S_IMODE(info.st_mode) != 0o600:
        return f"of mode {stat.S_IMODE(info.st_mode):04o}, not 0600"
    return None


def _refuse(path: Path, why: str) -> ConfigError:
    return ConfigError(
        f"--lease-file {path}: refused, {why}. secrets fetch writes its records 0600 and owned "
        "by the user who ran it; this one was not written that way (a record in a repository, "
        "or changed since), so nothing was revoked or removed. Delete it if it is not yours, "
        "or give the record fetch wrote with --lease-file."
    )


def load_record(path: Path) -> LeaseRecord | None:
    """The record at path, checked (exit 2 naming why when it is not fetch's); None when there
    is no such file (already revoked)."""
    try:
        # O_NOFOLLOW: a symlink is refused, never followed to a file someone else chose.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if os.path.islink(path):
            raise _refuse(path, "it is a symbolic link") from None
        raise ConfigError(
            f"--lease-file {path}: cannot read it ({exc.strerror}). Give the record that "
            "secrets fetch wrote (its lease-file output)."
        ) from None
    with os.fdopen(fd, "rb") as handle:
        why = _not_private(os.fstat(fd))
        if why:
            raise _refuse(path, f"it is {why}")
        data = handle.read(MAX_RECORD_BYTES + 1)
    if len(data) > MAX_RECORD_BYTES:
        raise _malformed(path, f"larger than {MAX_RECORD_BYTES} bytes")
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _malformed(path, f"not JSON ({exc})") from None
    return _parse(path, raw)


def _malformed(path: Path, why: str) -> ConfigError:
    return ConfigError(
        f"--lease-file {path}: not a lease record of this mlsteps ({why}); nothing was revoked "
        "or removed. Give the record that `secrets fetch` wrote (its lease-file output), or "
        "revoke its leases with the Vault CLI and delete it."
    )


def _parse(path: Path, raw: Any) -> LeaseRecord:
    if not isinstance(raw, dict):
        raise _malformed(path, "not a JSON object")
    if raw.get("version") != RECORD_VERSION:
        raise _malformed(path, f"version {raw.get('version')!r}, expected {RECORD_VERSION}")

    def typed(key: str, kinds: tuple[type, ...], what: str) -> Any:
        value = raw.get(key)
        # bool is an int in Python: a device number of `true` is no device number.
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise _malformed(path, f"{key!r} must be {what}")
        return value

    url = typed("url", (str,), "a URL")
    if not url.startswith(("http://", "https://")) or "@" in url:
        raise _malformed(path, "'url' must be an http(s) URL without credentials")
    leases = typed("leases", (list,), "a list of lease ids")
    if not all(isinstance(lease, str) and lease for lease in leases):
        raise _malformed(path, "'leases' must be a list of lease ids")
    tls = typed("tls", (dict,), "an object")
    for key in TLS_KEYS:
        if not isinstance(tls.get(key), (str, type(None))):
            raise _malformed(path, f"'tls.{key}' must be a path or null")
    if not isinstance(tls.get("tls-skip-verify", False), bool):
        raise _malformed(path, "'tls.tls-skip-verify' must be true or false")
    files = []
    for entry in typed("files", (list,), "a list"):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("path"), str)
            and os.path.isabs(entry["path"])
            and all(
                isinstance(entry.get(k), int) and not isinstance(entry.get(k), bool)
                for k in ("device", "inode")
            )
            and isinstance(entry.get("sha256"), str)
            and len(entry["sha256"]) == 64
        ):
            raise _malformed(
                path, "each of 'files' must be {path (absolute), device, inode, sha256}"
            )
        files.append(FileIdentity(entry["path"], entry["device"], entry["inode"], entry["sha256"]))
    return LeaseRecord(
        url=url,
        namespace=typed("namespace", (str, type(None)), "a string or null"),
        token=typed("token", (str, type(None)), "a string or null"),
        token_owned=typed("token_owned", (bool,), "true or false"),
        leases=tuple(leases),
        files=tuple(files),
        tls=tls,
    )


def check_files(path: Path, record: LeaseRecord) -> None:
    """Refuse the record (exit 2) when a file it lists is there but is not the file fetch
    wrote: replaced (by a symlink to a file someone wants gone, say), changed, or never ours."""
    for file in record.files:
        fd, why = _open_checked(file)
        if fd is not None:
            os.close(fd)
        if why:
            raise ConfigError(
                f"--lease-file {path}: its file {file.path} is now {why}, so it is not removed; "
                "nothing was revoked or removed. Someone replaced it after fetch: check who, "
                "remove it yourself if it is yours, then run revoke again."
            )


def remove_files(record: LeaseRecord) -> list[str]:
    """Remove the record's files that are still the ones fetch wrote (check_files ran first),
    checked once more through the descriptor then used: emptied first (a hard link to it
    elsewhere then holds nothing), then its name removed from the directory that was opened,
    only while that name still is the file (unlink removes a name, never a link's target).
    Returns why a file could not be removed (it is emptied all the same)."""
    problems = []
    for file in record.files:
        fd, why = _open_checked(file)
        if fd is None:
            continue
        if why:
            os.close(fd)
            continue
        try:
            os.ftruncate(fd, 0)
            parent = os.open(os.path.dirname(file.path), os.O_RDONLY | os.O_DIRECTORY)
            try:
                name = os.path.basename(file.path)
                info = os.stat(name, dir_fd=parent, follow_symlinks=False)
                if (info.st_dev, info.st_ino) == (file.device, file.inode):
                    os.unlink(name, dir_fd=parent)
            finally:
                os.close(parent)
        except FileNotFoundError:
            pass
        except OSError as exc:  # the leases must still be revoked
            problems.append(f"{file.path} was emptied but not removed ({exc.strerror})")
        finally:
            os.close(fd)
    return problems


def _open_checked(file: FileIdentity) -> tuple[int | None, str | None]:
    """(a descriptor of file, None) when it is the file fetch wrote; (None, None) when it is
    gone; (None or a descriptor, why) when it is something else."""
    try:
        info = os.lstat(file.path)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"a file that cannot be checked ({exc.strerror})"
    # Looked at before it is opened: opening a device or a FIFO can have effects of its own.
    why = _not_private(info)
    if why is None and (info.st_dev, info.st_ino) != (file.device, file.inode):
        why = "another file than the one fetch wrote (its inode changed)"
    if why:
        return None, why
    try:
        fd = os.open(file.path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"a file that cannot be checked ({exc.strerror})"
    info = os.fstat(fd)
    why = _not_private(info)
    if why is None and (info.st_dev, info.st_ino) != (file.device, file.inode):
        why = "another file than the one fetch wrote (its inode changed)"
    if why is None and _digest(fd, info.st_size) != file.sha256:
        why = "a file of other content than fetch wrote (changed since, or never fetch's)"
    return fd, why


def _digest(fd: int, size: int) -> str | None:
    if size > MAX_VALUES_BYTES:  # larger than any values file fetch writes: not one
        return None
    digest, offset = hashlib.sha256(), 0
    while chunk := os.pread(fd, 1 << 16, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()
