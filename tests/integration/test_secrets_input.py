"""Bad input to `mlsteps secrets`: exit 2 with one paragraph naming the option and the fix, no
traceback, fast, nothing asked of Vault and nothing left behind. Each case is the input as a
user (or an attacker) gives it, run through the real CLI."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests import services
from tests import vault_setup as vs
from tests.integration.test_secrets import Cli, Done, expect_values

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


@pytest.mark.parametrize("where", ["flag", "env", "flag-beside-a-line"])
def test_the_documented_list_form_pins_versions_as_a_flag_and_a_variable(
    cli: Cli, where: str
) -> None:
    path = f"{cli.uid}/ml/db"
    for n in (1, 2, 3):
        cli.put("secret", path, {"password": f"pw-{cli.uid}-v{n}"})
    listed = (
        f"[{{path: secret/{path}, key: password, env: FIRST, version: 1}}, "
        f'{{"path": "secret/{path}", "key": "password", "env": "SECOND", "version": 2}}]'
    )
    env: dict[str, str | None] = dict(cli.reader())
    args = ["--secrets", listed]
    if where == "env":
        env["MLSTEPS_SECRETS_SECRETS"], args = listed, []
    elif where == "flag-beside-a-line":
        args += ["--secrets", f"secret/{path} password | LATEST"]
    names = ["FIRST", "SECOND"] + (["LATEST"] if where == "flag-beside-a-line" else [])
    done = cli.run("secrets", "exec", *args, "--", *cli.child(*names), env=env)
    expected = {"FIRST": f"pw-{cli.uid}-v1", "SECOND": f"pw-{cli.uid}-v2"}
    if where == "flag-beside-a-line":
        expected["LATEST"] = f"pw-{cli.uid}-v3"
    expect_values(done, expected)


def test_a_missing_path_on_a_mount_that_is_not_kv_names_its_engine(cli: Cli) -> None:
    done = cli.run(
        "secrets", "exec", "--secrets", "cubbyhole/nothing-here key", "--", "true",
        env=cli.reader(),
    )  # fmt: skip
    assert done.code == 1, done
    assert "secret cubbyhole/nothing-here: nothing there (cubbyhole engine at cubbyhole/)" in (
        done.err
    ), done
    assert "vNone" not in done.err
