"""Fixtures the secrets tests share: a command line against the session's OpenBao server
(tests/integration/test_secrets.py's Cli), and a leased database credential to read."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests import services, vault_setup
from tests.integration.test_secrets import Cli


@pytest.fixture
def cli(vault_server: services.VaultServer, tmp_path: Path) -> Cli:
    return Cli(vault_server, tmp_path, uuid.uuid4().hex[:8])


@pytest.fixture
def dynamic(cli: Cli, redis_server: services.RedisServer) -> tuple[str, str, str, str]:
    """A database role leasing Redis users, and an AppRole that may read it:
    (creds path, approle mount, role id, secret id)."""
    creds = vault_setup.dynamic_creds_role(
        cli.vault, redis_server, role="reader", mount=f"db-{cli.uid}", ttl="10m"
    )
    name = vault_setup.read_policy(cli.vault, f"creds-{cli.uid}", [creds])
    mount = f"approle-{cli.uid}"
    role_id, secret_id = vault_setup.approle(cli.vault, "trainer", [name], mount=mount)
    cli.hide(role_id=role_id, secret_id=secret_id)
    return creds, mount, role_id, secret_id
