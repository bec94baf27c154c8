"""Set up a real OpenBao server (tests/services.py: VaultServer) the way a test needs it.

Each helper talks to the server with its root token and is safe to call again with the same
names, so tests sharing the session's server only need names of their own. What the server
answers to the requests these helpers make is OpenBao's own; the only stand-ins are the two
peers that cannot run here, each said so where it is defined:

- GitHubOidcEndpoint plays the GitHub Actions runner's id-token service (there is no runner);
- TokenReviewServer plays the Kubernetes API's TokenReview endpoint (there is no cluster).

The JWTs both hand out are real RS256 tokens signed by a key the test makes (JwtIssuer), and
OpenBao checks them as it would GitHub's or a cluster's.
"""

from __future__ import annotations

import base64
import datetime
import json
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import hvac
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.services import RedisServer, VaultServer, free_port

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
KUBERNETES_ISSUER = "https://kubernetes.default.svc.cluster.local"

_Peer = TypeVar("_Peer", bound="_LoopbackHttp")


def client(vault: VaultServer, token: str | None = None) -> hvac.Client:
    """An hvac client for `vault`, with `token` (the root token when None)."""
    return hvac.Client(url=vault.addr, token=token or vault.root_token, timeout=10)


def unused_address() -> str:
    """The address of a loopback port nothing listens on: a Vault that is down."""
    return f"http://127.0.0.1:{free_port()}"


# --- mounts ------------------------------------------------------------------------------------


def enable_auth(vault: VaultServer, method_type: str, mount: str | None = None) -> str:
    """Enable an auth method at `mount` (default: its type) unless it is there; the mount."""
    mount = (mount or method_type).strip("/")
    root = client(vault)
    if f"{mount}/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method(method_type, path=mount)
    return mount


def enable_secrets(
    vault: VaultServer,
    engine: str,
    mount: str | None = None,
    options: Mapping[str, str] | None = None,
) -> str:
    """Enable a secrets engine at `mount` (default: its type) unless it is there; the mount."""
    mount = (mount or engine).strip("/")
    root = client(vault)
    if f"{mount}/" not in root.sys.list_mounted_secrets_engines()["data"]:
        root.sys.enable_secrets_engine(engine, path=mount, options=dict(options or {}))
    return mount


def kv_version(vault: VaultServer, mount: str) -> int:
    """1 or 2: the KV version of the mount at `mount`."""
    mounts = client(vault).sys.list_mounted_secrets_engines()["data"]
    entry = mounts.get(f"{mount.strip('/')}/")
    if entry is None or entry["type"] != "kv":
        raise ValueError(f"no KV mount at {mount!r}")
    return int((entry.get("options") or {}).get("version") or 1)


def mount_kv(vault: VaultServer, path: str, version: int = 2) -> str:
    """A KV mount of `version` (1 or 2) at `path`; the mount path. Dev mode already has KV v2
    at `secret/`. A new v2 mount answers "Upgrading from non-versioned to versioned data" for
    a moment: this returns once it serves."""
    mount = enable_secrets(vault, "kv", path, options={"version": str(version)})
    found = kv_version(vault, mount)
    if found != version:
        raise ValueError(f"{mount}/ is already a KV v{found} mount, not v{version}")
    if version == 2:
        root = client(vault)
        deadline = time.monotonic() + 10
        while True:
            try:
                root.secrets.kv.v2.read_configuration(mount_point=mount)
                break
            except hvac.exceptions.VaultError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    return mount


def put_kv(vault: VaultServer, mount: str, path: str, data: Mapping[str, Any]) -> int | None:
    """Write `data` at `path` in the KV mount `mount` (v1 or v2, found from the mount).
    For v2, the version this write made (1, 2, ...); for v1, None."""
    root = client(vault)
    if kv_version(vault, mount) == 2:
        written = root.secrets.kv.v2.create_or_update_secret(
            path, secret=dict(data), mount_point=mount
        )
        version: int = written["data"]["version"]
        return version
    root.secrets.kv.v1.create_or_update_secret(path, secret=dict(data), mount_point=mount)
    return None


# --- policies and tokens -----------------------------------------------------------------------


def policy(vault: VaultServer, name: str, hcl: str) -> str:
    """Write (or replace) the ACL policy `name`; the name."""
    client(vault).sys.create_or_update_acl_policy(name, hcl)
    return name


def read_policy(vault: VaultServer, name: str, paths: Iterable[str]) -> str:
    """A policy allowing `read` on each of `paths` (a KV v2 path is `MOUNT/data/PATH`)."""
    rules = "\n".join(f'path "{p}" {{\n  capabilities = ["read"]\n}}' for p in paths)
    return policy(vault, name, rules)


def token_with_policies(vault: VaultServer, policies: Iterable[str], ttl: str = "1h") -> str:
    """A new token with `policies` (plus `default`, which lets it look itself up)."""
    made = client(vault).auth.token.create(policies=list(policies), ttl=ttl)
    token: str = made["auth"]["client_token"]
    return token


def token_works(vault: VaultServer, token: str) -> bool:
    """Whether `token` is alive on the server (auth/token/lookup-self with it)."""
    answer = requests.get(
        f"{vault.addr}/v1/auth/token/lookup-self", headers={"X-Vault-Token": token}, timeout=10
    )
    return answer.status_code == 200


def revoke_token(vault: VaultServer, token: str) -> None:
    client(vault).auth.token.revoke(token)


def seal(vault: VaultServer) -> None:
    """Seal the server: from then on it answers 503 "Vault is sealed" to everything."""
    client(vault).sys.seal()


# --- AppRole -----------------------------------------------------------------------------------


def approle(
    vault: VaultServer,
    role: str,
    policies: Iterable[str],
    mount: str = "approle",
    **role_params: Any,
) -> tuple[str, str]:
    """An AppRole `role` with `policies` (enabling AppRole at `mount` if needed);
    (role_id, secret_id) for a login. `role_params` go to the role as they are
    (token_ttl="5m", secret_id_num_uses=1, ...)."""
    enable_auth(vault, "approle", mount)
    root = client(vault)
    root.auth.approle.create_or_update_approle(
        role, token_policies=list(policies), mount_point=mount, **role_params
    )
    role_id: str = root.auth.approle.read_role_id(role, mount_point=mount)["data"]["role_id"]
    made = root.auth.approle.generate_secret_id(role, mount_point=mount)
    secret_id: str = made["data"]["secret_id"]
    return role_id, secret_id


def wrapped_secret_id(
    vault: VaultServer, role: str, ttl: str = "60s", mount: str = "approle"
) -> str:
    """A new secret id of the AppRole `role`, response-wrapped: the wrapping token, which
    sys/wrapping/unwrap turns into the secret id once."""
    made = client(vault).auth.approle.generate_secret_id(role, mount_point=mount, wrap_ttl=ttl)
    token: str = made["wrap_info"]["token"]
    return token


# --- JWT ---------------------------------------------------------------------------------------


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class JwtIssuer:
    """An RSA key pair made here and the RS256 JWTs it signs, built by hand (header and
    payload base64url, PKCS#1 v1.5 signature over SHA-256), as GitHub or a cluster signs
    theirs. `configure` makes OpenBao's JWT auth trust this key and `issuer`."""

    def __init__(self, issuer: str = GITHUB_ISSUER, key_id: str | None = None) -> None:
        self.issuer = issuer
        self.key_id = key_id or uuid.uuid4().hex[:16]
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def public_pem(self) -> str:
        return (
            self.key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def sign(self, claims: Mapping[str, Any]) -> str:
        """A compact RS256 JWT of `claims` (taken as they are: no `iss` or times added)."""
        header = {"alg": "RS256", "typ": "JWT", "kid": self.key_id}
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    def github_claims(
        self,
        repository: str,
        ref: str,
        audience: str,
        lifetime: float = 300,
        **extra: Any,
    ) -> dict[str, Any]:
        """Claims shaped like a GitHub Actions OIDC token's, from this issuer; `extra`
        overrides or adds (exp=..., sub=...)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "jti": str(uuid.uuid4()),
            "sub": f"repo:{repository}:ref:{ref}",
            "aud": audience,
            "ref": ref,
            "ref_type": "branch" if ref.startswith("refs/heads/") else "tag",
            "sha": "0" * 40,
            "repository": repository,
            "repository_owner": repository.split("/", 1)[0],
            "run_id": "1",
            "run_number": "1",
            "run_attempt": "1",
            "actor": "mlsteps-test",
            "workflow": "ci",
            "event_name": "push",
            "job_workflow_ref": f"{repository}/.github/workflows/ci.yml@{ref}",
            "iss": self.issuer,
            "nbf": now - 5,
            "iat": now,
            "exp": now + int(lifetime),
        }
        claims.update(extra)
        return claims

    def configure(
        self,
        vault: VaultServer,
        mount: str = "jwt",
        role: str = "ci",
        bound_claims: Mapping[str, Any] | None = None,
        audience: str = "https://github.com/mlsteps",
        policies: Iterable[str] = ("default",),
        user_claim: str = "sub",
        token_ttl: str = "5m",
    ) -> str:
        """JWT auth at `mount` trusting this key and issuer, with a role `role` that takes a
        token for `audience` whose claims match `bound_claims` (e.g. {"repository": "o/r",
        "ref": "refs/heads/main"}); the mount. Replaces the mount's config (one issuer per
        mount)."""
        enable_auth(vault, "jwt", mount)
        root = client(vault)
        root.write_data(
            f"auth/{mount}/config",
            data={"jwt_validation_pubkeys": [self.public_pem()], "bound_issuer": self.issuer},
        )
        root.write_data(
            f"auth/{mount}/role/{role}",
            data={
                "role_type": "jwt",
                "bound_audiences": [audience],
                "bound_claims": dict(bound_claims or {}),
                "user_claim": user_claim,
                "token_policies": list(policies),
                "token_ttl": token_ttl,
            },
        )
        return mount


# --- loopback HTTP peers -----------------------------------------------------------------------


class _LoopbackHttp:
    """A threaded HTTP server on a free loopback port; a context manager that stops it."""

    def __init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner._answer(self, "GET")

            def do_POST(self) -> None:
                owner._answer(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the tests read what was asked from the server's own records

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port: int = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        # A short poll: close() waits for the loop to notice, 0.5 s by default.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def _answer(self, request: BaseHTTPRequestHandler, method: str) -> None:
        raise NotImplementedError

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, body: Mapping[str, Any]) -> None:
        raw = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(raw)))
        request.end_headers()
        request.wfile.write(raw)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(10)

    def __enter__(self: _Peer) -> _Peer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class GitHubOidcEndpoint(_LoopbackHttp):
    """A stand-in for the GitHub Actions runner's id-token service (no runner runs here).

    As on a runner, a job gets ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN
    (`env()`); GET `<URL>&audience=AUD` with `Authorization: bearer <TOKEN>` answers
    `{"count": 1, "value": "<jwt>"}`, a JWT signed by `issuer` with GitHub's claims for
    `repository` and `ref` and `aud` = AUD (GitHub's default, https://github.com/OWNER, when
    no audience is asked for). A wrong or missing request token gets 401. `audiences` records
    the audience of each request (None when none was asked for); `tokens` what was issued.
    """

    PATH = "/_apis/distributedtask/hubs/Actions/plans/mlsteps/jobs/test/idtoken"

    def __init__(
        self,
        issuer: JwtIssuer,
        repository: str = "mlsteps/demo",
        ref: str = "refs/heads/main",
        **extra_claims: Any,
    ) -> None:
        self.issuer = issuer
        self.repository = repository
        self.ref = ref
        self.extra_claims = extra_claims
        self.request_token = uuid.uuid4().hex
        self.audiences: list[str | None] = []
        self.tokens: list[str] = []
        self.refused = 0
        super().__init__()

    def env(self) -> dict[str, str]:
        """The two variables a runner gives a job with `permissions: id-token: write`."""
        return {
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"{self.url}{self.PATH}?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token,
        }

    def _answer(self, request: BaseHTTPRequestHandler, method: str) -> None:
        url = urllib.parse.urlsplit(request.path)
        if method != "GET" or url.path != self.PATH:
            self._reply(request, 404, {"message": "not found"})
            return
        if request.headers.get("Authorization", "") != f"bearer {self.request_token}":
            self.refused += 1
            self._reply(request, 401, {"message": "Bad credentials"})
            return
        audience = urllib.parse.parse_qs(url.query).get("audience", [None])[0]
        self.audiences.append(audience)
        owner = self.repository.split("/", 1)[0]
        aud = audience or f"https://github.com/{owner}"
        claims = self.issuer.github_claims(self.repository, self.ref, aud, **self.extra_claims)
        token = self.issuer.sign(claims)
        self.tokens.append(token)
        self._reply(request, 200, {"count": 1, "value": token})


# --- Kubernetes --------------------------------------------------------------------------------


def self_signed_ca(common_name: str = "mlsteps-test-kubernetes-ca") -> str:
    """A self-signed CA certificate (PEM). OpenBao's Kubernetes auth insists on a
    kubernetes_ca_cert once disable_local_ca_jwt is set, even for an http:// host, where it
    is never used."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class TokenReviewServer(_LoopbackHttp):
    """A stand-in for the Kubernetes API's TokenReview endpoint (no cluster runs here).

    POST /apis/authentication.k8s.io/v1/tokenreviews answers as the API server does (201, a
    TokenReview): authenticated, with user.username `system:serviceaccount:NS:NAME` and its
    uid, for a service-account token this server issued (`service_account_token`) and has not
    had `revoke`d; unauthenticated, with an error, for anything else. `reviews` records each
    review: the token asked about and the Authorization header it came with.
    """

    PATH = "/apis/authentication.k8s.io/v1/tokenreviews"

    def __init__(self, issuer: str = KUBERNETES_ISSUER) -> None:
        self.issuer = JwtIssuer(issuer)
        self.audiences = [issuer]
        self._issued: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.reviews: list[dict[str, str]] = []
        super().__init__()

    def service_account_token(self, namespace: str, name: str, lifetime: float = 600) -> str:
        """A projected service-account token (JWT) for NAMESPACE/NAME, as a pod mounts it."""
        uid = str(uuid.uuid4())
        now = int(time.time())
        claims = {
            "aud": self.audiences,
            "exp": now + int(lifetime),
            "iat": now,
            "nbf": now,
            "iss": self.issuer.issuer,
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": name, "uid": uid},
            },
        }
        token = self.issuer.sign(claims)
        with self._lock:
            self._issued[token] = {"namespace": namespace, "name": name, "uid": uid}
        return token

    def revoke(self, token: str) -> None:
        """From now on, reviews of `token` say unauthenticated (its service account deleted)."""
        with self._lock:
            self._issued.pop(token, None)

    def _answer(self, request: BaseHTTPRequestHandler, method: str) -> None:
        if method != "POST" or urllib.parse.urlsplit(request.path).path != self.PATH:
            self._reply(request, 404, {"kind": "Status", "status": "Failure", "code": 404})
            return
        length = int(request.headers.get("Content-Length") or 0)
        review = json.loads(request.rfile.read(length) or b"{}")
        token = str((review.get("spec") or {}).get("token", ""))
        with self._lock:
            self.reviews.append(
                {"token": token, "authorization": request.headers.get("Authorization", "")}
            )
            account = self._issued.get(token)
        if account is None:
            status: dict[str, Any] = {"user": {}, "error": "[invalid bearer token]"}
        else:
            ns, name = account["namespace"], account["name"]
            status = {
                "authenticated": True,
                "user": {
                    "username": f"system:serviceaccount:{ns}:{name}",
                    "uid": account["uid"],
                    "groups": [
                        "system:serviceaccounts",
                        f"system:serviceaccounts:{ns}",
                        "system:authenticated",
                    ],
                },
                "audiences": self.audiences,
            }
        self._reply(
            request,
            201,
            {
                "kind": "TokenReview",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"creationTimestamp": None},
                "spec": {"token": token},
                "status": status,
            },
        )


def configure_kubernetes_auth(
    vault: VaultServer,
    server: TokenReviewServer,
    role: str,
    namespace: str,
    service_account: str,
    policies: Iterable[str],
    mount: str = "kubernetes",
    token_ttl: str = "5m",
) -> str:
    """Kubernetes auth at `mount` pointed at `server` (its plain-http URL: OpenBao accepts it),
    with a role `role` bound to NAMESPACE/SERVICE_ACCOUNT; the mount. With no reviewer JWT
    configured, OpenBao sends each login's own JWT as the reviewer's bearer token."""
    enable_auth(vault, "kubernetes", mount)
    root = client(vault)
    root.write_data(
        f"auth/{mount}/config",
        data={
            "kubernetes_host": server.url,
            "kubernetes_ca_cert": self_signed_ca(),
            "disable_local_ca_jwt": True,
        },
    )
    root.write_data(
        f"auth/{mount}/role/{role}",
        data={
            "bound_service_account_names": [service_account],
            "bound_service_account_namespaces": [namespace],
            "token_policies": list(policies),
            "token_ttl": token_ttl,
        },
    )
    return mount


# --- dynamic secrets and leases ----------------------------------------------------------------


def dynamic_creds_role(
    vault: VaultServer,
    redis: RedisServer,
    role: str = "reader",
    mount: str = "database",
    ttl: str = "1h",
) -> str:
    """OpenBao's database engine at `mount`, connected to `redis` (the built-in
    redis-database-plugin), with a role `role` making read-only Redis users; the path whose
    plain GET (`<mount>/creds/<role>`) returns new credentials under a lease (`lease_id`).
    Revoking the lease drops the Redis user (`redis.acl_users()` shows it gone)."""
    enable_secrets(vault, "database", mount)
    root = client(vault)
    connection = f"redis-{redis.port}"
    root.write_data(
        f"{mount}/config/{connection}",
        data={
            "plugin_name": "redis-database-plugin",
            "host": redis.host,
            "port": redis.port,
            "username": "default",
            "password": redis.password,
            "allowed_roles": "*",
        },
    )
    root.write_data(
        f"{mount}/roles/{role}",
        data={
            "db_name": connection,
            # Redis ACL rules for the leased user: every key, read commands only.
            "creation_statements": json.dumps(["~*", "+@read"]),
            "default_ttl": ttl,
            "max_ttl": ttl,
        },
    )
    return f"{mount}/creds/{role}"


def lease_exists(vault: VaultServer, lease_id: str) -> bool:
    """Whether the server still holds `lease_id` (sys/leases/lookup; a revoked or expired
    lease answers 400 "invalid lease")."""
    answer = requests.put(
        f"{vault.addr}/v1/sys/leases/lookup",
        headers={"X-Vault-Token": vault.root_token},
        json={"lease_id": lease_id},
        timeout=10,
    )
    if answer.status_code == 400 and "invalid lease" in answer.text:
        return False
    answer.raise_for_status()
    return True


def revoke_lease(vault: VaultServer, lease_id: str) -> None:
    """Revoke `lease_id` now (sys/leases/revoke, synchronous). OpenBao answers 204 whether
    or not the lease existed."""
    client(vault).sys.revoke_lease(lease_id)
