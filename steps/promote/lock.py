"""The lock promote and rollback hold while they move aliases, of the backend --lock chooses
(steps/locks/). hvac or boto3 load only for those backends, when the lock is made.
"""

from __future__ import annotations

from typing import Any

from steps.core.runtime import Runtime
from steps.locks import DynamoDbLock, FileLock, Lock, VaultLock
from steps.promote.options import PromoteConfig


def make_lock(config: PromoteConfig, runtime: Runtime, purpose: str) -> Lock:
    face = runtime.get_face()
    options: dict[str, Any] = {
        "ttl": config.lock_ttl,
        "timeout": config.lock_timeout,
        "purpose": purpose,
        "on_wait": lambda line: face.progress("lock", line),
        "on_warning": face.warning,
    }
    if config.lock == "file":
        return FileLock(config.lock_path, **options)
    if config.lock == "dynamodb":
        return DynamoDbLock(config.lock_path, f"mlsteps/promote/{config.model_name}", **options)
    from steps.services.vault import Connection, Vault

    assert config.vault_url and config.vault_token is not None
    face.mask(config.vault_token.reveal())
    connection = Connection(
        url=config.vault_url,
        namespace=config.vault_namespace,
        ca_cert=config.vault_ca_cert,
        timeout=VaultLock.REQUEST_BUDGET,
    )
    vault = Vault(connection, on_retry=face.detail, token=config.vault_token)
    return VaultLock(vault, config.lock_path, **options)
