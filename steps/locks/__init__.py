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

from steps.locks.base import (
    BACKOFF_BASE,
    BACKOFF_CAP,
    KINDS,
    SAFETY_MARGIN,
    Attempt,
    Lock,
    LockTimeout,
    Record,
    duration,
    new_holder_id,
)
from steps.locks.dynamodb import DYNAMODB_KEY, DynamoDbLock
from steps.locks.file import FileLock
from steps.locks.vault import VaultLock

__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "DYNAMODB_KEY",
    "KINDS",
    "SAFETY_MARGIN",
    "Attempt",
    "DynamoDbLock",
    "FileLock",
    "Lock",
    "LockTimeout",
    "Record",
    "VaultLock",
    "duration",
    "new_holder_id",
]
