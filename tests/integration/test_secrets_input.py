"""Bad input to `mlsteps secrets`: exit 2 with one paragraph naming the option and the fix, no
traceback, fast, nothing asked of Vault and nothing left behind. Each case is the input as a
user (or an attacker) gives it, run through the real CLI."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests import services
from tests import vault_setup as vs
from tests.integration.test_secrets import Cli, Done

pytestmark = pytest.mark.services

PASSWORD = "p@ss/w0rd@x"  # an @ and a / of its own: the shapes that slipped past redact_url


@pytest.fixture
def cli(vault_server: services.VaultServer, tmp_path: Path) -> Cli:
    return Cli(vault_server, tmp_path, uuid.uuid4().hex[:8])


def bad_input(done: Done, *needles: str) -> None:
    assert done.code == 2, done
    for needle in needles:
        assert needle in done.err, done
    assert "Traceback" not in done.err and "unexpected error" not in done.err, done
    assert done.seconds < 10, done


@pytest.mark.parametrize("where", ["flag", "env", "revoke-flag", "dry-run"])
def test_credentials_in_the_vault_url_are_refused_and_never_shown(cli: Cli, where: str) -> None:
    url = f"http://admin:{PASSWORD}@{vs.unused_address().removeprefix('http://')}"
    cli.hide(password=PASSWORD)
    base = ["--secrets", "secret/ml/db password"]
    env: dict[str, str | None] = {"VAULT_TOKEN": "some-token"}
    if where == "flag":
        done = cli.run("secrets", "exec", "--url", url, *base, "--", "true", env=env)
        source = "from flag --url"
    elif where == "env":
        done = cli.run("secrets", "exec", *base, "--", "true", env={**env, "VAULT_ADDR": url})
        source = "from env VAULT_ADDR"
    elif where == "revoke-flag":
        done = cli.run("secrets", "revoke", "--url", url, env=env)
        source = "from flag --url"
    else:
        done = cli.run("--dry-run", "secrets", "fetch", "--url", url, *base, "--file", "x.env")
        source = "from flag --url"
    bad_input(done, f"--url ({source}) holds credentials", "VAULT_TOKEN or --token-file")
    assert "admin" not in done.out + done.err and "w0rd" not in done.out + done.err
    assert list(cli.cwd.iterdir()) == [], "nothing is left behind"
