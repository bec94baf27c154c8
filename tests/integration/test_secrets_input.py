"""Bad input to `mlsteps secrets`: exit 2 with one paragraph naming the option and the fix, no
traceback, fast, nothing asked of Vault and nothing left behind. Each case is the input as a
user (or an attacker) gives it, run through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import vault_setup as vs
from tests.integration.test_secrets import Cli, Done, expect_values

pytestmark = pytest.mark.services

PASSWORD = "p@ss/w0rd@x"  # an @ and a / of its own: the shapes that slipped past redact_url


def bad_input(done: Done, *needles: str) -> None:
    shown = done.err + done.out  # the GitHub face prints ::error:: lines on stdout
    assert done.code == 2, done
    for needle in needles:
        assert needle in shown, done
    assert "Traceback" not in shown and "unexpected error" not in shown, done
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


# --- files and values that are not what they claim: each is exit 2 before any request --------


# The URL is a port nothing listens on: a check made after the login would end in exit 1.
def offline(cli: Cli, extra: dict[str, str | None] | None = None) -> dict[str, str | None]:
    return {"VAULT_ADDR": vs.unused_address(), "VAULT_TOKEN": "some-token", **(extra or {})}


CREDENTIAL_FILES = [
    ("token-file", "token", []),
    ("role-id-file", "approle", ["--secret-id-file", "{ok}"]),
    ("secret-id-file", "approle", ["--role-id-file", "{ok}"]),
    ("jwt-file", "jwt", ["--role", "ci"]),
]


@pytest.mark.parametrize("content", ["endless", "binary"])
@pytest.mark.parametrize(("option", "method", "more"), CREDENTIAL_FILES)
def test_a_credential_file_that_is_not_a_credential(
    cli: Cli, option: str, method: str, more: list[str], content: str
) -> None:
    ok = cli.cwd / "ok"
    ok.write_text("fine\n")
    # Refused by the option's own check (steps/values.parse_token_file), before anything runs.
    if content == "endless":
        path, why = "/dev/zero", "expected a small text file (this is not a regular file)"
    else:
        path, why = str(cli.cwd / "binary"), "expected a UTF-8 text file"
        Path(path).write_bytes(b"\xff\xfe\x00token\x80")
    args = [a.format(ok=ok) for a in more]
    done = cli.run(
        "secrets", "exec", "--method", method, f"--{option}", path, *args,
        "--secrets", "secret/ml/db password", "--", "true", env=offline(cli, {"VAULT_TOKEN": None}),
    )  # fmt: skip
    bad_input(done, f"--{option} '{path}' is not valid: {why}")


def test_an_endless_kubernetes_token_is_refused_before_the_login(cli: Cli) -> None:
    done = cli.run(
        "secrets", "exec", "--method", "kubernetes", "--role", "ci",
        "--kubernetes-token-path", "/dev/zero", "--secrets", "secret/ml/db password",
        "--", "true", env=offline(cli, {"VAULT_TOKEN": None}),
    )  # fmt: skip
    bad_input(
        done,
        "--kubernetes-token-path '/dev/zero' is not valid: expected a small text file (this is "
        "not a regular file)",
    )


# The first three are refused by the option's own check (steps/values.parse_pem_file); the
# last looks like PEM and is refused when loaded as the HTTP library will load it.
NOT_PEM = "--{option} '{path}' is not valid: expected a PEM file"


@pytest.mark.parametrize(
    ("option", "content", "why"),
    [
        ("ca-cert", None, NOT_PEM + " (this is not a regular file)"),
        ("ca-cert", b"not a certificate\n", NOT_PEM + " (-----BEGIN … blocks); this one is not"),
        ("ca-cert", b"\xff\xfe\x00\x80", NOT_PEM + " (-----BEGIN … blocks); this one is not"),
        ("client-cert", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
         "--{option} {path}: no certificate with its private key could be loaded (from flag "
         "--{option})"),
    ],
)  # fmt: skip
def test_a_tls_file_that_cannot_be_used(
    cli: Cli, option: str, content: bytes | None, why: str
) -> None:
    path = cli.cwd / option
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    base = ["--secrets", "secret/ml/db password", "--", "true"]
    for subcommand in (["exec", f"--{option}", str(path), *base],
                       ["revoke", f"--{option}", str(path)]):  # fmt: skip
        done = cli.run("secrets", *subcommand, env=offline(cli))
        bad_input(done, why.format(option=option, path=path))


@pytest.mark.parametrize("case", ["file-dir", "file-under-a-file", "lease-dir", "long-name",
                                  "github-env-dir", "github-env-unset", "world-writable",
                                  "lease-world-writable"])  # fmt: skip
def test_an_output_path_that_cannot_be_written_is_refused_before_the_login(
    cli: Cli, case: str
) -> None:
    (cli.cwd / "adir").mkdir()
    (cli.cwd / "afile").write_text("")
    env = offline(cli)
    args = ["--file", "values.env"]
    if case == "file-dir":
        args, message = ["--file", "adir"], f"--file {cli.cwd / 'adir'}: a directory, not a file"
    elif case == "file-under-a-file":
        args = ["--file", "afile/x/v.env"]
        message = f"--file {cli.cwd / 'afile/x/v.env'}: {cli.cwd / 'afile'} is a file"
    elif case == "lease-dir":
        args += ["--lease-file", "adir"]
        message = f"--lease-file {cli.cwd / 'adir'}: a directory, not a file"
    elif case == "long-name":
        args = ["--file", "x" * 300 + ".env"]
        message = "is not valid: expected a path whose names are at most 255 bytes each"
    elif case in ("world-writable", "lease-world-writable"):
        # Anyone may rename the written file away and put their own in its place (no sticky
        # bit): the job would source their text as its secrets.
        (cli.cwd / "adir").chmod(0o777)
        option = "--file" if case == "world-writable" else "--lease-file"
        args = ["--file", "values.env", option, "adir/new/v.env"]
        message = (
            f"{option} {cli.cwd / 'adir/new/v.env'}: {cli.cwd / 'adir'} may be written by every "
            "user and has no sticky bit"
        )
    else:
        env.update({"GITHUB_ACTIONS": "true", "RUNNER_TEMP": str(cli.cwd / "adir")})
        args = []
        if case == "github-env-dir":
            env["GITHUB_ENV"] = str(cli.cwd / "adir")
            message = f"$GITHUB_ENV {cli.cwd / 'adir'}: a directory, not a file"
        else:
            message = "GITHUB_ENV is not set: --export-env works in a GitHub Actions step"
    done = cli.run("secrets", "fetch", "--secrets", "secret/ml/db password", *args, env=env)
    bad_input(done, message)
    assert sorted(p.name for p in cli.cwd.iterdir()) == ["adir", "afile"]
    assert list((cli.cwd / "adir").iterdir()) == []


@pytest.mark.parametrize(
    "value", ["inf", "nan", "9" * 400, "0.000000000001", "1e-12", "99999h", "0"]
)
@pytest.mark.parametrize("where", ["flag", "env"])
def test_a_timeout_that_would_never_end_or_never_start(cli: Cli, value: str, where: str) -> None:
    args, env = ["--timeout", value], offline(cli)
    if where == "env":
        args, env["MLSTEPS_SECRETS_TIMEOUT"] = [], value
    done = cli.run(
        "secrets", "exec", *args, "--secrets", "secret/ml/db password", "--", "true", env=env
    )
    source = "--timeout" if where == "flag" else "MLSTEPS_SECRETS_TIMEOUT"
    bad_input(done, source)
    assert "such as 30s or 5m" in done.err or "such as 90s, 30m or 2h" in done.err, done
