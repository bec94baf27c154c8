"""TLS to Vault against a real OpenBao dev server with its own CA (`bao server -dev-tls`): the CA
from --ca-cert or VAULT_CACERT is trusted; without it the step says how to give it; with
--tls-skip-verify it works and warns once; a CA file that is not there is bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import services
from tests import vault_setup as vs

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def tls_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.VaultServer]:
    vault = services.start_vault(tmp_path_factory.mktemp("tls-vault"), tls=True)
    yield vault
    vault.server.stop()


def run(vault: services.VaultServer, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "MLSTEPS_"))}
    base.update(VAULT_ADDR=vault.addr, **env)
    return subprocess.run(
        [sys.executable, "-m", "steps", "--ci", "local", "secrets", "exec", *args],
        capture_output=True, text=True, env=base, timeout=60,
    )  # fmt: skip


def test_tls_with_the_servers_ca_and_without_it(tls_vault: services.VaultServer) -> None:
    ca = tls_vault.root / "tls" / "vault-ca.pem"
    value = "tls-secret-" + os.urandom(4).hex()
    # (the bao CLI writes it: tests/vault_setup.py speaks plain http)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "bao"), "kv", "put", "secret/ml/db", f"pw={value}"],
        env={**os.environ, "VAULT_ADDR": tls_vault.addr, "VAULT_TOKEN": "root",
             "VAULT_CACERT": str(ca)},
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    child = ["--", sys.executable, "-c", "import os; print(len(os.environ['PW']))"]
    request = ["--secrets", "secret/ml/db pw | PW"]
    for how in (["--ca-cert", str(ca)], []):  # the flag, then VAULT_CACERT
        extra = {} if how else {"VAULT_CACERT": str(ca)}
        ok = run(tls_vault, *how, *request, *child, VAULT_TOKEN="root", **extra)
        assert ok.returncode == 0, ok.stderr
        assert str(len(value)) in ok.stdout.split(), ok.stdout

    untrusted = run(tls_vault, *request, *child, VAULT_TOKEN="root")
    assert untrusted.returncode == 1, untrusted.stderr
    assert "TLS to Vault at https://127.0.0.1:" in untrusted.stderr
    assert "certificate verify failed" in untrusted.stderr
    assert "--ca-cert (env VAULT_CACERT)" in untrusted.stderr
    assert "Traceback" not in untrusted.stderr

    skipped = run(tls_vault, "--tls-skip-verify", "true", *request, *child, VAULT_TOKEN="root")
    assert skipped.returncode == 0, skipped.stderr
    assert skipped.stderr.count("warning: --tls-skip-verify") == 1
    assert "InsecureRequestWarning" not in skipped.stderr

    missing = run(tls_vault, "--ca-cert", "/nonexistent/ca.pem", *request, *child)
    assert missing.returncode == 2
    assert "--ca-cert '/nonexistent/ca.pem' is not valid: expected an existing PEM file" in (
        missing.stderr
    )
    assert "Traceback" not in missing.stderr


def test_revoke_reaches_the_server_with_the_fetchs_tls_settings(
    tls_vault: services.VaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cleanup step (`if: always()`, `finally`) gives no TLS options: the record keeps the
    CA path the fetch used, so the revoke still verifies the server."""
    ca = tls_vault.root / "tls" / "vault-ca.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))  # for the test's own hvac/requests calls
    policy = vs.read_policy(tls_vault, "tls-reader", ["secret/data/ml/*"])
    role_id, secret_id = vs.approle(tls_vault, "tls-ci", [policy])
    vs.put_kv(tls_vault, "secret", "ml/api", {"token": "tls-" + os.urandom(4).hex()})
    lease = tmp_path / "lease.json"
    fetched = subprocess.run(
        [sys.executable, "-m", "steps", "--ci", "local", "secrets", "fetch",
         "--method", "approle", "--ca-cert", str(ca), "--secrets", "secret/ml/api token",
         "--file", str(tmp_path / "api.env"), "--lease-file", str(lease)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={**os.environ, "VAULT_ADDR": tls_vault.addr, "VAULT_ROLE_ID": role_id,
             "VAULT_SECRET_ID": secret_id},
    )  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr
    token = json.loads(lease.read_text())["token"]
    assert vs.token_works(tls_vault, token)
    revoked = subprocess.run(
        [sys.executable, "-m", "steps", "--ci", "local", "secrets", "revoke",
         "--lease-file", str(lease)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "REQUESTS_"))},
    )  # fmt: skip
    assert revoked.returncode == 0, revoked.stderr
    assert not vs.token_works(tls_vault, token)
    assert not lease.exists() and not (tmp_path / "api.env").exists()
