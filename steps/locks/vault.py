"""``VaultLock``: a KV v2 key written with check-and-set, so of two writers that read the same
version exactly one write succeeds. Separate because it speaks Vault's KV v2 API through the
steps.services.vault client it is given (so it imports no HTTP library itself) and names Vault's
policies and mounts in its errors.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from steps.core.errors import ConfigError, StepFailed
from steps.locks.base import Attempt, Lock, Record

if TYPE_CHECKING:
    from steps.services.vault import Vault


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
