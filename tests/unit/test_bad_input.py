"""Bad input of every kind the hardening issue found: exit 2, one short paragraph naming the
option (flag, variable or file key), no traceback, under a second, nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.unit.run_cli import Ran, base_env, run

DRY_TRAIN = ["--dry-run", "train", "--image", "x"]


def refused(ran: Ran, *says: str) -> None:
    assert ran.code == 2, ran
    assert "Traceback" not in ran.err and "unexpected error" not in ran.err, ran.err
    assert ran.err.count("\n") == 1 and len(ran.err) < 600, ran.err
    assert ran.cpu_seconds < 1 and ran.seconds < 15, ran
    for text in says:
        assert text in ran.err, ran.err


def test_an_unclosed_quote_in_the_command_variable(tmp_path: Path) -> None:
    env = {**base_env(), "MLSTEPS_TRAIN_COMMAND": "python train.py --name 'a b"}
    ran = run(DRY_TRAIN, cwd=tmp_path, env=env)
    refused(ran, "MLSTEPS_TRAIN_COMMAND", "expected shell words (No closing quotation)")


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--memory", "inf", "positive size"),
        ("--memory", "nan", "positive size"),
        ("--memory", "1" * 400, "(402 characters)"),
        ("--memory", "1e-12", "positive size"),
        ("--memory", "0.5", "positive size"),  # half a byte: was 0, which Docker reads as none
        ("--memory", "1k", "at least 6m"),
        ("--shm-size", "2000t", "up to 1024t"),
        ("--timeout", "inf", "positive duration"),
        ("--timeout", "nan", "positive duration"),
        ("--timeout", "9" * 400, "to 720h"),
        ("--timeout", "0.00001s", "1ms to 720h"),
        ("--timeout", "1e-12", "positive duration"),
        ("--cpus", "inf", "finite number from 0.01 to 4096"),
        ("--cpus", "nan", "finite number"),
        ("--cpus", "1e-12", "from 0.01 to 4096"),  # was: no CPU limit at all
        ("--cpus", "1" * 400, "from 0.01 to 4096"),
        ("--platform", "garbage/zz", "os/arch[/variant]"),
    ],
)
def test_train_numbers_are_finite_and_in_range(
    tmp_path: Path, flag: str, value: str, says: str
) -> None:
    refused(run([*DRY_TRAIN, flag, value, "--", "t"], cwd=tmp_path), flag, says)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["promote", "--name", "m", "--version", "1", "--lock-ttl", "inf"], "--lock-ttl"),
        (["promote", "--name", "m", "--version", "1", "--lock-ttl", "1e-12"], "--lock-ttl"),
        (["promote", "--name", "m", "--version", "1", "--lock-timeout", "nan"], "--lock-timeout"),
        (["secrets", "fetch", "--secrets", "s k", "--timeout", "inf"], "--timeout"),
        (["gate", "--name", "m", "--seed", "-1"], "--seed '-1' is not valid: expected an integer"),
        (["gate", "--name", "m", "--seed", str(2**32)], "from 0 to 4294967295"),
        (["gate", "--name", "m", "--resamples", str(10**20)], "from 0 to 1000000"),
        (["gate", "--name", "m", "--confidence", "nan"], "--confidence"),
        (["package", "--model-uri", "m", "--platform", "garbage/zz"], "--platform"),
    ],
)
def test_other_steps_numbers_are_refused_by_the_shared_parsers(
    tmp_path: Path, args: list[str], says: str
) -> None:
    env = {**base_env(), "VAULT_TOKEN": "t", "VAULT_ADDR": "http://127.0.0.1:1"}
    refused(run(["--dry-run", *args], cwd=tmp_path, env=env), says)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("n" * 256, "at most 255 bytes each"),
        ("/a" * 2100, "shorter than 4096 bytes"),
        ("~nosuchuser/x", "a path that can be resolved"),
    ],
)
@pytest.mark.parametrize("flag", ["--data-dir", "--output-dir"])
def test_impossible_paths(tmp_path: Path, flag: str, value: str, says: str) -> None:
    refused(run([*DRY_TRAIN, flag, value, "--", "t"], cwd=tmp_path), flag, says)


def test_impossible_mount_and_config_paths(tmp_path: Path) -> None:
    ran = run([*DRY_TRAIN, "--mount", f"{'n' * 300}:/x", "--", "t"], cwd=tmp_path)
    refused(ran, "--mount", "at most 255 bytes each")
    refused(run(["--config", "c" * 300, *DRY_TRAIN[1:]], cwd=tmp_path), "--config", "255 bytes")


def test_output_dir_that_is_a_file_or_under_one(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    ran = run([*DRY_TRAIN, "--output-dir", "f", "--", "t"], cwd=tmp_path)
    refused(ran, "--output-dir", "is a file, not a directory")
    ran = run([*DRY_TRAIN, "--output-dir", "f/out", "--", "t"], cwd=tmp_path)
    refused(ran, "--output-dir", f"{tmp_path / 'f'} is a file")
    assert sorted(os.listdir(tmp_path)) == ["f"]  # nothing created


def test_a_nul_in_a_string_option_from_the_file(tmp_path: Path) -> None:
    # argv and environment variables cannot hold a NUL; a YAML file can ("\0").
    (tmp_path / "mlsteps.yaml").write_text('promote:\n  lock-path: "locks/a\\0b"\n')
    ran = run(["--dry-run", "promote", "--name", "m", "--version", "1"], cwd=tmp_path)
    refused(ran, "mlsteps.yaml:2: promote.lock-path", "without a NUL character")
    (tmp_path / "mlsteps.yaml").write_text('train:\n  env: ["A=\\0"]\n')
    refused(run([*DRY_TRAIN, "--", "t"], cwd=tmp_path), "train.env", "NUL")


def test_a_nul_in_a_flag(tmp_path: Path) -> None:
    # In-process only: an exec'd program never sees one. Kept for callers of main(argv).
    ran = run(
        ["--dry-run", "promote", "--name", "m", "--version", "1", "--lock-path", "a\0b"],
        cwd=tmp_path,
    )
    refused(ran, "--lock-path", "NUL")


def test_a_credential_in_the_file_is_refused_even_when_the_environment_sets_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "mlsteps.yaml").write_text("secrets:\n  token: s.committed-token\n")
    env = {**base_env(), "VAULT_TOKEN": "from-env", "MLSTEPS_SECRETS_TOKEN": "from-env"}
    for args in (["secrets", "fetch", "--secrets", "s k"], DRY_TRAIN[1:] + ["--", "t"]):
        ran = run(["--dry-run", *args], cwd=tmp_path, env=env)
        refused(ran, "mlsteps.yaml:2: secrets.token is a credential", "rotate it")
        assert "s.committed-token" not in ran.err + ran.out
    (tmp_path / "mlsteps.yaml").write_text("package:\n  registry-password: hunter2\n")
    ran = run(["--dry-run", "package", "--model-uri", "m"], cwd=tmp_path)
    # No --registry-password-file exists: the message must not invent one.
    refused(ran, "MLSTEPS_PACKAGE_REGISTRY_PASSWORD).")
    assert "hunter2" not in ran.err and "-file" not in ran.err


# ----- unreadable files: a directory, not UTF-8 / not PEM, permission denied -----------------


def test_a_config_that_is_a_directory_or_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    refused(run(["--config", "d", *DRY_TRAIN[1:]], cwd=tmp_path), "--config d: not a regular file")
    (tmp_path / "mlsteps.yaml").mkdir()  # the default name, a directory: not a config file
    assert run([*DRY_TRAIN, "--", "t"], cwd=tmp_path).code == 0
    (tmp_path / "bad.yaml").write_bytes(b"train:\n  image: \xff\xfe\n")
    refused(run(["--config", "bad.yaml", *DRY_TRAIN[1:]], cwd=tmp_path), "not UTF-8 text (byte 16)")
    refused(run(["--config", "/dev/zero", *DRY_TRAIN[1:]], cwd=tmp_path), "not a regular file")


@pytest.mark.parametrize(
    "args",
    [
        ["secrets", "fetch", "--secrets", "s k", "--ca-cert"],
        ["secrets", "fetch", "--secrets", "s k", "--client-cert", "c.pem", "--client-key"],
        ["package", "--model-uri", "m", "--ca-bundle"],
        ["promote", "--name", "m", "--version", "1", "--lock", "vault", "--vault-ca-cert"],
    ],
)
def test_pem_files_that_are_a_directory_garbage_or_missing(tmp_path: Path, args: list[str]) -> None:
    env = {**base_env(), "VAULT_TOKEN": "t", "VAULT_ADDR": "https://127.0.0.1:1"}
    (tmp_path / "c.pem").write_text("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "garbage").write_bytes(b"\xff\xfe not a certificate")
    for value, says in (
        ("dir", "is not valid: expected a PEM file (this is not a regular file)"),
        ("garbage", "expected a PEM file (-----BEGIN … blocks); this one is not"),
        ("missing.pem", "expected an existing PEM file"),
        ("/dev/zero", "not a regular file"),
    ):
        ran = run(["--dry-run", *args, value], cwd=tmp_path, env=env)
        refused(ran, args[-1], says)


def as_nobody(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI as an unprivileged user, for whom a 0600 file of root's is unreadable (root
    reads every file, so only another user can show a permission error)."""
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    if os.geteuid() != 0:
        prefix = []
    return subprocess.run(
        [*prefix, sys.executable, "-m", "steps", *args],
        cwd=cwd,
        env={**base_env(), "PYTHONPATH": str(Path(__file__).parents[2])},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_unreadable_config_and_ca_files_say_permission_denied() -> None:
    with tempfile.TemporaryDirectory() as where:  # (pytest's own tmp_path is root's only)
        check_unreadable(Path(where))


def check_unreadable(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    (tmp_path / "mlsteps.yaml").write_text("train:\n  image: x\n")
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    for name in ("mlsteps.yaml", "ca.pem"):
        (tmp_path / name).chmod(0o600 if os.geteuid() == 0 else 0)
    done = as_nobody(["--dry-run", "train", "--", "t"], tmp_path)
    assert done.returncode == 2, done.stderr
    assert "mlsteps.yaml: cannot be read (Permission denied)" in done.stderr
    assert "Traceback" not in done.stderr
    (tmp_path / "mlsteps.yaml").unlink()
    done = as_nobody(
        ["--dry-run", "package", "--model-uri", "m", "--ca-bundle", "ca.pem"], tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert "--ca-bundle 'ca.pem' is not valid: expected a PEM file this user can read" in (
        done.stderr
    )


# ----- dry runs show the plan; config show prints what users wrote ----------------------------


def test_train_dry_run_names_an_unset_secret_variable_in_the_plan(tmp_path: Path) -> None:
    env = {**base_env(), "SET_ONE": "secret-value-1"}
    ran = run(
        [*DRY_TRAIN, "--secret-env", "SET_ONE", "--secret-env", "NOT_SET", "--", "t"],
        cwd=tmp_path,
        env=env,
    )
    assert ran.code == 0, ran.err
    assert "NOT_SET not set in this environment: the run would stop there" in ran.out
    ran = run(["train", "--image", "x", "--secret-env", "NOT_SET", "--", "t"], cwd=tmp_path)
    refused(ran, "--secret-env NOT_SET: not set in this environment")


def test_config_show_prints_values_as_written(tmp_path: Path) -> None:
    (tmp_path / "mlsteps.yaml").write_text(
        "secrets:\n  secrets: [{path: secret/a, key: b, version: 3}]\n"
        "gate:\n  metrics: {accuracy: {min: 0.9}}\n"
        "train:\n  timeout: 2h\n  secrets-as-env: yes\n  gpus: '0,1'\n"
    )
    env = {**base_env(), "MLSTEPS_TRAIN_MEMORY": "4g"}
    ran = run(["config", "show"], cwd=tmp_path, env=env)
    assert ran.code == 0, ran.err
    lines = {line.split("#")[0].strip() for line in ran.out.splitlines()}
    for expected in (
        'secrets: [{"path": "secret/a", "key": "b", "version": 3}]',
        'metrics: {"accuracy": {"min": 0.9}}',
        "timeout: 2h",
        "secrets-as-env: true",
        "gpus: 0,1",
        "memory: 4g",
        "lock-ttl: 5m",  # a default, as --help says it
        "tls-skip-verify: false",
    ):
        assert expected in lines, ran.out
    assert "SecretSpec(" not in ran.out and "MetricThreshold(" not in ran.out
    assert "True" not in ran.out and "7200.0" not in ran.out


def test_token_files_that_are_endless_binary_or_a_directory(tmp_path: Path) -> None:
    # /dev/zero as a token file used to read until memory ran out.
    (tmp_path / "bin").write_bytes(b"\xff\xfe\x00token")
    (tmp_path / "big").write_text("t" * 70_000)
    (tmp_path / "d").mkdir()
    env = {**base_env(), "VAULT_ADDR": "http://127.0.0.1:9"}
    for option in ("--token-file", "--role-id-file", "--secret-id-file", "--jwt-file"):
        for value, says in (
            ("/dev/zero", "not a regular file"),
            ("bin", "a UTF-8 text file (byte 0 is not)"),
            ("big", "at most 64 KiB"),
            ("d", "not a regular file"),
        ):
            ran = run(
                ["--dry-run", "secrets", "fetch", "--secrets", "s k", "--file", "o", option, value],
                cwd=tmp_path,
                env=env,
            )
            refused(ran, option, says)


def test_a_model_path_too_long_or_unresolvable(tmp_path: Path) -> None:
    for value, says in (("m" * 300, "255 bytes"), ("~nosuchuser/m", "can be resolved")):
        ran = run(["--dry-run", "package", "--model-uri", value], cwd=tmp_path)
        refused(ran, "--model-uri", says)


def test_a_message_quoting_a_huge_value_keeps_its_start_and_its_fix() -> None:
    from steps.cli import MESSAGE_CHARS, _shorten

    message = "--url " + "u" * 50_000 + ": expected http(s)://HOST:PORT."
    short = _shorten(message)
    assert len(short) <= MESSAGE_CHARS
    assert short.startswith("--url uuu") and short.endswith("expected http(s)://HOST:PORT.")
    assert "characters cut" in short
    assert _shorten("short") == "short"


def test_an_unreadable_model_file_is_bad_input() -> None:
    with tempfile.TemporaryDirectory() as where:
        model = Path(where) / "m"
        model.mkdir(parents=True)
        Path(where).chmod(0o755)
        model.chmod(0o755)
        (model / "MLmodel").write_text("flavors: {python_function: {python_version: 3.11.7}}\n")
        (model / "MLmodel").chmod(0o600 if os.geteuid() == 0 else 0)
        done = as_nobody(["--dry-run", "package", "--model-uri", "m"], Path(where))
    assert done.returncode == 2, done.stderr
    assert "--model-uri m: its MLmodel or environment files cannot be read" in done.stderr
    assert "Permission denied" in done.stderr and "Traceback" not in done.stderr
