"""The promotion lock: one holder at a time per model, across processes (and, with Vault or
DynamoDB, across machines).

MLflow has no atomic alias swap, so promote and rollback read the champion, compare it and
move it while holding one of these. Each backend keeps a record of who holds the lock and
until when: a holder that died without releasing (a killed machine) leaves a record that
expires after the TTL and is then taken over, with a warning naming it.

- ``FileLock``: ``flock`` on a file, for runs on one machine. The kernel frees the lock when
  its process dies, so only a live but stuck holder can go stale.
- ``VaultLock``: a KV v2 key written with check-and-set: of two writers that read the same
  version, exactly one write succeeds.
- ``DynamoDbLock``: a conditional PutItem (absent or expired), a conditional DeleteItem (still
  ours) to release.

hvac and boto3 are imported only when a Vault or DynamoDB lock is made.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from steps import signals
from steps.errors import ConfigError, StepFailed

if TYPE_CHECKING:
    from steps.vault import Vault

KINDS = ("file", "vault", "dynamodb")
DYNAMODB_KEY = "LockID"  # the partition key Terraform's lock tables use: one table serves both
BACKOFF_BASE = 0.05
BACKOFF_CAP = 2.0
# A holder does not start moving aliases with less than this left of its lease.
SAFETY_MARGIN = 5.0


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

    def check_still_held(self) -> None:
        """Before a write: a lease about to run out could be taken over while we write."""
        if self.remaining() < SAFETY_MARGIN:
            raise StepFailed(
                f"the lock {self.where} expires in {duration(self.remaining())}, too soon to "
                "move the aliases safely: this run took longer than --lock-ttl allows. Raise "
                "--lock-ttl and run again."
            )

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


# ----- file ----------------------------------------------------------------------------------


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


# ----- Vault KV v2 ---------------------------------------------------------------------------


class VaultLock(Lock):
    kind = "vault"
    REQUEST_BUDGET = 30.0  # per attempt and for the release, Vault's own retries included

    def __init__(self, vault: Vault, path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vault = vault
        self.path = path.strip("/")
        self._api: str | None = None  # MOUNT/data/KEY, found on first use

    @property
    def where(self) -> str:
        return f"Vault KV {self.path} at {self.vault.connection.url}"

    def _data_path(self) -> str:
        if self._api is None:
            mount = self.vault.mount_of(self.path)
            if mount is None:  # the token may not look mounts up: the first segment, as usual
                head, _, key = self.path.partition("/")
                mount_path = head + "/"
            else:
                if mount.type != "kv" or mount.kv_version != 2:
                    kind = f"KV v{mount.kv_version}" if mount.kv_version else mount.type
                    raise ConfigError(
                        f"--lock-path {self.path}: {mount.path} is a {kind} mount, but the vault "
                        "lock needs KV v2 (its check-and-set write). Give a path on a KV v2 "
                        "mount, e.g. secret/mlsteps/locks/MODEL."
                    )
                mount_path, key = mount.path, self.path[len(mount.path) :]
            if not key:
                raise ConfigError(
                    f"--lock-path {self.path}: give MOUNT/PATH of a KV v2 key, e.g. "
                    "secret/mlsteps/locks/MODEL, not the mount alone."
                )
            self._api = f"{mount_path}data/{key}"
        return self._api

    def _read(self) -> tuple[int, Record | None]:
        """(the key's current version, 0 when it never existed; its record)."""
        api = self._data_path()
        status, body = self.vault.call("GET", api, what=f"reading the lock {self.path}")
        data = body.get("data") or {}
        version = int((data.get("metadata") or {}).get("version") or 0)
        if status == 404:  # absent, or its latest version deleted (then CAS needs that version)
            return version, None
        self._check(status, body, "read")
        return version, Record.from_json(data.get("data"))

    def _write(self, version: int, payload: Mapping[str, Any]) -> bool:
        """CAS write; False when another writer got there first."""
        status, body = self.vault.call(
            "POST",
            self._data_path(),
            what=f"writing the lock {self.path}",
            json={"options": {"cas": version}, "data": dict(payload)},
        )
        if status == 400 and "check-and-set" in " ".join(map(str, body.get("errors") or [])):
            return False
        self._check(status, body, "write")
        return True

    def _check(self, status: int, body: Mapping[str, Any], doing: str) -> None:
        if status < 400:
            return
        errors = "; ".join(str(e) for e in body.get("errors") or []) or "no details"
        if status == 403:
            raise StepFailed(
                f"Vault refused to {doing} the lock {self.path} (permission denied): the token "
                f'needs a policy with `path "{self._data_path()}" {{ capabilities = ["create", '
                '"read", "update"] }`. Check MLSTEPS_PROMOTE_VAULT_TOKEN / VAULT_TOKEN.'
            )
        if status == 404 or "no handler for route" in errors:
            raise ConfigError(
                f"--lock-path {self.path}: Vault has no KV v2 mount there ({errors}). Enable "
                "one (`vault secrets enable -version=2 -path=MOUNT kv`) or give MOUNT/PATH on "
                "an existing KV v2 mount."
            )
        raise StepFailed(
            f"Vault answered {status} to the {doing} of the lock {self.path}: {errors}"
        )

    def _attempt(self, record: Record) -> Attempt:
        self.vault.restart_clock(self.REQUEST_BUDGET)
        version, held = self._read()
        if held is not None and held.holder == record.holder:
            return Attempt(True)  # our own write, whose answer was lost and retried
        if held is not None and not held.expired(time.time()):
            return Attempt(False, held)
        if self._write(version, record.to_json()):
            return Attempt(True, held)
        return Attempt(False, None)

    def _release(self, record: Record) -> None:
        self.vault.restart_clock(self.REQUEST_BUDGET)
        version, held = self._read()
        if held is None or held.holder != record.holder:
            self._lost(held)
            return
        released = {"holder": "", "released": time.time(), "released-by": record.holder}
        if not self._write(version, released):
            self._lost(None)

    def _lost(self, held: Record | None) -> None:
        by = held.describe(time.time()) if held else "another holder"
        self.on_warning(
            f"the lock {self.where} was no longer ours to release: {by} took it over (this run "
            "outlived its --lock-ttl)."
        )


# ----- DynamoDB ------------------------------------------------------------------------------


class DynamoDbLock(Lock):
    kind = "dynamodb"

    def __init__(self, table: str, item: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.item = item
        self._client: Any = None

    @property
    def where(self) -> str:
        return f"DynamoDB table {self.table} item {DYNAMODB_KEY}={self.item}"

    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config
            from botocore.exceptions import NoRegionError

            config = Config(
                connect_timeout=10, read_timeout=10, retries={"mode": "standard", "max_attempts": 4}
            )
            try:
                self._client = boto3.client("dynamodb", config=config)
            except NoRegionError:
                raise ConfigError(
                    "--lock dynamodb: no AWS region is set. Set AWS_REGION (or "
                    "AWS_DEFAULT_REGION, or a region in the AWS profile) to the region of the "
                    f"table {self.table}."
                ) from None
        return self._client

    def _call(self, operation: str, **kwargs: Any) -> Any:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            NoCredentialsError,
        )

        try:
            return getattr(self.client(), operation)(TableName=self.table, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                raise
            if code == "ResourceNotFoundException":
                raise ConfigError(
                    f"--lock-path {self.table}: no such DynamoDB table in this account and "
                    "region. mlsteps does not create it; create it once with: aws dynamodb "
                    f"create-table --table-name {self.table} --attribute-definitions "
                    f"AttributeName={DYNAMODB_KEY},AttributeType=S --key-schema "
                    f"AttributeName={DYNAMODB_KEY},KeyType=HASH --billing-mode PAY_PER_REQUEST"
                ) from None
            message = exc.response.get("Error", {}).get("Message", "")
            hint = ""
            if code in ("AccessDeniedException", "UnrecognizedClientException"):
                hint = (
                    " The credentials need dynamodb:PutItem, GetItem and DeleteItem on the table."
                )
            raise StepFailed(
                f"DynamoDB refused {operation} on the lock table {self.table}: {code} "
                f"{message[:300]}.{hint}"
            ) from None
        except NoCredentialsError:
            raise ConfigError(
                "--lock dynamodb: no AWS credentials found. Give them the usual way "
                "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or a role)."
            ) from None
        except BotoCoreError as exc:
            raise StepFailed(
                f"cannot reach DynamoDB for the lock table {self.table}: {exc}"
            ) from None

    def _key(self) -> dict[str, Any]:
        return {DYNAMODB_KEY: {"S": self.item}}

    def _get(self) -> Record | None:
        got = self._call("get_item", Key=self._key(), ConsistentRead=True)
        return _from_item(got.get("Item"))

    def _attempt(self, record: Record) -> Attempt:
        from botocore.exceptions import ClientError

        item = {
            **self._key(),
            "holder": {"S": record.holder},
            "purpose": {"S": record.purpose},
            "acquired": {"N": repr(record.acquired)},
            # Epoch seconds: a table with DynamoDB's TTL on `expires` clears dead locks itself.
            "expires": {"N": repr(record.expires)},
        }
        try:
            put = self._call(
                "put_item",
                Item=item,
                ConditionExpression="attribute_not_exists(#k) OR #e < :now OR #h = :me",
                ExpressionAttributeNames={"#k": DYNAMODB_KEY, "#e": "expires", "#h": "holder"},
                ExpressionAttributeValues={
                    ":now": {"N": repr(time.time())},
                    ":me": {"S": record.holder},
                },
                ReturnValues="ALL_OLD",
            )
        except ClientError:  # the condition failed: held, and not expired
            return Attempt(False, self._get())
        old = _from_item(put.get("Attributes"))
        return Attempt(True, old if old is not None and old.holder != record.holder else None)

    def _release(self, record: Record) -> None:
        from botocore.exceptions import ClientError

        try:
            self._call(
                "delete_item",
                Key=self._key(),
                ConditionExpression="#h = :me",
                ExpressionAttributeNames={"#h": "holder"},
                ExpressionAttributeValues={":me": {"S": record.holder}},
            )
        except ClientError:
            held = self._get()
            by = held.describe(time.time()) if held else "another holder"
            self.on_warning(
                f"the lock {self.where} was no longer ours to release: {by} took it over "
                "(this run outlived its --lock-ttl)."
            )


def _from_item(item: Mapping[str, Any] | None) -> Record | None:
    if not item:
        return None
    return Record.from_json(
        {
            "holder": item.get("holder", {}).get("S"),
            "purpose": item.get("purpose", {}).get("S"),
            "acquired": item.get("acquired", {}).get("N"),
            "expires": item.get("expires", {}).get("N"),
        }
    )
