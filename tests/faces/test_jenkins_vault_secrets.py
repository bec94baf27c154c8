"""vars/withVaultSecrets.groovy under the Groovy harness.

The commands it builds are checked against a probe standing in for mlsteps (every key, awkward
values); what it does is checked with the real `mlsteps` against the real OpenBao server and
Redis (for a database lease): the block sees the values, the console shows them masked, the
file holding them is gone before the block runs, and the lease and the login token are revoked
on the server after a block that succeeds and after one that fails.
"""

from __future__ import annotations

import json
import os
import re
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from steps.core.secret import mask_lines
from tests import vault_setup as vs
from tests.faces import vault_checks
from tests.faces.secrets_setup import VaultSecrets, awkward_values, leaks_in, sha

pytestmark = pytest.mark.faces

CHECKS = Path(vault_checks.__file__).resolve()

# Stands in for mlsteps: records its argv and the MLSTEPS_ environment it got, one file per
# call; fetch copies the JSON file PROBE_VALUES_FILE (else {}) to --file and writes a record to
# --lease-file.
PROBE = """\
import json, os, sys
from pathlib import Path

argv = sys.argv[1:]
calls = sorted(Path(".").glob("probe-*.json"))
Path(f"probe-{len(calls)}.json").write_text(json.dumps({
    "argv": argv,
    "env": {k: v for k, v in os.environ.items() if k.startswith("MLSTEPS_")},
}))
def after(flag):
    return argv[argv.index(flag) + 1]
if "fetch" in argv:
    values = os.environ.get("PROBE_VALUES_FILE")
    text = Path(values).read_text() if values else "{}"
    for flag, text in (("--file", text), ("--lease-file", "{}")):
        path = Path(after(flag))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    sys.exit(int(os.environ.get("PROBE_FETCH_EXIT", "0")))
if "revoke" in argv:
    Path(after("--lease-file")).unlink(missing_ok=True)
    sys.exit(int(os.environ.get("PROBE_REVOKE_EXIT", "0")))
"""

AWKWARD = 'it\'s "quoted" $HOME `id` \\ ; | & *'

# Run by a block: prints {NAME: sha256(value)} for the variables the block got (never a value).
SEEN = """\
import hashlib, json, os
print(json.dumps({
    k: hashlib.sha256(v.encode()).hexdigest()
    for k, v in os.environ.items() if k.endswith("_VALUE") or k.startswith("DB_")
}))
"""


@pytest.fixture
def probe(tmp_path: Path) -> list[str]:
    path = tmp_path / "probe dir" / "probe.py"
    path.parent.mkdir()
    path.write_text(PROBE, encoding="utf-8")
    return [sys.executable, str(path)]


def seen_env(tmp_path: Path) -> dict[str, str]:
    """The build environment a block running SEEN needs."""
    script = tmp_path / "seen.py"
    script.write_text(SEEN, encoding="utf-8")
    return {"PYTHON": sys.executable, "SEEN": str(script)}


def probe_calls(workspace: Path) -> list[dict[str, Any]]:
    return [
        json.loads(p.read_text(encoding="utf-8"))
        for p in sorted(workspace.glob("probe-*.json"), key=lambda p: int(p.stem.split("-")[1]))
    ]


def call_dir(run: Any) -> str:
    """The directory this call of withVaultSecrets made for its files."""
    (fetch, *_) = run.calls("sh")
    found = re.search(r"'--file' '([^']+)/secrets\.json'", fetch["args"]["script"])
    assert found, fetch["args"]["script"]
    return found.group(1)


# ------------------------------------------------------------------------ the commands built


def test_builds_the_exact_fetch_and_revoke_commands(
    run_jenkins: Any, probe: list[str], tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    run = run_jenkins(
        "withVaultSecrets",
        {
            "mlsteps": probe,
            "config": "conf dir/mlsteps.yaml",
            "secrets": ["secret/ml/db password | DB_PASSWORD", "secret/ml/api *"],
            "url": "http://127.0.0.1:8200",
            "namespace": "team a",
            "method": "approle",
            "mount": "approle-ci",
            "role": AWKWARD,
            "tokenFile": "/run/token",
            "roleIdFile": "/run/role id",
            "secretIdFile": "/run/secret-id",
            "secretIdWrapped": True,
            "jwtFile": "/run/jwt",
            "kubernetesTokenPath": "/var/run/sa",
            "caCert": "/etc/ca.pem",
            "clientCert": "/etc/client.pem",
            "clientKey": "/etc/client.key",
            "tlsSkipVerify": False,
            "timeout": 30,
        },
        body="sh 'true'; return 'done'",
        workspace=workspace,
    )
    assert run.status == "SUCCESS", run.console
    assert run.result == "done"
    directory = call_dir(run)
    tmp = re.escape(f"{workspace}@tmp")
    assert re.fullmatch(rf"{tmp}/mlsteps-secrets-[0-9a-f]{{8}}", directory)
    q = f"'{probe[0]}' '{probe[1]}' '--ci' 'jenkins' '--config' 'conf dir/mlsteps.yaml' 'secrets'"
    fetch, remove, body, revoke = run.calls("sh")
    assert fetch["args"] == {
        "script": f"{q} 'fetch'"
        " '--secrets' 'secret/ml/db password | DB_PASSWORD' '--secrets' 'secret/ml/api *'"
        " '--url' 'http://127.0.0.1:8200' '--namespace' 'team a' '--method' 'approle'"
        " '--mount' 'approle-ci' '--role' 'it'\\''s \"quoted\" $HOME `id` \\ ; | & *'"
        " '--token-file' '/run/token' '--role-id-file' '/run/role id'"
        " '--secret-id-file' '/run/secret-id' '--secret-id-wrapped' 'true' '--jwt-file' '/run/jwt'"
        " '--kubernetes-token-path' '/var/run/sa' '--ca-cert' '/etc/ca.pem'"
        " '--client-cert' '/etc/client.pem' '--client-key' '/etc/client.key'"
        " '--tls-skip-verify' 'false' '--timeout' '30'"
        f" '--file' '{directory}/secrets.json' '--lease-file' '{directory}/lease.json'",
        "returnStatus": True,
        "label": "mlsteps secrets fetch",
    }
    assert fetch["env"]["MLSTEPS_OUTPUTS_FILE"] == f"{directory}/outputs.json"
    assert fetch["env"]["MLSTEPS_SUMMARY_FILE"] == f"{directory}/summary.md"
    assert remove["args"] == {
        "script": f"rm -f '{directory}/secrets.json'",
        "label": "remove the secrets file",
    }
    assert body["args"] == {"script": "true"}
    assert revoke["args"] == {
        "script": f"{q} 'revoke' '--url' 'http://127.0.0.1:8200' '--namespace' 'team a'"
        " '--ca-cert' '/etc/ca.pem' '--client-cert' '/etc/client.pem'"
        " '--client-key' '/etc/client.key' '--tls-skip-verify' 'false' '--timeout' '30'"
        f" '--lease-file' '{directory}/lease.json' && rm -rf '{directory}'",
        "returnStatus": True,
        "label": "mlsteps secrets revoke",
    }
    # The shell handed every word over unchanged.
    fetched, revoked = probe_calls(workspace)
    assert fetched["argv"][fetched["argv"].index("--role") + 1] == AWKWARD
    assert revoked["argv"][-2:] == ["--lease-file", f"{directory}/lease.json"]
    assert not Path(directory).exists()
    assert run.calls("withCredentials") == [{"step": "withCredentials", "args": {"bindings": []}}]


def test_unset_keys_are_not_passed_and_mlsteps_is_the_default(
    run_jenkins: Any, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mlsteps").write_text("#!/bin/sh\nexit 7\n")
    (bin_dir / "mlsteps").chmod(0o755)
    run = run_jenkins(
        "withVaultSecrets",
        {"secrets": "secret/a b", "url": "", "method": None},
        body="return 1",
        extra_env={"PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )
    # The `mlsteps` on PATH runs; its exit code fails the step, before the block.
    assert run.status == "FAILURE"
    (fetch, revoke) = run.calls("sh")
    directory = call_dir(run)
    assert fetch["args"]["script"] == (
        "'mlsteps' '--ci' 'jenkins' 'secrets' 'fetch' '--secrets' 'secret/a b'"
        f" '--file' '{directory}/secrets.json' '--lease-file' '{directory}/lease.json'"
    )
    assert revoke["args"]["script"] == (
        "'mlsteps' '--ci' 'jenkins' 'secrets' 'revoke'"
        f" '--lease-file' '{directory}/lease.json' && rm -rf '{directory}'"
    )
    assert run.error == (
        "withVaultSecrets: mlsteps secrets fetch exited with code 7 (unexpected exit);"
        " see its message above"
    )


def test_credentials_come_from_jenkins_credentials_as_environment(
    run_jenkins: Any, probe: list[str], tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    credentials = {
        "vault-token": "hvs.token'value",
        "vault-role-id": "role-id-value",
        "vault-secret-id": "secret $id `value`",
        "vault-jwt": "eyJ.jwt.value",
    }
    run = run_jenkins(
        "withVaultSecrets",
        {
            "mlsteps": probe,
            "secrets": "secret/a b",
            "tokenCredentialsId": "vault-token",
            "roleIdCredentialsId": "vault-role-id",
            "secretIdCredentialsId": "vault-secret-id",
            "jwtCredentialsId": "vault-jwt",
        },
        body="return 1",
        workspace=workspace,
        credentials=credentials,
    )
    assert run.status == "SUCCESS", run.console
    (bound,) = run.calls("withCredentials")
    assert bound["args"]["bindings"] == [
        {"type": "string", "credentialsId": "vault-token", "variable": "MLSTEPS_SECRETS_TOKEN"},
        {"type": "string", "credentialsId": "vault-role-id", "variable": "MLSTEPS_SECRETS_ROLE_ID"},
        {
            "type": "string",
            "credentialsId": "vault-secret-id",
            "variable": "MLSTEPS_SECRETS_SECRET_ID",
        },
        {"type": "string", "credentialsId": "vault-jwt", "variable": "MLSTEPS_SECRETS_JWT"},
    ]
    fetched = probe_calls(workspace)[0]
    assert {k: fetched["env"][k] for k in fetched["env"] if not k.endswith("_FILE")} == {
        "MLSTEPS_SECRETS_TOKEN": credentials["vault-token"],
        "MLSTEPS_SECRETS_ROLE_ID": credentials["vault-role-id"],
        "MLSTEPS_SECRETS_SECRET_ID": credentials["vault-secret-id"],
        "MLSTEPS_SECRETS_JWT": credentials["vault-jwt"],
    }
    fetch, *_ = run.calls("sh")
    assert "CredentialsId" not in fetch["args"]["script"]
    record = json.dumps(run.record, ensure_ascii=False)
    assert [v for v in credentials.values() if v in record or v in run.console] == []
    # Only the fetch sees them: the revoke and the block run outside withCredentials.
    assert all("MLSTEPS_SECRETS_TOKEN" not in c["env"] for c in run.calls("sh")[1:])


def test_the_block_gets_the_values_masked_from_the_file_that_is_then_gone(
    run_jenkins: Any, probe: list[str], tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    values = awkward_values("probe")
    body = r"""
        sh '"$PYTHON" "$SEEN" > seen.json'
        sh 'echo "shell sees $SHELL_VALUE"; printf "%s\\n" "$MULTI_VALUE"'
        echo "groovy sees ${env.UNICODE_VALUE} and ${env.JSON_VALUE}"
        return fileExists(env.SECRETS_FILE_SEEN ?: 'none')
    """
    # From a file, so that the values are not in the build's environment (and its record).
    values_file = tmp_path / "values.json"
    values_file.write_text(json.dumps(values), encoding="utf-8")
    run = run_jenkins(
        "withVaultSecrets",
        {"mlsteps": probe, "secrets": "secret/a b"},
        body=body,
        workspace=workspace,
        env={"PROBE_VALUES_FILE": str(values_file), **seen_env(tmp_path)},
    )
    assert run.status == "SUCCESS", run.console
    assert run.result is False
    seen = json.loads((workspace / "seen.json").read_text())
    assert seen == {name: sha(value) for name, value in values.items()}
    # Read, then removed before the block ran.
    (read,) = run.calls("readJSON")
    directory = call_dir(run)
    assert read["args"] == {"file": f"{directory}/secrets.json"}
    steps = [c["step"] for c in run.record["calls"]]
    assert steps.index("readJSON") < steps.index("wrap")
    assert run.calls("sh")[1]["args"]["script"] == f"rm -f '{directory}/secrets.json'"
    # Every value, and every line of a multi-line one, is a mask while the block runs.
    (wrap,) = run.calls("wrap")
    assert wrap["args"]["$class"] == "MaskPasswordsBuildWrapper"
    pairs = {p["var"]: p["passwordSha256"] for p in wrap["args"]["varPasswordPairs"]}
    expected = {name: sha(value) for name, value in values.items()}
    for name, value in values.items():
        # the lines mlsteps' own faces register too (structure lines such as `{` are not)
        for index, line in enumerate(line for line in mask_lines(value) if line != value):
            expected[f"{name}_LINE_{index + 1}"] = sha(line)
    assert pairs == expected
    assert "shell sees ********" in run.console
    assert "groovy sees ******** and ********" in run.console
    assert leaks_in(values, run.console, json.dumps(run.record, ensure_ascii=False)) == []


def test_unknown_key_fails_naming_the_known_keys(run_jenkins: Any) -> None:
    run = run_jenkins("withVaultSecrets", {"url": "http://x", "secret": "typo"}, body="return 1")
    assert run.status == "FAILURE"
    assert run.error == (
        "withVaultSecrets: unknown key 'secret'; known keys: secrets, url, namespace, method, "
        "mount, role, tokenCredentialsId, tokenFile, roleIdCredentialsId, roleIdFile, "
        "secretIdCredentialsId, secretIdFile, secretIdWrapped, jwtCredentialsId, jwtFile, "
        "kubernetesTokenPath, caCert, clientCert, clientKey, tlsSkipVerify, timeout, config, "
        "mlsteps"
    )
    assert run.calls("sh") == []


@pytest.mark.parametrize(
    ("args", "body", "expected"),
    [
        (
            {"url": ["a", "b"]},
            "return 1",
            "withVaultSecrets: key 'url' must be a String, a number or a boolean, not ArrayList",
        ),
        (
            {"secrets": {"path": "x"}},
            "return 1",
            "withVaultSecrets: key 'secrets' must be a List of strings or one String,"
            " not LinkedHashMap",
        ),
        (
            {"url": "http://x"},
            None,
            "withVaultSecrets: give the block to run:"
            " withVaultSecrets(url: ..., secrets: ...) { sh ... }",
        ),
    ],
    ids=["list-for-a-string", "map-for-secrets", "no-block"],
)
def test_bad_calls_fail_before_running_anything(
    run_jenkins: Any, args: dict[str, Any], body: str | None, expected: str
) -> None:
    run = run_jenkins("withVaultSecrets", args, body=body)
    assert run.status == "FAILURE"
    assert run.error == expected
    assert run.calls("sh") == []


def test_a_failed_revoke_fails_a_build_whose_block_succeeded(
    run_jenkins: Any, probe: list[str], tmp_path: Path
) -> None:
    run = run_jenkins(
        "withVaultSecrets",
        {"mlsteps": probe, "secrets": "secret/a b"},
        body="return 1",
        workspace=tmp_path / "ws",
        env={"PROBE_REVOKE_EXIT": "1"},
    )
    assert run.status == "FAILURE"
    directory = call_dir(run)
    assert run.error == (
        "withVaultSecrets: mlsteps secrets revoke exited with code 1 (the step failed);"
        f" see its message above; the lease record stays in {directory}"
    )
    assert Path(directory).is_dir()


def test_a_failed_block_is_what_fails_the_build_when_revoke_fails_too(
    run_jenkins: Any, probe: list[str], tmp_path: Path
) -> None:
    run = run_jenkins(
        "withVaultSecrets",
        {"mlsteps": probe, "secrets": "secret/a b"},
        body="error 'the block failed'",
        workspace=tmp_path / "ws",
        env={"PROBE_REVOKE_EXIT": "1"},
    )
    assert run.status == "FAILURE"
    assert run.error == "the block failed"
    (told,) = run.calls("echo")
    assert told["args"]["message"].startswith(
        "withVaultSecrets: mlsteps secrets revoke exited with code 1"
    )


# ------------------------------------------------------------- the real CLI, the real server


class Setup(VaultSecrets):
    """The server set up for one test (secrets_setup.VaultSecrets), and how a Jenkins call
    reaches it: AppRole credentials from Jenkins credentials."""

    def args(self, mlsteps: str, **extra: Any) -> dict[str, Any]:
        return {
            "mlsteps": mlsteps,
            "url": self.vault.addr,
            "method": "approle",
            "mount": self.auth_mount,
            "roleIdCredentialsId": "vault-role-id",
            "secretIdCredentialsId": "vault-secret-id",
            "secrets": self.requests,
            **extra,
        }

    def credentials(self) -> dict[str, str]:
        return {"vault-role-id": self.role_id, "vault-secret-id": self.secret_id}

    def env(self, tmp_path: Path) -> dict[str, str]:
        """For a block that looks at the server while it runs (with vault_checks.py)."""
        return {
            **seen_env(tmp_path),
            "CHECKS": str(CHECKS),
            "CHECK_ARGS": " ".join([self.vault.addr, self.auth_mount, self.creds_path]),
            "VAULT_ROOT_TOKEN": self.vault.root_token,
        }


# The block: what the server holds while it runs, and sha256 of each value it sees.
LOOK = r"""
    sh '"$PYTHON" "$CHECKS" $CHECK_ARGS > during.json'
    sh '"$PYTHON" "$SEEN" > seen.json'
    sh 'echo "db password: $DB_PASSWORD"; printf "%s\\n" "$MULTI_VALUE"'
"""


@pytest.mark.services
def test_real_cli_gives_the_block_the_values_and_revokes_after_it(
    run_jenkins: Any, mlsteps_cli: str, vault_server: Any, redis_server: Any, tmp_path: Path
) -> None:
    setup = Setup(vault_server, redis_server, "jenkins")
    workspace = tmp_path / "ws"
    users_before = set(redis_server.acl_users())
    run = run_jenkins(
        "withVaultSecrets",
        setup.args(mlsteps_cli),
        body=LOOK + "\n    return 'block done'",
        workspace=workspace,
        credentials=setup.credentials(),
        env=setup.env(tmp_path),
        timeout=120,
    )
    assert run.status == "SUCCESS", run.console
    assert run.result == "block done"
    assert json.loads((workspace / "during.json").read_text()) == {"tokens": 1, "leases": 1}
    seen = json.loads((workspace / "seen.json").read_text())
    assert {k: v for k, v in seen.items() if k.endswith("_VALUE")} == {
        name: sha(value) for name, value in setup.values.items()
    }
    assert set(seen) >= {"DB_USERNAME", "DB_PASSWORD"}
    assert "db password: ********" in run.console
    # After the block: the lease, the Redis user it made and the login token are gone.
    assert setup.held() == {"tokens": 0, "leases": 0}
    assert set(redis_server.acl_users()) == users_before
    assert not Path(call_dir(run)).exists()
    record = json.dumps(run.record, ensure_ascii=False)
    assert setup.leaks(run.console, record) == []


@pytest.mark.services
def test_real_cli_revokes_when_the_block_fails(
    run_jenkins: Any, mlsteps_cli: str, vault_server: Any, redis_server: Any, tmp_path: Path
) -> None:
    setup = Setup(vault_server, redis_server, "jenkins")
    workspace = tmp_path / "ws"
    run = run_jenkins(
        "withVaultSecrets",
        setup.args(mlsteps_cli),
        body=LOOK + "\n    sh 'exit 3'",
        workspace=workspace,
        credentials=setup.credentials(),
        env=setup.env(tmp_path),
        timeout=120,
    )
    assert run.status == "FAILURE"
    assert run.error == "script returned exit code 3"
    assert json.loads((workspace / "during.json").read_text()) == {"tokens": 1, "leases": 1}
    revoke = run.calls("sh")[-1]
    assert revoke["args"]["label"] == "mlsteps secrets revoke"
    assert revoke["status"] == 0
    assert setup.held() == {"tokens": 0, "leases": 0}
    assert not Path(call_dir(run)).exists()


@pytest.mark.services
def test_real_cli_wrong_credential_fails_before_the_block(
    run_jenkins: Any, mlsteps_cli: str, vault_server: Any, redis_server: Any, tmp_path: Path
) -> None:
    setup = Setup(vault_server, redis_server, "jenkins")
    credentials = {**setup.credentials(), "vault-secret-id": str(uuid.uuid4())}
    run = run_jenkins(
        "withVaultSecrets",
        setup.args(mlsteps_cli),
        body="sh 'touch block-ran'",
        workspace=tmp_path / "ws",
        credentials=credentials,
        timeout=120,
    )
    assert run.status == "FAILURE"
    assert run.error == (
        "withVaultSecrets: mlsteps secrets fetch exited with code 1 (the step failed);"
        " see its message above"
    )
    assert not (tmp_path / "ws" / "block-ran").exists()
    assert run.calls("readJSON") == [] and run.calls("wrap") == []
    # The revoke still ran (nothing to revoke), and cleaned up the directory.
    assert run.calls("sh")[-1]["status"] == 0
    assert not Path(call_dir(run)).exists()
    assert setup.held() == {"tokens": 0, "leases": 0}
    assert credentials["vault-secret-id"] not in run.console


@pytest.mark.services
def test_real_cli_logs_in_with_a_jwt_credential(
    run_jenkins: Any, mlsteps_cli: str, vault_server: Any, tmp_path: Path
) -> None:
    # A JWT from a Jenkins credential (e.g. the OpenID Connect Provider plugin's id token):
    # here one signed by a key the test made, which the server's JWT auth trusts.
    tag = uuid.uuid4().hex[:8]
    issuer = vs.JwtIssuer(issuer="https://jenkins.example/oidc")
    reader = vs.read_policy(vault_server, f"faces-jwt-{tag}", [f"secret/data/faces-jwt/{tag}"])
    mount = issuer.configure(
        vault_server,
        mount=f"jwt-{tag}",
        role="jenkins",
        bound_claims={"repository": "org/ml"},
        audience="vault",
        policies=[reader],
    )
    vs.put_kv(vault_server, "secret", f"faces-jwt/{tag}", {"api-key": f"key-{tag}"})
    jwt = issuer.sign(issuer.github_claims("org/ml", "refs/heads/main", "vault"))
    run = run_jenkins(
        "withVaultSecrets",
        {
            "mlsteps": mlsteps_cli,
            "url": vault_server.addr,
            "method": "jwt",
            "mount": mount,
            "role": "jenkins",
            "jwtCredentialsId": "vault-jwt",
            "secrets": f"secret/faces-jwt/{tag} api-key",
        },
        body="""sh 'test "$APIKEY" = "key-""" + tag + """"'; return env.APIKEY.length()""",
        workspace=tmp_path / "ws",
        credentials={"vault-jwt": jwt},
        timeout=120,
    )
    assert run.status == "SUCCESS", run.console
    assert run.result == len(f"key-{tag}")
    assert vault_checks.login_tokens(vault_server.addr, vault_server.root_token, mount) == []
    assert jwt not in run.console and f"key-{tag}" not in run.console


def reader_token(vault: Any, path: str) -> str:
    policy = vs.policy(
        vault,
        f"read-{uuid.uuid4().hex[:8]}",
        f'path "secret/data/{path}" {{ capabilities = ["read"] }}',
    )
    return vs.token_with_policies(vault, [policy])


@pytest.mark.services
def test_real_cli_dry_run_shows_the_plan_and_skips_the_block(
    run_jenkins: Any, mlsteps_cli: str, vault_server: Any, tmp_path: Path
) -> None:
    path = f"{uuid.uuid4().hex[:8]}/db"
    vs.put_kv(vault_server, "secret", path, {"password": "pw-dry"})
    run = run_jenkins(
        "withVaultSecrets",
        {"mlsteps": mlsteps_cli, "url": vault_server.addr, "secrets": f"secret/{path} password"},
        body="sh 'touch block-ran'",
        workspace=tmp_path / "ws",
        env={"MLSTEPS_DRY_RUN": "true", "VAULT_TOKEN": reader_token(vault_server, path)},
        timeout=120,
    )
    assert run.status == "SUCCESS", run.console
    assert "dry run: nothing below is done" in run.console
    assert "the block is not run" in run.console and "Exception" not in run.console
    assert not (tmp_path / "ws" / "block-ran").exists()
    assert run.calls("readJSON") == [] and run.calls("wrap") == []
    assert not Path(call_dir(run)).exists()
    assert "pw-dry" not in run.console


@pytest.mark.services
def test_real_cli_takes_the_documented_list_form_as_the_key(
    run_jenkins: Any, mlsteps_cli: str, vault_server: Any, tmp_path: Path
) -> None:
    path = f"{uuid.uuid4().hex[:8]}/db"
    for n in (1, 2, 3):
        vs.put_kv(vault_server, "secret", path, {"password": f"pw-v{n}"})
    workspace = tmp_path / "ws"
    run = run_jenkins(
        "withVaultSecrets",
        {
            "mlsteps": mlsteps_cli,
            "url": vault_server.addr,
            "secrets": f"[{{path: secret/{path}, key: password, env: DB_VALUE, version: 2}}]",
        },
        body=r"""sh '"$PYTHON" "$SEEN" > seen.json'""",
        workspace=workspace,
        env={**seen_env(tmp_path), "VAULT_TOKEN": reader_token(vault_server, path)},
        timeout=120,
    )
    assert run.status == "SUCCESS", run.console
    assert json.loads((workspace / "seen.json").read_text()) == {"DB_VALUE": sha("pw-v2")}


# Shapes where Java's and Python's ideas of a line and of white space part: \v, \f, \x1c-\x1e,
# \x85, \u2028 and \u2029 end a line for Python; NBSP and its kin are white space to Python's
# strip only. A value pasted with a trailing NBSP and printed trimmed was masked by mlsteps'
# faces but not by Mask Passwords.
PARITY_VALUES = {
    "NBSP_VALUE": "\u00a0pasted-secret\u00a0",
    "NARROW_VALUE": "\u202fnarrow-secret\u2007",
    "NEL_VALUE": "first-part\x85second-part",
    "VT_VALUE": "vertical-one\x0bvertical-two\x0cformfeed-three",
    "SEP_VALUE": "line-sep-one\u2028para-two\u2029group\x1dthree",
    "CR_VALUE": "carriage-one\rcarriage-two\r\n",
    "ANSI_VALUE": "  \x1b[1;31mred-value\x1b[0m\n\x1b]0;title\x07second-line\n",
    "SHORT_LINES_VALUE": "ab\ncd\n{\n}",
    "ONE_VALUE": "Q",
    "WORD_VALUE": "true",
    "TABS_VALUE": "\t tabbed \t",
    "JSON_VALUE": '{\n  "k": "v 100% \\"q\\"",\n  "n": [1, 2]\n}\n',
    "EMOJI_VALUE": "\U0001f511x\nlong-enough-line\n",  # a line of 2 characters, 3 UTF-16 units
}


def test_mask_passwords_gets_what_mlsteps_own_faces_mask(
    run_jenkins: Any, probe: list[str], tmp_path: Path
) -> None:
    values_file = tmp_path / "values.json"
    values_file.write_text(json.dumps(PARITY_VALUES), encoding="utf-8")
    run = run_jenkins(
        "withVaultSecrets",
        {"mlsteps": probe, "secrets": "secret/a b"},
        body="return null",
        workspace=tmp_path / "ws",
        env={"PROBE_VALUES_FILE": str(values_file)},
    )
    assert run.status == "SUCCESS", run.console
    (wrap,) = run.calls("wrap")
    got: dict[str, set[str]] = {}
    for pair in wrap["args"]["varPasswordPairs"]:
        got.setdefault(re.sub(r"_LINE_\d+$", "", pair["var"]), set()).add(pair["passwordSha256"])
    expected = {
        name: {sha(form) for form in mask_lines(value)} | ({sha(value)} if value.strip() else set())
        for name, value in PARITY_VALUES.items()
    }
    differ = sorted(name for name in expected if got.get(name, set()) != expected[name])
    assert differ == [], differ
