"""Talking to Vault (or OpenBao, same API): log in, read secrets, revoke what we created.

hvac provides the HTTP session (TLS CA, client certificate, namespace and token headers); the
documented endpoints are called directly so that every call gets the same retries and the same
messages. Every answer Vault can give a user is turned into a message that says what to do.
Imported only when a step really talks to Vault: ``--help`` and ``--dry-run`` never load hvac.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from steps.core.errors import ConfigError, StepFailed
from steps.core.secret import Secret, read_secret_file

AUTH_METHODS = ("token", "approle", "jwt", "kubernetes")
# Vault's answers worth a retry: 412 while a write is not yet visible on a performance standby,
# 429 rate limited, 5xx a server or proxy in trouble (503 "sealed" is told apart: no retry).
RETRY_STATUSES = frozenset({412, 429, 500, 502, 503, 504})
BACKOFF_BASE = 0.25
BACKOFF_CAP = 4.0


class VaultFailed(StepFailed):
    """Vault (or the way to it) said no; exit 1 with what to do about it."""


@dataclass(frozen=True, kw_only=True)
class Connection:
    url: str
    namespace: str | None = None
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    tls_skip_verify: bool = False
    timeout: float = 60.0  # for the whole operation, retries included


@dataclass(frozen=True, kw_only=True)
class Credentials:
    method: str
    mount: str
    role: str | None = None
    token: Secret | None = None
    role_id: Secret | None = None
    secret_id: Secret | None = None
    secret_id_wrapped: bool = False
    jwt: Secret | None = None
    # GitHub Actions' id-token service (ACTIONS_ID_TOKEN_REQUEST_URL / _TOKEN), for jwt login.
    oidc_request_url: str | None = None
    oidc_request_token: Secret | None = None
    jwt_audience: str | None = None
    kubernetes_token_path: str | None = None


@dataclass(frozen=True)
class Login:
    token: Secret
    policies: tuple[str, ...]
    # True when the login created the token (so it is ours to revoke); a token the user
    # gave is theirs and stays valid.
    created: bool


@dataclass(frozen=True)
class Mount:
    path: str  # "secret/"
    type: str  # "kv", "database", …
    kv_version: int | None


@dataclass(frozen=True)
class ReadResult:
    data: Mapping[str, Any]
    lease_id: str | None
    mount: Mount | None


@dataclass
class Vault:
    """One server, one token, one deadline. Thread-safe for concurrent reads."""

    connection: Connection
    on_retry: Callable[[str], None] = lambda line: None
    token: Secret | None = None
    policies: tuple[str, ...] = ()
    _deadline: float = 0.0
    _mounts: dict[str, Mount | None] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        import requests
        from hvac.adapters import RawAdapter

        conn = self.connection
        verify: bool | str = conn.ca_cert or True
        if conn.tls_skip_verify:
            verify = False
            import urllib3

            # The step has said it once, as a warning; urllib3 would repeat it per request.
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        session = requests.Session()
        # hvac takes the session's CA and client certificate over its own arguments (and
        # passes them on each request): set them on the session.
        session.verify = verify
        if conn.client_cert:
            session.cert = (
                (conn.client_cert, conn.client_key) if conn.client_key else conn.client_cert
            )
        # Reads run concurrently: enough pooled connections that none waits for another.
        session.mount("https://", requests.adapters.HTTPAdapter(pool_maxsize=32))
        session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=32))
        self._adapter = RawAdapter(
            base_uri=conn.url.rstrip("/"),
            namespace=conn.namespace,
            verify=not conn.tls_skip_verify,
            session=session,
            # Our own retries and messages decide; hvac just returns the response.
            ignore_exceptions=True,
        )
        self._deadline = time.monotonic() + conn.timeout

    def restart_clock(self, seconds: float) -> None:
        """A new budget from now. --timeout bounds the login and the reads; revoking at the end
        gets a budget of its own, or a command that ran longer than --timeout would leave its
        leases and login token behind."""
        self._deadline = time.monotonic() + seconds

    # ----- the one way every call goes ----------------------------------------------------
    def call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        json: Mapping[str, Any] | None = None,
        token: Secret | None = None,
        params: Mapping[str, Any] | None = None,
        once: bool = False,
    ) -> tuple[int, dict[str, Any]]:
        """(status, body) of one request, retried with jittered backoff until the deadline.

        Connection errors and RETRY_STATUSES are retried; other answers return to the caller,
        which knows what a 403 or 404 means for what it asked. ``once``: the request makes
        something (a login makes a token, an unwrap uses up its wrapping token), so it is sent
        again only when it cannot have been carried out: no connection, 412, 429 or 503.
        """
        import requests

        headers = {}
        use = token if token is not None else self.token
        if use is not None:
            headers["X-Vault-Token"] = use.reveal()
        attempt = 0
        while True:
            attempt += 1
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise VaultFailed(
                    f"Vault at {self.connection.url} did not answer {what} within the "
                    f"{self.connection.timeout:g} s timeout. Check the server, or raise "
                    "--timeout."
                )
            try:
                response = self._adapter.request(
                    method,
                    f"v1/{path.lstrip('/')}",
                    headers=headers,
                    json=json,
                    params=params,
                    timeout=min(10.0, remaining),
                    raise_exception=False,
                )
            except requests.exceptions.SSLError as exc:
                raise VaultFailed(
                    f"TLS to Vault at {self.connection.url} failed ({_short(exc)}). Give the "
                    "server's CA with --ca-cert (env VAULT_CACERT); --tls-skip-verify only "
                    "for a test server."
                ) from None
            except (requests.exceptions.ReadTimeout, requests.exceptions.ChunkedEncodingError):
                # Connected, but the answer never came (or broke off): the server is stuck.
                if once:
                    raise VaultFailed(_maybe_done(self.connection.url, what, "no answer")) from None
                reason = "no answer"
                status = 0
            except requests.exceptions.RequestException as exc:
                reason = f"cannot connect ({_short(exc)})"
                status = 0
            else:
                status = response.status_code
                body = _body(response)
                if status < 400 or status not in RETRY_STATUSES:
                    return status, body
                errors = _errors(body)
                if once and status in (500, 502, 504):
                    raise VaultFailed(_maybe_done(self.connection.url, what, f"answered {status}"))
                if status == 503 and "sealed" in errors.lower():
                    raise VaultFailed(
                        f"Vault at {self.connection.url} is sealed, so it cannot serve {what}. "
                        "An operator must unseal it (`vault operator unseal` / "
                        "`bao operator unseal`); then run the step again."
                    )
                reason = f"Vault answered {status}" + (f": {errors}" if errors else "")
            delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)) * random.uniform(0.5, 1)
            if time.monotonic() + delay >= self._deadline:
                tries = "once" if attempt == 1 else f"{attempt} times"
                if reason == "no answer":
                    raise VaultFailed(
                        f"Vault at {self.connection.url} did not answer {what} within the "
                        f"{self.connection.timeout:g} s timeout (asked {tries}): it accepts "
                        "connections but is stuck. Check the server, or raise --timeout."
                    )
                if status == 0:
                    raise VaultFailed(
                        f"cannot reach Vault at {self.connection.url} for {what}: {reason}, "
                        f"tried {tries} in {self.connection.timeout:g} s. Is the server "
                        "running, and is --url (env VAULT_ADDR) right?"
                    )
                raise VaultFailed(
                    f"Vault at {self.connection.url} kept failing {what} ({reason}), tried "
                    f"{tries} in {self.connection.timeout:g} s. Try again later or ask the "
                    "Vault operators."
                )
            self.on_retry(f"{what} failed ({reason}); retry {attempt} in {delay:.1f} s")
            time.sleep(delay)

    # ----- login --------------------------------------------------------------------------
    def login(self, creds: Credentials) -> Login:
        method = creds.method
        if method == "token":
            assert creds.token is not None
            status, body = self.call(
                "GET", "auth/token/lookup-self", what="the token lookup", token=creds.token
            )
            if status == 403:
                raise VaultFailed(
                    "Vault refused the token: it is expired, revoked, or from another "
                    "server or namespace. Get a fresh token (VAULT_TOKEN or --token-file)."
                )
            _expect_ok(status, body, "looking up the token")
            self.token = creds.token
            self.policies = tuple(body.get("data", {}).get("policies") or ())
            return Login(creds.token, self.policies, created=False)
        if method == "approle":
            assert creds.role_id is not None and creds.secret_id is not None
            secret_id = creds.secret_id
            if creds.secret_id_wrapped:
                secret_id = self._unwrap_secret_id(secret_id)
            payload = {"role_id": creds.role_id.reveal(), "secret_id": secret_id.reveal()}
        elif method in ("jwt", "kubernetes"):
            jwt = creds.jwt if method == "jwt" else _read_sa_token(creds)
            if jwt is None:
                jwt = self._github_id_token(creds)
            payload = {"role": creds.role or "", "jwt": jwt.reveal()}
        else:  # parse-time checks make this unreachable
            raise ConfigError(f"--method {method}: unknown. One of: {', '.join(AUTH_METHODS)}.")
        status, body = self.call(
            "POST",
            f"auth/{creds.mount}/login",
            what=f"the {method} login",
            json=payload,
            once=True,
        )
        if status >= 400:
            raise VaultFailed(_login_refused(creds, status, _errors(body)))
        auth = body.get("auth") or {}
        token = Secret(auth["client_token"])
        self.token = token
        self.policies = tuple(auth.get("policies") or ())
        return Login(token, self.policies, created=True)

    def _unwrap_secret_id(self, wrapping_token: Secret) -> Secret:
        status, body = self.call(
            "POST",
            "sys/wrapping/unwrap",
            what="unwrapping the secret id",
            token=wrapping_token,
            once=True,
        )
        if status >= 400:
            raise VaultFailed(
                f"the wrapped secret id could not be unwrapped ({_errors(body) or status}): it "
                "was already used, it expired, or it is not a wrapping token. A wrapping token "
                "works once — if this pipeline did not use it, someone else may have; ask for a "
                "new one and tell your Vault operators."
            )
        secret_id = (body.get("data") or {}).get("secret_id")
        if not secret_id:
            raise VaultFailed(
                "the wrapping token held no secret_id: give a token that wraps "
                "auth/approle/role/ROLE/secret-id, or drop --secret-id-wrapped."
            )
        return Secret(secret_id)

    def _github_id_token(self, creds: Credentials) -> Secret:
        """The GitHub Actions runner's OIDC id-token (needs `permissions: id-token: write`)."""
        import requests

        if not creds.oidc_request_url or creds.oidc_request_token is None:
            raise ConfigError(
                f"--method {creds.method} needs a JWT: set --jwt-file or the env "
                "MLSTEPS_SECRETS_JWT / VAULT_JWT; on GitHub Actions give the job "
                "`permissions: id-token: write` so the runner's OIDC token can be used."
            )
        params = {"audience": creds.jwt_audience} if creds.jwt_audience else {}
        try:
            response = requests.get(
                creds.oidc_request_url,
                params=params,
                headers={"Authorization": f"bearer {creds.oidc_request_token.reveal()}"},
                timeout=min(10.0, max(1.0, self._deadline - time.monotonic())),
            )
        except requests.exceptions.RequestException as exc:
            raise VaultFailed(
                f"the GitHub OIDC token service did not answer ({_short(exc)})."
            ) from None
        value = _body(response).get("value") if response.status_code == 200 else None
        if not value:
            raise VaultFailed(
                f"the GitHub OIDC token service answered {response.status_code}: the job "
                "needs `permissions: id-token: write`."
            )
        return Secret(value)

    # ----- reading ------------------------------------------------------------------------
    def mount_of(self, path: str) -> Mount | None:
        """The secrets engine serving path, from sys/internal/ui/mounts (what the Vault CLI
        uses to tell KV v1 from v2); None when this token may not ask (then a plain read)."""
        head = path.split("/", 1)[0]
        with self._lock:
            for known, mount in self._mounts.items():
                if path.startswith(known) and mount is not None:
                    return mount
            if head in self._mounts and self._mounts[head] is None:
                return None
        status, body = self.call(
            "GET", f"sys/internal/ui/mounts/{path}", what=f"the mount lookup of {path}"
        )
        mount = None
        if status == 200:
            data = body.get("data") or {}
            options = data.get("options") or {}
            kind = data.get("type") or ""
            version = int(options.get("version") or 1) if kind == "kv" else None
            mount = Mount(data.get("path") or head + "/", kind, version)
        with self._lock:
            self._mounts[mount.path if mount else head] = mount
        return mount

    def read(
        self,
        path: str,
        version: int | None,
        *,
        optional: bool = False,
        keys: Sequence[str] = (),
    ) -> ReadResult | None:
        """The data at path (KV v1 or v2 with the same path form, or any engine); None when
        nothing is there and optional; else a VaultFailed that names the path and the keys
        that were asked of it."""
        mount = self.mount_of(path)
        api_path, params = path, {}
        if mount is not None and mount.kv_version == 2:
            inner = path[len(mount.path) :]
            if not inner.startswith("data/"):  # users write secret/ml/db; the API wants data/
                api_path = f"{mount.path}data/{inner}"
            if version is not None:
                params["version"] = version
        elif version is not None:
            kind = f"KV v{mount.kv_version}" if mount and mount.kv_version else "this engine"
            raise ConfigError(
                f"secret {path}: version {version} is pinned, but {kind} has no versions; only "
                "KV v2 keeps versions. Drop the version."
            )
        status, body = self.call("GET", api_path, what=f"reading {path}", params=params)
        if status == 404:
            if optional:
                return None
            where = ""
            if mount is not None and mount.kv_version:
                where = f" (KV v{mount.kv_version} mount {mount.path})"
            elif mount is not None:  # not KV (cubbyhole, database…): it has no KV version
                where = f" ({mount.type or 'secrets'} engine at {mount.path})"
            pinned = f" version {version}" if version is not None else ""
            asked = f", so no key {', '.join(repr(k) for k in keys)}" if keys else ""
            raise VaultFailed(
                f"secret {path}{pinned}: nothing there{where}{asked}. Check the path (a KV v2 "
                "path is written without data/, as in the UI), or mark the request optional."
            )
        if status == 403:
            policies = ", ".join(self.policies) or "unknown"
            rule = 'path "' + api_path + '" { capabilities = ["read"] }'
            if mount is None:
                # The token may not even see which engine serves the path: name both forms.
                head, _, rest = path.partition("/")
                raise VaultFailed(
                    f"secret {path}: permission denied. The token's policies ({policies}) give "
                    f"it nothing on the mount {head}/ (or there is no such mount). Ask for a "
                    f"policy with `{rule}` (on a KV "
                    f'v2 mount: `path "{head}/data/{rest}"`).'
                )
            raise VaultFailed(
                f"secret {path}: permission denied. The token's policies ({policies}) do not "
                f"grant read on {api_path}; ask for a policy with `{rule}`."
            )
        _expect_ok(status, body, f"reading {path}")
        data = body.get("data") or {}
        if mount is not None and mount.kv_version == 2:
            meta = data.get("metadata") or {}
            if data.get("data") is None:
                state = "destroyed" if meta.get("destroyed") else "deleted"
                raise VaultFailed(
                    f"secret {path} version {meta.get('version', version)} is {state}. "
                    "Pin another version, or undelete it."
                )
            data = data["data"]
        return ReadResult(data, body.get("lease_id") or None, mount)

    # ----- revoking -----------------------------------------------------------------------
    def revoke_lease(self, lease_id: str) -> bool:
        what = f"revoking lease {lease_id}"
        status, _ = self.call("PUT", "sys/leases/revoke", what=what, json={"lease_id": lease_id})
        return status < 400

    def revoke_self(self) -> bool:
        status, _ = self.call("POST", "auth/token/revoke-self", what="revoking the login token")
        return status < 400


# ----- helpers ---------------------------------------------------------------------------------
def _read_sa_token(creds: Credentials) -> Secret:
    return read_secret_file(
        "--kubernetes-token-path",
        creds.kubernetes_token_path or "",
        "Run in a pod with a mounted service account, or give the path.",
    )


def _maybe_done(url: str, what: str, said: str) -> str:
    return (
        f"Vault at {url} {said} to {what}; it is not sent again because it may have been "
        "carried out (a second login would leave a token nobody revokes; a wrapping token "
        "works once). Check the server and run the step again."
    )


def _login_refused(creds: Credentials, status: int, errors: str) -> str:
    said = f"Vault answered {status}" + (f": {errors}" if errors else "")
    if creds.method == "approle":
        fix = (
            "Check the role id and secret id (env VAULT_ROLE_ID / VAULT_SECRET_ID or their "
            "-file options): a secret id may be expired or used up (secret_id_num_uses)."
        )
    elif creds.method == "jwt":
        fix = (
            f"Check --role {creds.role}: its bound claims (e.g. repository, ref), bound "
            "audiences (--jwt-audience) and the token's expiry must match."
        )
    else:
        fix = f"Check --role {creds.role}: it must bind this pod's service account and namespace."
    return f"{creds.method} login at auth/{creds.mount} refused ({said}). {fix}"


def _expect_ok(status: int, body: Mapping[str, Any], doing: str) -> None:
    if status >= 400:
        raise VaultFailed(f"Vault answered {status} {doing}: {_errors(body) or 'no details'}.")


def _body(response: Any) -> dict[str, Any]:
    try:
        parsed = response.json()
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _errors(body: Mapping[str, Any]) -> str:
    errors = body.get("errors") or []
    return "; ".join(str(e).strip() for e in errors if str(e).strip())


def _short(exc: BaseException) -> str:
    # requests wraps urllib3 wraps socket errors; the innermost reason is what a person needs.
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out"):
        if marker in text:
            return marker
    # ssl's own words, e.g. "certificate verify failed: self-signed certificate in chain"
    tls = re.search(r"\[SSL[^\]]*\] ([^()'\"]+)", text)
    if tls:
        return tls.group(1).strip()
    return text[:200]
