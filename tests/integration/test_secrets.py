"""`mlsteps secrets exec|fetch|revoke` against a real OpenBao server (the Vault API).

Every test runs the real `mlsteps` in a subprocess with an environment it controls and checks
the exit code, the message, and what is left behind on the server (leases, login tokens) and on
disk. Tests share the session's server under mounts and roles named after the test's own id;
only the sealing test has a server of its own. The two stand-ins for peers that cannot run here
(GitHub's id-token service, the Kubernetes TokenReview API) come from tests/vault_setup.py; the
one stub in front of the real server (FlakyProxy) shows answers the server cannot be made to
give, next to the real-server tests of the same calls.

Every run goes through `Cli.finish`, which fails the test when any value a test put in Vault
(or a credential it made) shows up in stdout or stderr, raw or base64-, URL- or JSON-escaped.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from tests import services
from tests import vault_setup as vs

pytestmark = pytest.mark.services

REPOSITORY = "mlsteps/demo"
MAIN = "refs/heads/main"

# The child `exec` runs: prints `NAME sha256(value)` for each name (never a value), then, when
# given a hold file, says it is ready and waits while the hold file exists; exits with CODE.
CHILD = """\
import hashlib, os, pathlib, sys, time
code, hold, *names = sys.argv[1:]
for name in names:
    value = os.environ.get(name)
    digest = "unset" if value is None else hashlib.sha256(value.encode()).hexdigest()
    print(name, digest, flush=True)
if hold != "-":
    pathlib.Path(hold + ".ready").write_text(str(os.getpid()))
    while pathlib.Path(hold).exists():
        time.sleep(0.02)
sys.exit(int(code))
"""


def awkward(tag: str) -> dict[str, str]:
    """Values of the shapes that break masks, quoting and escaping."""
    return {
        "MULTI": f"-----BEGIN KEY {tag}-----\nsecond line {tag}\n\tindented\n-----END KEY-----\n",
        "JSON": json.dumps({"user": f"svc-{tag}", "pw": 'p"w\\d', "n": [1, 2]}),
        "QUOTES": f"it's a \"quoted\" 'value' {tag}",
        "PERCENT": f"100% %s %(x)s %% %0A {tag}",
        "DOLLAR": f"$HOME ${{PATH}} $(echo hi) `echo hi` $$ {tag}",
        "BACKSLASH": f"C:\\temp\\new\\\\x \\n \\' {tag}\\",
        "UNICODE": f"pässwörd 🔑 日本語 {tag}",
        "CRLF": f"windows\r\nline {tag}\r\n",
    }


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def shown_forms(value: str) -> set[str]:
    """The ways a value could show up in a log: raw, each of its lines, escaped, encoded."""
    forms = {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        base64.b64encode(value.encode()).decode(),
        urllib.parse.quote(value),
        urllib.parse.quote_plus(value),
        *value.splitlines(),
    }
    return {form.strip() for form in forms if len(form.strip()) >= 6}


@dataclass
class Cli:
    """Runs the real `mlsteps` against `vault`; remembers every value that must never show."""

    vault: services.VaultServer
    cwd: Path
    uid: str
    hidden: dict[str, str] = field(default_factory=dict)  # label → value

    def hide(self, **values: str) -> None:
        self.hidden.update(values)

    def put(self, mount: str, path: str, data: Mapping[str, Any]) -> int | None:
        for key, value in data.items():
            self.hidden[f"{mount}/{path} {key}"] = value if isinstance(value, str) else ""
        return vs.put_kv(self.vault, mount, path, data)

    def env(self, extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
        # Nothing of the machine's own Vault, CI or mlsteps settings reaches the step.
        prefixes = ("VAULT_", "MLSTEPS_", "GITHUB_", "ACTIONS_", "RUNNER_", "JENKINS_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
        env.pop("BUILD_ID", None)
        env["VAULT_ADDR"] = self.vault.addr
        for name, value in (extra or {}).items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    def start(
        self, *args: str, env: Mapping[str, str | None] | None = None
    ) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "steps", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.cwd,
            env=self.env(env),
        )

    def finish(self, proc: subprocess.Popen[str], timeout: float = 60) -> Done:
        started = time.monotonic()
        out, err = proc.communicate(timeout=timeout)
        done = Done(proc.returncode, out, err, time.monotonic() - started)
        self.assert_no_leak(done)
        return done

    def run(
        self, *args: str, env: Mapping[str, str | None] | None = None, timeout: float = 60
    ) -> Done:
        started = time.monotonic()
        done = self.finish(self.start(*args, env=env), timeout)
        done.seconds = time.monotonic() - started
        return done

    def assert_no_leak(self, done: Done) -> None:
        text = done.out + done.err
        leaked = [
            label
            for label, value in self.hidden.items()
            if any(form in text for form in shown_forms(value))
        ]
        # Name what leaked, never the value: a failing test must not print it either.
        assert not leaked, f"secret values shown in the output: {leaked}"

    def reader(self) -> dict[str, str]:
        """VAULT_TOKEN of a token that reads this test's KV v2 paths (secret/<uid>/…) and
        its KV v1 mount (kv1-<uid>/…). Not the root token: the dev server's is "root", which
        the step rightly masks everywhere, /tmp/pytest-of-root included."""
        name = vs.policy(
            self.vault,
            f"reader-{self.uid}",
            f'path "secret/data/{self.uid}/*" {{ capabilities = ["read"] }}\n'
            f'path "kv1-{self.uid}/*" {{ capabilities = ["read"] }}\n',
        )
        token = vs.token_with_policies(self.vault, [name])
        self.hide(reader_token=token)
        return {"VAULT_TOKEN": token}

    def child(self, *names: str, code: int = 0, hold: Path | None = None) -> list[str]:
        script = self.cwd / "child.py"
        if not script.exists():
            script.write_text(CHILD)
        return [sys.executable, str(script), str(code), str(hold or "-"), *names]


@dataclass(repr=False)
class Done:
    code: int
    out: str
    err: str
    seconds: float

    def hashes(self) -> dict[str, str]:
        """What the child printed: NAME → sha256 of its value (or "unset")."""
        found = {}
        for line in self.out.splitlines():
            parts = line.split()
            if len(parts) == 2 and (len(parts[1]) == 64 or parts[1] == "unset"):
                found[parts[0]] = parts[1]
        return found

    def __repr__(self) -> str:  # what pytest shows when an assertion on `done` fails
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


def expect_values(done: Done, values: Mapping[str, str]) -> None:
    assert done.code == 0, done
    assert done.hashes() == {name: sha(value) for name, value in values.items()}, done


# --- what the server still holds ----------------------------------------------------------------


def live_logins(vault: services.VaultServer, mount: str) -> list[str]:
    """Accessors of the tokens still alive that logins at auth/<mount> made."""
    root = {"X-Vault-Token": vault.root_token}
    listed = requests.request(
        "LIST", f"{vault.addr}/v1/auth/token/accessors", headers=root, timeout=10
    )
    listed.raise_for_status()
    found = []
    with requests.Session() as session:
        for accessor in listed.json()["data"]["keys"]:
            answer = session.post(
                f"{vault.addr}/v1/auth/token/lookup-accessor",
                headers=root,
                json={"accessor": accessor},
                timeout=10,
            )
            path = answer.json()["data"]["path"] if answer.status_code == 200 else ""
            if path.startswith(f"auth/{mount}/"):
                found.append(accessor)
    return found


def leases_under(vault: services.VaultServer, prefix: str) -> list[str]:
    """Ids of the leases the server holds under prefix (e.g. `db-x/creds/reader`)."""
    answer = requests.request(
        "LIST",
        f"{vault.addr}/v1/sys/leases/lookup/{prefix.strip('/')}/",
        headers={"X-Vault-Token": vault.root_token},
        timeout=10,
    )
    if answer.status_code == 404:
        return []
    answer.raise_for_status()
    return [f"{prefix.strip('/')}/{key}" for key in answer.json()["data"]["keys"]]


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"mlsteps ended (exit {proc.returncode}) before the child was ready: {err}")
        assert time.monotonic() < deadline, f"the child never got ready ({path})"
        time.sleep(0.02)


def kv_reader(cli: Cli, *paths: str, extra: str = "") -> str:
    """A policy reading each KV v2 path of `secret/` (written as users write it)."""
    rules = [f"secret/data/{p}" for p in paths]
    name = f"read-{cli.uid}"
    vs.policy(
        cli.vault,
        name,
        "\n".join(f'path "{p}" {{ capabilities = ["read"] }}' for p in rules) + "\n" + extra,
    )
    return name


# --- authentication -----------------------------------------------------------------------------


def test_token_from_the_environment_and_from_a_file_is_used_and_kept(cli: Cli) -> None:
    path = f"{cli.uid}/ml/db"
    cli.put("secret", path, {"password": f"pw-{cli.uid}-token"})
    token = vs.token_with_policies(cli.vault, [kv_reader(cli, path)])
    cli.hide(token=token)
    secrets = f"secret/{path} password | DB_PASSWORD"

    done = cli.run(
        "secrets", "exec", "--secrets", secrets, "--", *cli.child("DB_PASSWORD"),
        env={"VAULT_TOKEN": token},
    )  # fmt: skip
    expect_values(done, {"DB_PASSWORD": f"pw-{cli.uid}-token"})
    assert f"logged in to Vault with token (policies: default, read-{cli.uid})" in done.out

    token_file = cli.cwd / "vault-token"
    token_file.write_text(token + "\n")
    done = cli.run(
        "secrets", "exec", "--secrets", secrets, "--token-file", str(token_file),
        "--", *cli.child("DB_PASSWORD"),
    )  # fmt: skip
    expect_values(done, {"DB_PASSWORD": f"pw-{cli.uid}-token"})
    # A token the user gave is theirs: the step leaves it valid.
    assert vs.token_works(cli.vault, token)


def test_approle_from_the_environment_and_from_files(cli: Cli) -> None:
    path = f"{cli.uid}/ml/db"
    cli.put("secret", path, {"password": f"pw-{cli.uid}-approle"})
    mount = f"approle-{cli.uid}"
    role_id, secret_id = vs.approle(cli.vault, "trainer", [kv_reader(cli, path)], mount=mount)
    cli.hide(role_id=role_id, secret_id=secret_id)
    args = ("secrets", "exec", "--method", "approle", "--mount", mount,
            "--secrets", f"secret/{path} password")  # fmt: skip

    done = cli.run(
        *args, "--", *cli.child("PASSWORD"),
        env={"VAULT_ROLE_ID": role_id, "VAULT_SECRET_ID": secret_id},
    )  # fmt: skip
    expect_values(done, {"PASSWORD": f"pw-{cli.uid}-approle"})

    (cli.cwd / "role-id").write_text(role_id)
    (cli.cwd / "secret-id").write_text(secret_id + "\n")
    done = cli.run(
        *args, "--role-id-file", "role-id", "--secret-id-file", "secret-id",
        "--", *cli.child("PASSWORD"),
    )  # fmt: skip
    expect_values(done, {"PASSWORD": f"pw-{cli.uid}-approle"})
    # Both logins made a token; both were revoked when the command ended.
    assert live_logins(cli.vault, mount) == []


def test_approle_wrapped_secret_id_is_unwrapped_once(cli: Cli) -> None:
    path = f"{cli.uid}/ml/db"
    cli.put("secret", path, {"password": f"pw-{cli.uid}-wrapped"})
    mount = f"approle-{cli.uid}"
    role_id, _ = vs.approle(cli.vault, "trainer", [kv_reader(cli, path)], mount=mount)
    wrapping_token = vs.wrapped_secret_id(cli.vault, "trainer", mount=mount)
    cli.hide(role_id=role_id, wrapping_token=wrapping_token)
    args = ("secrets", "exec", "--method", "approle", "--mount", mount,
            "--secret-id-wrapped", "true", "--secrets", f"secret/{path} password | PW",
            "--", *cli.child("PW"))  # fmt: skip
    env = {"VAULT_ROLE_ID": role_id, "VAULT_SECRET_ID": wrapping_token}

    expect_values(cli.run(*args, env=env), {"PW": f"pw-{cli.uid}-wrapped"})

    again = cli.run(*args, env=env)
    assert again.code == 1, again
    assert "already used" in again.err and "ask for a new one" in again.err, again
    assert again.hashes() == {}
    assert live_logins(cli.vault, mount) == []


def test_jwt_login_takes_the_bound_claims_and_refuses_others(cli: Cli) -> None:
    path = f"{cli.uid}/ml/db"
    cli.put("secret", path, {"password": f"pw-{cli.uid}-jwt"})
    issuer = vs.JwtIssuer()
    mount = issuer.configure(
        cli.vault,
        mount=f"jwt-{cli.uid}",
        role="deploy",
        bound_claims={"repository": REPOSITORY, "ref": MAIN},
        audience="mlsteps-ci",
        policies=[kv_reader(cli, path)],
    )
    good = issuer.sign(issuer.github_claims(REPOSITORY, MAIN, "mlsteps-ci"))
    other = issuer.sign(issuer.github_claims("mlsteps/fork", MAIN, "mlsteps-ci"))
    cli.hide(good_jwt=good, other_jwt=other)
    args = ("secrets", "exec", "--method", "jwt", "--mount", mount, "--role", "deploy",
            "--secrets", f"secret/{path} password | PW")  # fmt: skip

    done = cli.run(*args, "--", *cli.child("PW"), env={"VAULT_JWT": good})
    expect_values(done, {"PW": f"pw-{cli.uid}-jwt"})
    (cli.cwd / "token.jwt").write_text(good)
    done = cli.run(*args, "--jwt-file", "token.jwt", "--", *cli.child("PW"))
    expect_values(done, {"PW": f"pw-{cli.uid}-jwt"})

    refused = cli.run(*args, "--", *cli.child("PW"), env={"VAULT_JWT": other})
    assert refused.code == 1, refused
    assert f"jwt login at auth/{mount} refused" in refused.err, refused
    assert "--role deploy" in refused.err and "bound claims" in refused.err, refused
    assert 'claim "repository" does not match' in refused.err, refused
    assert refused.hashes() == {}
    assert live_logins(cli.vault, mount) == []


def test_github_oidc_token_is_asked_for_the_given_audience(cli: Cli) -> None:
    path = f"{cli.uid}/ml/db"
    cli.put("secret", path, {"password": f"pw-{cli.uid}-oidc"})
    issuer = vs.JwtIssuer()
    mount = issuer.configure(
        cli.vault,
        mount=f"github-{cli.uid}",
        role="ci",
        bound_claims={"repository": REPOSITORY, "ref": MAIN},
        audience="mlsteps-vault",
        policies=[kv_reader(cli, path)],
    )
    with vs.GitHubOidcEndpoint(issuer, repository=REPOSITORY, ref=MAIN) as oidc:
        cli.hide(request_token=oidc.request_token)
        done = cli.run(
            "secrets", "exec", "--method", "jwt", "--mount", mount, "--role", "ci",
            "--jwt-audience", "mlsteps-vault", "--secrets", f"secret/{path} password | PW",
            "--", *cli.child("PW"),
            env=oidc.env(),
        )  # fmt: skip
        expect_values(done, {"PW": f"pw-{cli.uid}-oidc"})
        assert oidc.audiences == ["mlsteps-vault"]
        assert oidc.refused == 0
        cli.hide(**{f"id_token_{i}": t for i, t in enumerate(oidc.tokens)})
        cli.assert_no_leak(done)
    assert live_logins(cli.vault, mount) == []


def test_kubernetes_login_with_the_service_account_token(cli: Cli) -> None:
    # No Kubernetes API server runs here: TokenReviewServer answers OpenBao's TokenReview
    # requests as a cluster's API server would; OpenBao's Kubernetes auth itself is real.
    path = f"{cli.uid}/ml/db"
    cli.put("secret", path, {"password": f"pw-{cli.uid}-k8s"})
    with vs.TokenReviewServer() as cluster:
        mount = vs.configure_kubernetes_auth(
            cli.vault, cluster, "trainer", "ml", "trainer-sa", [kv_reader(cli, path)],
            mount=f"k8s-{cli.uid}",
        )  # fmt: skip
        sa_token = cluster.service_account_token("ml", "trainer-sa")
        stranger = cluster.service_account_token("ml", "someone-else")
        cli.hide(sa_token=sa_token, stranger=stranger)
        token_path = cli.cwd / "serviceaccount" / "token"
        token_path.parent.mkdir()
        args = ("secrets", "exec", "--method", "kubernetes", "--mount", mount,
                "--role", "trainer", "--kubernetes-token-path", str(token_path),
                "--secrets", f"secret/{path} password | PW", "--", *cli.child("PW"))  # fmt: skip

        token_path.write_text(sa_token)
        expect_values(cli.run(*args), {"PW": f"pw-{cli.uid}-k8s"})
        assert [review["token"] for review in cluster.reviews] == [sa_token]

        token_path.write_text(stranger)
        refused = cli.run(*args)
        assert refused.code == 1, refused
        assert f"kubernetes login at auth/{mount} refused" in refused.err, refused
        assert "service account name not authorized" in refused.err, refused
        assert "--role trainer" in refused.err, refused
    assert live_logins(cli.vault, mount) == []


# --- what is read and how it is named -----------------------------------------------------------


def test_kv_v1_and_v2_are_read_with_the_same_path_form(cli: Cli) -> None:
    kv1 = vs.mount_kv(cli.vault, f"kv1-{cli.uid}", version=1)
    cli.put(kv1, "ml/db", {"password": f"v1-{cli.uid}"})
    cli.put("secret", f"{cli.uid}/ml/db", {"password": f"v2-{cli.uid}"})
    done = cli.run(
        "secrets", "exec", "--secrets",
        f"{kv1}/ml/db password | ONE; secret/{cli.uid}/ml/db password | TWO ;"
        f"secret/data/{cli.uid}/ml/db password | FULL",
        "--", *cli.child("ONE", "TWO", "FULL"),
        env=cli.reader(),
    )  # fmt: skip
    expect_values(done, {"ONE": f"v1-{cli.uid}", "TWO": f"v2-{cli.uid}", "FULL": f"v2-{cli.uid}"})
    # Three requests, two paths (secret/X and secret/data/X are one secret but two requests).
    assert "read 3 secret(s)" in done.out


def test_versions_pinned_in_the_yaml_list(cli: Cli) -> None:
    path = f"{cli.uid}/ml/db"
    for n in (1, 2, 3):
        cli.put("secret", path, {"password": f"pw-{cli.uid}-v{n}"})
    config = cli.cwd / "mlsteps.yaml"
    config.write_text(
        "secrets:\n"
        "  secrets:\n"
        f"    - {{path: secret/{path}, key: password, env: FIRST, version: 1}}\n"
        f"    - path: secret/{path}\n"
        "      key: password\n"
        "      env: SECOND\n"
        "      version: 2\n"
        f"    - {{path: secret/{path}, key: password, env: LATEST}}\n"
    )
    done = cli.run(
        "--config", str(config), "secrets", "exec", "--", *cli.child("FIRST", "SECOND", "LATEST"),
        env=cli.reader(),
    )  # fmt: skip
    expect_values(
        done,
        {"FIRST": f"pw-{cli.uid}-v1", "SECOND": f"pw-{cli.uid}-v2", "LATEST": f"pw-{cli.uid}-v3"},
    )

    config.write_text(
        f"secrets:\n  secrets:\n    - {{path: secret/{path}, key: password, version: 9}}\n"
    )
    missing = cli.run(
        "--config", str(config), "secrets", "exec", "--", *cli.child("PASSWORD"),
        env=cli.reader(),
    )  # fmt: skip
    assert missing.code == 1, missing
    assert f"secret/{path}" in missing.err and "version 9" in missing.err, missing


def test_star_takes_every_key_with_and_without_a_prefix(cli: Cli) -> None:
    data = {"user": f"u-{cli.uid}", "password": f"p-{cli.uid}", "api-key": f"k-{cli.uid}"}
    cli.put("secret", f"{cli.uid}/ml/api", data)
    env = cli.reader()
    done = cli.run(
        "secrets", "exec", "--secrets",
        f"secret/{cli.uid}/ml/api * ; secret/{cli.uid}/ml/api * | API_",
        "--", *cli.child("USER", "PASSWORD", "APIKEY", "API_USER", "API_PASSWORD", "API_APIKEY"),
        env=env,
    )  # fmt: skip
    expect_values(
        done,
        {
            "USER": data["user"], "PASSWORD": data["password"], "APIKEY": data["api-key"],
            "API_USER": data["user"], "API_PASSWORD": data["password"],
            "API_APIKEY": data["api-key"],
        },
    )  # fmt: skip

    # A key that makes no variable name is named, not lost (nor, in a dotenv file, run).
    cli.put("secret", f"{cli.uid}/ml/odd", {"9lives": f"nine-{cli.uid}", "ok": f"ok-{cli.uid}"})
    odd = cli.run(
        "secrets", "exec", "--secrets", f"secret/{cli.uid}/ml/odd *", "--", *cli.child("OK"),
        env=env,
    )  # fmt: skip
    assert odd.code == 1, odd
    assert "the key '9lives' makes no variable name ('9LIVES')" in odd.err, odd
    assert odd.hashes() == {}
    prefixed = cli.run(
        "secrets", "exec", "--secrets", f"secret/{cli.uid}/ml/odd * | ODD_", "--",
        *cli.child("ODD_9LIVES", "ODD_OK"),
        env=env,
    )  # fmt: skip
    expect_values(prefixed, {"ODD_9LIVES": f"nine-{cli.uid}", "ODD_OK": f"ok-{cli.uid}"})

    # Two requests that give one name (a * and an explicit one) would overwrite each other.
    clash = cli.run(
        "secrets", "exec", "--secrets",
        f"secret/{cli.uid}/ml/api * ; secret/{cli.uid}/ml/odd ok | USER", "--", *cli.child(),
        env=env,
    )  # fmt: skip
    assert clash.code == 1, clash
    assert "two requests give the same variable name — USER from" in clash.err, clash
    assert "'PATH * | PREFIX_'" in clash.err, clash
    assert clash.hashes() == {}


def test_optional_keys_and_paths_are_skipped_with_a_line(cli: Cli) -> None:
    path = f"{cli.uid}/ml/db"
    cli.put("secret", path, {"password": f"pw-{cli.uid}-opt"})
    config = cli.cwd / "mlsteps.yaml"
    config.write_text(
        "secrets:\n"
        "  secrets:\n"
        f"    - {{path: secret/{path}, key: password, env: PW}}\n"
        f"    - {{path: secret/{path}, key: extra, env: EXTRA, optional: true}}\n"
        f"    - {{path: secret/{cli.uid}/ml/none, key: token, env: NONE, optional: true}}\n"
    )
    done = cli.run(
        "--config", str(config), "secrets", "exec", "--", *cli.child("PW", "EXTRA", "NONE"),
        env=cli.reader(),
    )  # fmt: skip
    assert done.code == 0, done
    assert done.hashes() == {"PW": sha(f"pw-{cli.uid}-opt"), "EXTRA": "unset", "NONE": "unset"}
    assert f"optional secret secret/{path} extra not found: skipped" in done.out, done
    assert f"optional secret secret/{cli.uid}/ml/none token not found: skipped" in done.out, done


def test_a_missing_path_or_key_names_both(cli: Cli) -> None:
    path = f"{cli.uid}/ml/db"
    cli.put("secret", path, {"password": f"pw-{cli.uid}-miss"})
    kv1 = vs.mount_kv(cli.vault, f"kv1-{cli.uid}", version=1)
    env = cli.reader()
    cases = {
        f"secret/{path} passwd": (f"secret/{path}", "passwd"),
        f"secret/{cli.uid}/ml/gone password": (f"secret/{cli.uid}/ml/gone", "password"),
        f"{kv1}/ml/gone token": (f"{kv1}/ml/gone", "token"),
    }
    for request, (where, key) in cases.items():
        done = cli.run("secrets", "exec", "--secrets", request, "--", *cli.child(), env=env)
        assert done.code == 1, done
        assert where in done.err and repr(key) in done.err, done
        assert "optional" in done.err, done  # the way out when the secret may be absent


def test_a_denied_path_names_the_path_and_the_token_policies(cli: Cli) -> None:
    allowed = f"{cli.uid}/ml/allowed"
    cli.put("secret", allowed, {"password": f"pw-{cli.uid}-allowed"})
    cli.put("secret", f"{cli.uid}/ml/denied", {"password": f"pw-{cli.uid}-denied"})
    token = vs.token_with_policies(cli.vault, [kv_reader(cli, allowed)])
    cli.hide(token=token)
    done = cli.run(
        "secrets", "exec", "--secrets", f"secret/{cli.uid}/ml/denied password", "--",
        *cli.child("PASSWORD"),
        env={"VAULT_TOKEN": token},
    )  # fmt: skip
    assert done.code == 1, done
    assert f"secret secret/{cli.uid}/ml/denied: permission denied" in done.err, done
    assert f"(default, read-{cli.uid})" in done.err, done
    assert f'path "secret/data/{cli.uid}/ml/denied"' in done.err, done

    # A token that may see nothing of the mount cannot even learn whether it is KV v2.
    kv1 = vs.mount_kv(cli.vault, f"kv1-{cli.uid}", version=1)
    blind_token = vs.token_with_policies(
        cli.vault, [vs.read_policy(cli.vault, f"kv1-{cli.uid}", [f"{kv1}/*"])]
    )
    cli.hide(blind_token=blind_token)
    blind = cli.run(
        "secrets", "exec", "--secrets", f"secret/{cli.uid}/ml/denied password", "--",
        *cli.child("PASSWORD"),
        env={"VAULT_TOKEN": blind_token},
    )  # fmt: skip
    assert blind.code == 1, blind
    assert f"secret secret/{cli.uid}/ml/denied: permission denied" in blind.err, blind
    assert f"(default, kv1-{cli.uid}) give it nothing on the mount secret/" in blind.err, blind
    assert f'path "secret/data/{cli.uid}/ml/denied"' in blind.err, blind


# --- how the values reach the work --------------------------------------------------------------


def test_exec_gives_the_child_awkward_values_and_its_exit_code(cli: Cli) -> None:
    values = awkward(cli.uid)
    cli.put("secret", f"{cli.uid}/awkward", values)
    secrets = ";".join(f"secret/{cli.uid}/awkward {name}" for name in values)
    env = cli.reader()
    expect_values(cli.run("secrets", "exec", "--secrets", secrets, "--",
                          *cli.child(*values), env=env), values)  # fmt: skip

    failed = cli.run(
        "secrets", "exec", "--secrets", secrets, "--", *cli.child("JSON", code=7), env=env
    )
    assert failed.code == 7, failed
    assert "exited with code 7" in failed.err, failed
    assert failed.hashes() == {"JSON": sha(values["JSON"])}


def test_fetch_writes_private_files_that_read_back_exactly_and_revoke_removes_them(
    cli: Cli,
) -> None:
    values = awkward(cli.uid)
    cli.put("secret", f"{cli.uid}/awkward", values)
    secrets = ";".join(f"secret/{cli.uid}/awkward {name}" for name in values)
    env = cli.reader()
    files = {"values.env": cli.cwd / "out" / "values.env", "values.json": cli.cwd / "values.json"}
    for name, path in files.items():
        record = cli.cwd / f"{name}.lease.json"
        done = cli.run(
            "secrets", "fetch", "--secrets", secrets, "--file", str(path),
            "--lease-file", str(record), env=env,
        )  # fmt: skip
        assert done.code == 0, done
        for written in (path, record):
            assert stat.S_IMODE(written.stat().st_mode) == 0o600, written
        assert f"file: {path}" in done.out and f"lease-file: {record}" in done.out, done

    assert json.loads(files["values.json"].read_text()) == values
    # The dotenv file read by real readers: bash and POSIX sh sourcing it with `set -a`.
    for shell in ("bash", "sh"):
        sourced = subprocess.run(
            [shell, "-c", 'set -a; . "$1"; shift; exec "$@"', shell, str(files["values.env"]),
             *cli.child(*values)],
            capture_output=True, text=True, timeout=30, cwd=cli.cwd,
        )  # fmt: skip
        got = Done(sourced.returncode, sourced.stdout, sourced.stderr, 0)
        assert sourced.stderr == "", f"{shell} printed: {sourced.stderr}"
        assert got.hashes() == {n: sha(v) for n, v in values.items()}, f"{shell} read back wrong"

    for name, path in files.items():
        record = cli.cwd / f"{name}.lease.json"
        done = cli.run("secrets", "revoke", "--lease-file", str(record), env=env)
        assert done.code == 0, done
        assert not path.exists() and not record.exists()
        again = cli.run("secrets", "revoke", "--lease-file", str(record), env=env)
        assert again.code == 0 and "already revoked" in again.out, again
    assert vs.token_works(cli.vault, env["VAULT_TOKEN"])


# --- leases and login tokens end on the server --------------------------------------------------


@pytest.mark.parametrize("ending", ["success", "failure", "SIGTERM", "SIGINT"])
def test_exec_revokes_the_lease_and_the_login_token_however_the_command_ends(
    cli: Cli,
    dynamic: tuple[str, str, str, str],
    redis_server: services.RedisServer,
    ending: str,
) -> None:
    creds, mount, role_id, secret_id = dynamic
    hold = cli.cwd / "hold"
    hold.touch()
    users_before = set(redis_server.acl_users())
    proc = cli.start(
        "secrets", "exec", "--method", "approle", "--mount", mount,
        "--secrets", f"{creds} username | DB_USER ; {creds} password | DB_PASSWORD",
        "--", *cli.child("DB_USER", "DB_PASSWORD", code=3 if ending == "failure" else 0,
                         hold=hold),
        env={"VAULT_ROLE_ID": role_id, "VAULT_SECRET_ID": secret_id},
    )  # fmt: skip
    wait_for(cli.cwd / "hold.ready", proc)
    # While the command runs: one lease (one read of the path), one login token, one user.
    leases = leases_under(cli.vault, creds)
    logins = live_logins(cli.vault, mount)
    assert len(leases) == 1 and len(logins) == 1
    (leased_user,) = set(redis_server.acl_users()) - users_before
    cli.hide(leased_user=leased_user)
    if ending in ("SIGTERM", "SIGINT"):
        proc.send_signal(getattr(signal, ending))
    else:
        hold.unlink()
    done = cli.finish(proc)

    expected = {"success": 0, "failure": 3, "SIGTERM": 143, "SIGINT": 130}[ending]
    assert done.code == expected, done
    assert "revoked 1 lease(s) and the login token" in done.out, done
    assert not vs.lease_exists(cli.vault, leases[0])
    assert live_logins(cli.vault, mount) == []
    assert leased_user not in redis_server.acl_users()  # revoking the lease dropped the user
    if ending.startswith("SIG"):
        assert f"cancelled by {ending}" in done.err, done


def test_exec_outlasting_the_timeout_still_revokes(
    cli: Cli, dynamic: tuple[str, str, str, str]
) -> None:
    """--timeout bounds talking to Vault, not the command: a command that runs longer than it
    must still have its lease and login token revoked when it ends."""
    creds, mount, role_id, secret_id = dynamic
    done = cli.run(
        "secrets", "exec", "--method", "approle", "--mount", mount, "--timeout", "1s",
        "--secrets", f"{creds} username | DB_USER",
        "--", sys.executable, "-c", "import time; time.sleep(1.5)",
        env={"VAULT_ROLE_ID": role_id, "VAULT_SECRET_ID": secret_id},
    )  # fmt: skip
    assert done.code == 0, done
    assert "could not revoke" not in done.err, done
    assert leases_under(cli.vault, creds) == []
    assert live_logins(cli.vault, mount) == []


def test_fetch_keeps_the_lease_and_token_until_revoke(
    cli: Cli, dynamic: tuple[str, str, str, str]
) -> None:
    creds, mount, role_id, secret_id = dynamic
    env = {"VAULT_ROLE_ID": role_id, "VAULT_SECRET_ID": secret_id}
    done = cli.run(
        "secrets", "fetch", "--method", "approle", "--mount", mount,
        "--secrets", f"{creds} username | DB_USER ; {creds} password | DB_PASSWORD",
        "--file", "db.json", env=env,
    )  # fmt: skip
    assert done.code == 0, done
    records = sorted((cli.cwd / ".mlsteps" / "secrets").glob("lease-*.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["token_owned"] is True
    # The values Vault made for this lease, and the login token, never showed either.
    cli.hide(login_token=record["token"], **json.loads((cli.cwd / "db.json").read_text()))
    cli.assert_no_leak(done)
    assert record["leases"] == leases_under(cli.vault, creds) and len(record["leases"]) == 1
    assert vs.token_works(cli.vault, record["token"])

    done = cli.run("secrets", "revoke", env={"VAULT_ADDR": None})
    assert done.code == 0, done
    assert not vs.lease_exists(cli.vault, record["leases"][0])
    assert not vs.token_works(cli.vault, record["token"])
    assert live_logins(cli.vault, mount) == []
    assert not (cli.cwd / "db.json").exists() and not records[0].exists()
    assert cli.run("secrets", "revoke").code == 0  # nothing left: safe to run again


def test_a_failed_fetch_leaves_nothing(cli: Cli, dynamic: tuple[str, str, str, str]) -> None:
    creds, mount, role_id, secret_id = dynamic
    done = cli.run(
        "secrets", "fetch", "--method", "approle", "--mount", mount,
        "--secrets", f"{creds} username | DB_USER ; {creds} nokey | OTHER",
        "--file", "db.env", env={"VAULT_ROLE_ID": role_id, "VAULT_SECRET_ID": secret_id},
    )  # fmt: skip
    assert done.code == 1, done
    assert f"{creds} nokey" in done.err, done
    assert leases_under(cli.vault, creds) == []
    assert live_logins(cli.vault, mount) == []
    assert list(cli.cwd.iterdir()) == []


def test_a_token_the_user_gave_is_kept_and_its_leases_revoked(
    cli: Cli, redis_server: services.RedisServer
) -> None:
    creds = vs.dynamic_creds_role(cli.vault, redis_server, role="reader", mount=f"db-{cli.uid}")
    vs.policy(
        cli.vault,
        f"creds-{cli.uid}",
        f'path "{creds}" {{ capabilities = ["read"] }}\n'
        'path "sys/leases/revoke" { capabilities = ["update"] }\n',
    )
    token = vs.token_with_policies(cli.vault, [f"creds-{cli.uid}"])
    cli.hide(token=token)
    env = {"VAULT_TOKEN": token}
    secrets = f"{creds} username | DB_USER"

    done = cli.run("secrets", "exec", "--secrets", secrets, "--", *cli.child("DB_USER"), env=env)
    assert done.code == 0 and done.hashes()["DB_USER"] != "unset", done
    assert leases_under(cli.vault, creds) == []
    assert vs.token_works(cli.vault, token)

    done = cli.run("secrets", "fetch", "--secrets", secrets, "--file", "db.env", env=env)
    assert done.code == 0, done
    assert len(leases_under(cli.vault, creds)) == 1
    (record,) = (cli.cwd / ".mlsteps" / "secrets").glob("lease-*.json")
    assert json.loads(record.read_text())["token_owned"] is False
    done = cli.run("secrets", "revoke", env={"VAULT_TOKEN": None})
    assert done.code == 0, done
    assert leases_under(cli.vault, creds) == []
    assert vs.token_works(cli.vault, token)
    assert not (cli.cwd / "db.env").exists()


def test_a_failing_read_beside_a_dynamic_one_still_revokes_its_lease_under_a_users_token(
    cli: Cli, redis_server: services.RedisServer
) -> None:
    """The user's token is kept, so nothing sweeps the lease along with it: the lease of the
    read that succeeded must be revoked by itself when another read fails."""
    creds = vs.dynamic_creds_role(cli.vault, redis_server, role="reader", mount=f"db-{cli.uid}")
    vs.policy(
        cli.vault,
        f"mixed-{cli.uid}",
        f'path "{creds}" {{ capabilities = ["read"] }}\n'
        f'path "secret/data/{cli.uid}/*" {{ capabilities = ["read"] }}\n'
        'path "sys/leases/revoke" { capabilities = ["update"] }\n',
    )
    token = vs.token_with_policies(cli.vault, [f"mixed-{cli.uid}"])
    cli.hide(token=token)
    done = cli.run(
        "secrets", "exec", "--secrets",
        f"{creds} username | DB_USER ; secret/{cli.uid}/ml/gone password | PW",
        "--", *cli.child("DB_USER"), env={"VAULT_TOKEN": token},
    )  # fmt: skip
    assert done.code == 1, done
    assert f"secret/{cli.uid}/ml/gone" in done.err, done
    assert leases_under(cli.vault, creds) == []
    assert vs.token_works(cli.vault, token)


def test_plain_http_to_another_host_is_warned_about(cli: Cli) -> None:
    done = cli.run(
        "secrets", "exec", "--url", "http://vault.invalid:8200", "--timeout", "1s",
        "--secrets", "secret/ml/db pw | PW", "--", "true", env=cli.reader(),
    )  # fmt: skip
    assert done.code == 1, done
    assert "warning: --url http://vault.invalid:8200 is plain http" in done.err, done
    loopback = cli.run(
        "--dry-run", "secrets", "exec", "--secrets", "secret/ml/db pw", "--", "true",
        env=cli.reader(),
    )  # fmt: skip
    assert "plain http" not in loopback.out + loopback.err


def test_credentials_in_the_pipeline_file_are_refused(cli: Cli) -> None:
    (cli.cwd / "mlsteps.yaml").write_text(
        "secrets:\n  url: http://127.0.0.1:1\n  token: hvs.committed-by-mistake\n"
    )
    done = cli.run("--dry-run", "secrets", "exec", "--secrets", "secret/ml/db pw", "--", "true")
    assert done.code == 2, done
    assert "mlsteps.yaml:3: secrets.token is a credential" in done.err, done
    assert "MLSTEPS_SECRETS_TOKEN or VAULT_TOKEN" in done.err, done
    assert "hvs.committed-by-mistake" not in done.out + done.err
    schema = json.loads(cli.run("config", "schema").out)
    assert "token" not in schema["properties"]["secrets"]["properties"]
    assert "token-file" in schema["properties"]["secrets"]["properties"]


def test_fetch_does_not_overwrite_a_lease_record(cli: Cli) -> None:
    cli.put("secret", f"{cli.uid}/ml/db", {"password": f"pw-{cli.uid}-rec"})
    (cli.cwd / "lease.json").write_text("{}")
    done = cli.run(
        "secrets", "fetch", "--secrets", f"secret/{cli.uid}/ml/db password | PW",
        "--file", "x.env", "--lease-file", "lease.json", env=cli.reader(),
    )  # fmt: skip
    assert done.code == 2, done
    assert "a lease record is already there" in done.err, done
    assert "mlsteps secrets revoke --lease-file" in done.err, done
    assert not (cli.cwd / "x.env").exists()


def test_fetch_on_a_runner_with_the_local_face_needs_a_file(cli: Cli) -> None:
    """--ci local on a GitHub runner: the face decides, so there is no $GITHUB_ENV export."""
    done = cli.run(
        "--ci", "local", "secrets", "fetch", "--secrets", "secret/ml/db pw | PW",
        env={**cli.reader(), "GITHUB_ACTIONS": "true"},
    )  # fmt: skip
    assert done.code == 2, done
    assert "nowhere to put the values here" in done.err, done
    assert "Traceback" not in done.err


# --- failures: exit code, message, nothing left behind ------------------------------------------


def test_a_server_that_is_down(cli: Cli) -> None:
    down = vs.unused_address()
    done = cli.run(
        "secrets", "fetch", "--url", down, "--timeout", "1s", "--file", "x.env",
        "--secrets", "secret/ml/db password", env={"VAULT_TOKEN": "some-token"},
    )  # fmt: skip
    assert done.code == 1, done
    assert f"cannot reach Vault at {down}" in done.err and "Connection refused" in done.err, done
    assert "Is the server running" in done.err, done
    assert done.seconds < 4, done.seconds
    assert list(cli.cwd.iterdir()) == []


def test_a_sealed_server(fresh_vault: services.VaultServer, tmp_path: Path) -> None:
    cli = Cli(fresh_vault, tmp_path, uuid.uuid4().hex[:8])
    cli.put("secret", "ml/db", {"password": "sealed-away"})
    vs.seal(fresh_vault)
    done = cli.run(
        "secrets", "fetch", "--file", "x.env", "--secrets", "secret/ml/db password",
        env={"VAULT_TOKEN": fresh_vault.root_token},
    )  # fmt: skip
    assert done.code == 1, done
    assert f"Vault at {fresh_vault.addr} is sealed" in done.err and "unseal" in done.err, done
    assert "retry" not in done.out, done  # sealed is not a passing fault
    assert list(tmp_path.iterdir()) == []


def test_wrong_credentials(cli: Cli) -> None:
    path = f"{cli.uid}/ml/db"
    cli.put("secret", path, {"password": f"pw-{cli.uid}-wrong"})
    mount = f"approle-{cli.uid}"
    role_id, secret_id = vs.approle(cli.vault, "trainer", [kv_reader(cli, path)], mount=mount)
    expiring = vs.token_with_policies(cli.vault, ["default"], ttl="1s")
    expires = time.monotonic() + 1.2
    revoked = vs.token_with_policies(cli.vault, ["default"])
    vs.revoke_token(cli.vault, revoked)
    cli.hide(role_id=role_id, secret_id=secret_id, revoked=revoked, expiring=expiring)
    args = ("secrets", "fetch", "--file", "x.env", "--secrets", f"secret/{path} password")

    wrong = cli.run(
        *args, "--method", "approle", "--mount", mount,
        env={"VAULT_ROLE_ID": role_id, "VAULT_SECRET_ID": str(uuid.uuid4())},
    )  # fmt: skip
    assert wrong.code == 1, wrong
    assert f"approle login at auth/{mount} refused" in wrong.err, wrong
    assert "invalid role or secret ID" in wrong.err and "secret id" in wrong.err, wrong

    stale = cli.run(*args, env={"VAULT_TOKEN": revoked})
    assert stale.code == 1, stale
    assert "Vault refused the token: it is expired, revoked" in stale.err, stale
    time.sleep(max(0.0, expires - time.monotonic()))
    expired = cli.run(*args, env={"VAULT_TOKEN": expiring})
    assert expired.code == 1, expired
    assert "Vault refused the token: it is expired, revoked" in expired.err, expired
    assert list(cli.cwd.iterdir()) == []
    assert live_logins(cli.vault, mount) == []


SECRETS = ["--secrets", "secret/ml/db password"]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        pytest.param([*SECRETS, "--", "true"], {"VAULT_ADDR": None}, "--url is not set",
                     id="no-url"),
        pytest.param([*SECRETS, "--method", "ldap", "--", "true"], {}, "--method",
                     id="unknown-method"),
        pytest.param(["--secrets", "secret/ml/db", "--", "true"], {},
                     "'PATH KEY' or 'PATH KEY | ENV_NAME'", id="bad-secrets-syntax"),
        pytest.param(["--secrets", "secret/a password; secret/b password", "--", "true"], {},
                     "PASSWORD is given to both secret/a password and secret/b password",
                     id="one-name-twice"),
        pytest.param([*SECRETS, "--method", "approle", "--", "true"],
                     {"VAULT_ROLE_ID": "some-role"}, "--method approle needs the secret id",
                     id="approle-without-secret-id"),
        pytest.param(["--secrets", "secret/ml/db password | 1BAD", "--", "true"], {},
                     "an environment variable name", id="bad-env-name"),
        pytest.param(SECRETS, {}, "needs a command after --", id="no-command"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_before_asking_vault(
    cli: Cli, args: list[str], env: dict[str, str | None], message: str
) -> None:
    # The URL is a port nothing listens on: exit 2 must come before any request.
    env = {"VAULT_TOKEN": "some-token", "VAULT_ADDR": vs.unused_address(), **env}
    done = cli.run("secrets", "exec", *args, env=env)
    assert done.code == 2, done
    assert message in done.err, done
    assert "Traceback" not in done.err
    assert list(cli.cwd.iterdir()) == []


def test_a_version_pinned_on_kv_v1_is_bad_input_and_the_login_is_revoked(cli: Cli) -> None:
    kv1 = vs.mount_kv(cli.vault, f"kv1-{cli.uid}", version=1)
    cli.put(kv1, "ml/db", {"password": f"pw-{cli.uid}-kv1"})
    mount = f"approle-{cli.uid}"
    reader = vs.read_policy(cli.vault, f"kv1-{cli.uid}", [f"{kv1}/ml/db"])
    role_id, secret_id = vs.approle(cli.vault, "trainer", [reader], mount=mount)
    cli.hide(role_id=role_id, secret_id=secret_id)
    config = cli.cwd / "mlsteps.yaml"
    config.write_text(
        f"secrets:\n  secrets:\n    - {{path: {kv1}/ml/db, key: password, version: 2}}\n"
    )
    done = cli.run(
        "--config", str(config), "secrets", "exec", "--method", "approle", "--mount", mount,
        "--", "true", env={"VAULT_ROLE_ID": role_id, "VAULT_SECRET_ID": secret_id},
    )  # fmt: skip
    assert done.code == 2, done
    assert f"secret {kv1}/ml/db: version 2 is pinned, but KV v1 has no versions" in done.err
    assert live_logins(cli.vault, mount) == []


# --- retries: a stub in front of the real server ------------------------------------------------


class FlakyProxy:
    """Answers the first requests with the given statuses, then forwards to the real server.

    The real server cannot be made to answer 412 (a performance standby not yet caught up),
    429 (rate limited) or a 503 that is not "sealed" (a load balancer with no backend) on
    demand, so this stub plays them; everything after is the real server's answer.
    `requests` records (method, path, status) of each request that reached the stub.
    """

    def __init__(self, target: str, faults: list[int]) -> None:
        self.target = target
        self.faults = list(faults)
        self.requests: list[tuple[str, str, int]] = []
        lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with lock:
                    fault = owner.faults.pop(0) if owner.faults else None
                if fault is not None:
                    status, raw = fault, json.dumps({"errors": [f"stub answer {fault}"]}).encode()
                else:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                    answer = requests.request(
                        self.command, owner.target + self.path, headers=headers, data=body,
                        timeout=10,
                    )  # fmt: skip
                    status, raw = answer.status_code, answer.content
                with lock:
                    owner.requests.append((self.command, self.path, status))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_DELETE = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def __enter__(self) -> FlakyProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(10)


def test_passing_faults_are_retried_then_the_real_server_answers(cli: Cli) -> None:
    cli.put("secret", f"{cli.uid}/ml/db", {"password": f"pw-{cli.uid}-retry"})
    with FlakyProxy(cli.vault.addr, [503, 429, 412]) as proxy:
        done = cli.run(
            "secrets", "exec", "--url", proxy.url, "--secrets",
            f"secret/{cli.uid}/ml/db password | PW", "--", *cli.child("PW"),
            env=cli.reader(),
        )  # fmt: skip
    expect_values(done, {"PW": f"pw-{cli.uid}-retry"})
    retries = [line for line in done.out.splitlines() if " retry " in line]
    assert retries == [
        f"the token lookup failed (Vault answered {status}: stub answer {status}); "
        f"retry {n} in {line.rsplit(' in ', 1)[1]}"
        for n, (status, line) in enumerate(zip((503, 429, 412), retries, strict=False), 1)
    ], done
    assert [status for _, _, status in proxy.requests[:4]] == [503, 429, 412, 200]


def test_a_bad_request_is_not_retried(cli: Cli) -> None:
    with FlakyProxy(cli.vault.addr, [400]) as proxy:
        done = cli.run(
            "secrets", "exec", "--url", proxy.url, "--secrets", "secret/ml/db password",
            "--", "true", env=cli.reader(),
        )  # fmt: skip
    assert done.code == 1, done
    assert "400" in done.err and "stub answer 400" in done.err, done
    assert len(proxy.requests) == 1
    assert "retry" not in done.out


def test_a_login_is_not_sent_twice_when_it_may_have_been_carried_out(cli: Cli) -> None:
    """A 502 to a login may come after Vault made the token: a second login would leave that
    token alive and unrevoked, so it is not retried; a 429 (nothing was done) is."""
    policy = vs.read_policy(cli.vault, f"once-{cli.uid}", [f"secret/data/{cli.uid}/*"])
    role_id, secret_id = vs.approle(cli.vault, f"once-{cli.uid}", [policy])
    cli.hide(role_id=role_id, secret_id=secret_id)
    cli.put("secret", f"{cli.uid}/ml/db", {"password": f"pw-{cli.uid}-once"})
    env = {"VAULT_ROLE_ID": role_id, "VAULT_SECRET_ID": secret_id}
    request = ["--secrets", f"secret/{cli.uid}/ml/db password | PW"]
    with FlakyProxy(cli.vault.addr, [502]) as proxy:
        done = cli.run(
            "secrets", "exec", "--url", proxy.url, "--method", "approle", *request,
            "--", *cli.child("PW"), env=env,
        )  # fmt: skip
    assert done.code == 1, done
    assert "answered 502 to the approle login; it is not sent again" in done.err, done
    assert [(m, p) for m, p, _ in proxy.requests] == [("POST", "/v1/auth/approle/login")]
    with FlakyProxy(cli.vault.addr, [429]) as proxy:
        done = cli.run(
            "secrets", "exec", "--url", proxy.url, "--method", "approle", *request,
            "--", *cli.child("PW"), env=env,
        )  # fmt: skip
    expect_values(done, {"PW": f"pw-{cli.uid}-once"})
    assert [s for m, p, s in proxy.requests if p == "/v1/auth/approle/login"] == [429, 200]


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A loopback port that accepts connections and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_the_total_timeout_holds_against_a_server_that_never_answers(
    cli: Cli, black_hole: str
) -> None:
    done = cli.run(
        "secrets", "exec", "--url", black_hole, "--timeout", "1.5s",
        "--secrets", "secret/ml/db password", "--", "true", env={"VAULT_TOKEN": "some-token"},
    )  # fmt: skip
    assert done.code == 1, done
    assert f"Vault at {black_hole} did not answer the token lookup within the 1.5 s" in done.err
    assert "raise --timeout" in done.err, done
    assert done.seconds < 4, done.seconds


# --- dry run ------------------------------------------------------------------------------------


def test_dry_run_touches_nothing_and_shows_no_values(cli: Cli) -> None:
    cli.put("secret", f"{cli.uid}/ml/db", {"password": f"pw-{cli.uid}-dry"})
    secrets = f"secret/{cli.uid}/ml/db password | PW"
    # A token the server would refuse: a dry run never logs in, so it cannot notice.
    done = cli.run(
        "secrets", "fetch", "--dry-run", "--secrets", secrets, "--file", "x.env",
        env={"VAULT_TOKEN": "not-a-real-token"},
    )  # fmt: skip
    assert done.code == 0, done
    assert f"read 1 secret(s) from 1 path(s): secret/{cli.uid}/ml/db password → PW" in done.out
    assert "write PW to" in done.out, done
    assert list(cli.cwd.iterdir()) == []

    issuer = vs.JwtIssuer()
    with vs.GitHubOidcEndpoint(issuer) as oidc:
        done = cli.run(
            "secrets", "exec", "--dry-run", "--method", "jwt", "--role", "ci",
            "--jwt-audience", "mlsteps-vault", "--secrets", secrets, "--", "true",
            env=oidc.env(),
        )  # fmt: skip
        assert done.code == 0, done
        assert "(GitHub OIDC token)" in done.out, done
        assert oidc.audiences == [] and oidc.refused == 0  # no id-token was asked for


@pytest.mark.parametrize("mode", ["exec", "fetch"])
def test_dry_run_lists_the_actions_a_run_applies(
    cli: Cli, dynamic: tuple[str, str, str, str], mode: str
) -> None:
    creds, mount, role_id, secret_id = dynamic
    cli.put("secret", f"{cli.uid}/ml/db", {"password": f"pw-{cli.uid}-fidelity"})
    args = ["secrets", mode, "--method", "approle", "--mount", mount, "--secrets",
            f"{creds} username | DB_USER"]  # fmt: skip
    args += ["--file", "x.env"] if mode == "fetch" else ["--", *cli.child("DB_USER")]
    env = {"VAULT_ROLE_ID": role_id, "VAULT_SECRET_ID": secret_id}
    dry = cli.run("--json", "--dry-run", *args, env=env)
    assert dry.code == 0, dry
    planned = [action["kind"] for action in json.loads(dry.out)["plan"]]
    assert len(leases_under(cli.vault, creds)) == 0

    done = cli.run("--json", *args, env=env)
    assert done.code == 0, done
    result = json.loads(done.out)  # --json: stdout is the result alone, the child's included
    assert result["applied"] == planned
    if mode == "exec":
        assert "DB_USER" in done.err  # the child's own output went to stderr
        assert leases_under(cli.vault, creds) == []
    else:
        assert cli.run("secrets", "revoke").code == 0
    assert live_logins(cli.vault, mount) == []
