"""The options of ``mlsteps secrets`` and their resolution into a typed config.

One source for every face: the flags, ``MLSTEPS_SECRETS_*`` (and the Vault CLI's ``VAULT_*``)
variables, the action inputs and the Jenkins keys all come from ``SECTION``. Credentials are
options without a flag: a flag would put them in argv, readable by every process in /proc.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from steps.core.config_file import resolve
from steps.core.errors import ConfigError
from steps.core.options import Option, Output, Section
from steps.core.runtime import Runtime
from steps.core.secret import Secret, read_secret_file
from steps.core.values import parse_duration, parse_pem_file, parse_token_file
from steps.secrets import HELP
from steps.secrets.specs import SecretSpec, check_names, env_name_for, parse_specs
from steps.services.vault import AUTH_METHODS

DEFAULT_SA_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
SPECS_SCHEMA = {
    "description": "vault-action lines, or a list of {path, key, env, version, optional}",
    "oneOf": [
        {"type": "string"},
        {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["path", "key"],
                "properties": {
                    "path": {"type": "string"},
                    "key": {"type": "string"},
                    "env": {"type": "string"},
                    "version": {"type": "integer", "minimum": 1},
                    "optional": {"type": "boolean"},
                },
            },
        },
    ],
}


# Retries go on until --timeout: it must end, and leave time for at least one request.
TIMEOUT_RANGE = (0.1, 24 * 3600.0)


def parse_timeout(text: str) -> float:
    seconds = parse_duration(text)
    low, high = TIMEOUT_RANGE
    if not low <= seconds <= high:  # also false for nan; a 400-digit number is inf
        raise ValueError("a duration from 100ms to 24h, such as 30s or 5m")
    return seconds


def _secret(name: str, help: str, fallback: str, github: str, jenkins: str) -> Option:
    # Secret values never come as flags: a flag is in argv, which every process on the
    # machine can read in /proc. They come from the environment or from a -file option.
    # The action maps its input into the environment; Jenkins binds a credential.
    return Option(
        name=name,
        help=help,
        secret=True,
        cli=False,
        env_fallbacks=(fallback,),
        face_help={
            "action": f"{help.removesuffix(' Env only.')}, e.g. `{github}`; passed to mlsteps "
            "in its environment, never on its command line.",
            "jenkins": f"Secret text credential holding {jenkins}.",
        },
    )


SECTION = Section(
    "secrets",
    HELP,
    (
        Option(
            name="secrets",
            kind="structured",
            jenkins_form="WORDS",  # requests: one String, or a List of one each
            parse=parse_specs,
            schema=SPECS_SCHEMA,
            metavar="'PATH KEY | NAME;'",
            face_help={
                "jenkins": "What to read, in vault-action's syntax: one String of requests "
                "(separated by `;` or new lines) or a List with one request each: "
                "`'PATH KEY | NAME'`; `'PATH *'` takes every key. KV v1 and v2 paths are written "
                "alike (`secret/ml/db`). Version pins and optional keys: the list form in the "
                "`config` file, or a String holding it, `'[{path: secret/ml/db, key: password, "
                "env: DB_PASSWORD, version: 3}]'`."
            },
            help="What to read, in vault-action's syntax: `secret/ml/db password | "
            "DB_PASSWORD` (`PATH *` takes every key), requests separated by `;` or "
            "new lines. KV v1 and v2 paths are written alike. To pin a KV v2 version"
            " or mark a request optional, give a list instead: `[{path: "
            "secret/ml/db, key: password, env: DB_PASSWORD, version: 3}]`.",
        ),
        Option(
            name="url",
            help="Vault server, e.g. `https://vault.example:8200`.",
            env_fallbacks=("VAULT_ADDR",),
        ),
        Option(
            name="namespace",
            help="Vault namespace (X-Vault-Namespace).",
            env_fallbacks=("VAULT_NAMESPACE",),
        ),
        Option(
            name="method",
            kind="choice",
            choices=AUTH_METHODS,
            default="token",
            help="How to log in: `token`, `approle`, `jwt` or `kubernetes`. `jwt` on "
            "GitHub Actions without a JWT uses the runner's OIDC token (the job "
            "needs `permissions: id-token: write`).",
        ),
        Option(
            name="mount", help="Path the auth method is mounted at. Default: the method's name."
        ),
        Option(name="role", help="Role to log in as (`jwt`, `kubernetes`)."),
        _secret(
            "token",
            "Vault token (method `token`). Env only.",
            "VAULT_TOKEN",
            "secrets.VAULT_TOKEN",
            "the Vault token (method `token`)",
        ),
        Option(
            name="token-file",
            kind="path",
            parse=parse_token_file,
            parse_takes_base=True,
            help="File holding the Vault token.",
        ),
        _secret(
            "role-id",
            "AppRole role id. Env only.",
            "VAULT_ROLE_ID",
            "secrets.VAULT_ROLE_ID",
            "the AppRole role id",
        ),
        Option(
            name="role-id-file",
            kind="path",
            parse=parse_token_file,
            parse_takes_base=True,
            help="File holding the AppRole role id.",
        ),
        _secret(
            "secret-id",
            "AppRole secret id. Env only.",
            "VAULT_SECRET_ID",
            "secrets.VAULT_SECRET_ID",
            "the AppRole secret id",
        ),
        Option(
            name="secret-id-file",
            kind="path",
            parse=parse_token_file,
            parse_takes_base=True,
            help="File holding the AppRole secret id.",
        ),
        Option(
            name="secret-id-wrapped",
            kind="bool",
            default=False,
            help="`true`: the secret id is a response-wrapping token, unwrapped once "
            "before the login.",
        ),
        _secret(
            "jwt",
            "JWT to log in with (method `jwt`) instead of the runner's OIDC token. Env only.",
            "VAULT_JWT",
            "secrets.VAULT_JWT",
            "a JWT (method `jwt`), e.g. an OIDC id token",
        ),
        Option(
            name="jwt-file",
            kind="path",
            parse=parse_token_file,
            parse_takes_base=True,
            help="File holding the JWT (method `jwt`).",
        ),
        Option(
            name="jwt-audience",
            faces=("action",),  # the audience of GitHub's OIDC token
            help="Audience asked for in GitHub's OIDC token; must be in the Vault role's "
            "`bound_audiences`. GitHub's default is `https://github.com/OWNER`.",
        ),
        Option(
            name="kubernetes-token-path",
            kind="path",
            parse=parse_token_file,
            parse_takes_base=True,
            default=DEFAULT_SA_TOKEN,
            help="Service-account token (method `kubernetes`).",
        ),
        Option(
            name="ca-cert",
            kind="path",
            parse=parse_pem_file,
            parse_takes_base=True,
            help="CA bundle of the server.",
            env_fallbacks=("VAULT_CACERT",),
        ),
        Option(
            name="client-cert",
            kind="path",
            parse=parse_pem_file,
            parse_takes_base=True,
            help="TLS client certificate.",
            env_fallbacks=("VAULT_CLIENT_CERT",),
        ),
        Option(
            name="client-key",
            kind="path",
            parse=parse_pem_file,
            parse_takes_base=True,
            help="TLS client key.",
            env_fallbacks=("VAULT_CLIENT_KEY",),
        ),
        Option(
            name="tls-skip-verify",
            kind="bool",
            default=False,
            help="`true`: do not check the server's certificate (test servers only; "
            "mlsteps warns).",
        ),
        Option(
            name="timeout",
            parse=parse_timeout,
            default=60.0,
            default_text="60s",
            metavar="DURATION",
            help="Total time for the login and the reads, retries included, e.g. `30s` "
            "(revoke: for revoking).",
        ),
        Option(
            name="export-env",
            faces=("action",),
            kind="bool",
            default=True,
            help="fetch on GitHub: export each value to `$GITHUB_ENV` for the later steps"
            " of the job (masked first).",
        ),
        Option(
            name="export-outputs",
            # A composite action exposes only the outputs it declares: per-secret outputs set
            # inside it reach no workflow.
            faces=(),
            kind="bool",
            default=False,
            help="fetch on GitHub: also set each value as a step output (masked in logs).",
        ),
        # Jenkins: the step owns its files (a private directory under pwd(tmp: true)).
        Option(
            name="file",
            kind="path",
            faces=("action",),
            help="fetch: also write the values to this file (mode 0600); revoke removes it.",
        ),
        Option(
            name="file-format",
            faces=("action",),
            kind="choice",
            choices=("dotenv", "json"),
            help="Format of --file: `dotenv` or `json`. Default: `json` for a `*.json` "
            "file, else `dotenv`.",
        ),
        Option(
            name="lease-file",
            faces=("action",),
            kind="path",
            help="fetch: where to record what revoke must undo; revoke: the record to "
            "undo. Default: a new record under `$RUNNER_TEMP/mlsteps-secrets` (else "
            "`.mlsteps/secrets`) for fetch, every record there for revoke.",
        ),
    ),
)
CONNECTION_OPTIONS = (
    "url", "namespace", "ca-cert", "client-cert", "client-key", "tls-skip-verify", "timeout",
)  # fmt: skip
LOGIN_OPTIONS = (
    *CONNECTION_OPTIONS, "secrets", "method", "mount", "role", "token-file", "role-id-file",
    "secret-id-file", "secret-id-wrapped", "jwt-file", "jwt-audience", "kubernetes-token-path",
)  # fmt: skip
FETCH_OPTIONS = (
    *LOGIN_OPTIONS, "export-env", "export-outputs", "file", "file-format", "lease-file",
)  # fmt: skip
# revoke reaches the server the record names; these override what the record holds.
REVOKE_OPTIONS = (*CONNECTION_OPTIONS, "lease-file")
OUTPUTS = (
    Output(
        "names",
        "Names of the variables fetched, comma-separated (values are never outputs of this "
        "action).",
    ),
    Output("file", "Absolute path of the file written with `file` (empty without it)."),
    Output(
        "lease-file",
        "The lease record to give `revoke` (with `lease-file`) to revoke only this fetch.",
    ),
)


@dataclass(frozen=True, kw_only=True)
class SecretsConfig:
    url: str
    namespace: str | None
    ca_cert: str | None
    client_cert: str | None
    client_key: str | None
    tls_skip_verify: bool
    timeout: float
    specs: tuple[SecretSpec, ...]
    method: str
    mount: str
    role: str | None
    token: Secret | None
    role_id: Secret | None
    secret_id: Secret | None
    secret_id_wrapped: bool
    jwt: Secret | None
    jwt_audience: str | None
    kubernetes_token_path: str
    export_env: bool
    export_outputs: bool
    file: str | None
    file_format: str
    lease_file: str | None
    # Delivery to the runner's files: the GitHub face was chosen (--ci or detected).
    github: bool
    # Holds the credentials in clear (VAULT_TOKEN, …): never in a repr or an assertion message.
    environ: Mapping[str, str] = field(repr=False)

    def names(self) -> list[str]:
        """The variable names known before reading (a * request's names come with its data)."""
        return [s.env or env_name_for(s.key) for s in self.specs if not s.wildcard]

    def uses_github_oidc(self) -> bool:
        return self.method == "jwt" and self.jwt is None


def resolve_values(runtime: Runtime, flags: Mapping[str, Any]) -> dict[str, Any]:
    resolved = resolve(SECTION, flags, runtime.config_file(), runtime.environ)
    values = {name: value.value for name, value in resolved.items()}
    url = values["url"]
    if url and "@" in url:
        # user:password@ in the URL: a flag puts it in argv (every process can read it), and
        # the URL is shown in plans and messages. A Vault address has no use for an @.
        raise ConfigError(
            f"--url (from {resolved['url'].source}) holds credentials (user:password@HOST): "
            "they would be readable in argv and shown in plans and messages, and Vault does not "
            "log in that way. Give the address alone, https://HOST:PORT, and the credential as "
            "VAULT_TOKEN or --token-file (or another --method)."
        )
    if url and not url.startswith(("http://", "https://")):
        raise ConfigError(f"--url {url}: expected http(s)://HOST:PORT.")
    if values["client-key"] and not values["client-cert"]:
        raise ConfigError("--client-key needs --client-cert: the key belongs to a certificate.")
    _check_tls_files(values, {name: r.source for name, r in resolved.items()})
    return values


def _check_tls_files(values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    """TLS files are read by the HTTP library deep in the first request: load them here the
    way it will, so a file that is not a certificate (or a key without its certificate) is a
    clear exit 2 and not a TLS failure (exit 1). A missing file, a directory or a file that is
    not PEM at all was refused already by the option's own check (values.parse_pem_file)."""
    import ssl

    def bad(option: str, why: str) -> ConfigError:
        return ConfigError(
            f"--{option} {values[option]}: {why} (from {sources[option]}). Give the path of a "
            "PEM file" + (" (the server's CA bundle)." if option == "ca-cert" else ".")
        )

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if values["ca-cert"]:
        try:
            context.load_verify_locations(cafile=values["ca-cert"])
        except ssl.SSLError:
            raise bad("ca-cert", "holds no certificate") from None
        except OSError as exc:
            raise bad("ca-cert", f"cannot read it ({exc.strerror})") from None
        except ValueError:
            raise bad("ca-cert", "holds no certificate") from None
    if values["client-cert"]:
        try:
            context.load_cert_chain(values["client-cert"], values["client-key"])
        except ssl.SSLError:
            option = "client-key" if values["client-key"] else "client-cert"
            raise bad(option, "no certificate with its private key could be loaded") from None
        except OSError as exc:
            raise bad("client-cert", f"cannot read it ({exc.strerror})") from None


def load_config(runtime: Runtime, flags: Mapping[str, Any], *, need_login: bool) -> SecretsConfig:
    values = resolve_values(runtime, flags)
    env = runtime.environ
    method = values["method"]
    url = values["url"]
    if not url:
        raise ConfigError(
            "--url is not set: give the Vault server (flag --url, env VAULT_ADDR or "
            "MLSTEPS_SECRETS_URL, or secrets.url in mlsteps.yaml)."
        )
    specs = values["secrets"] or ()
    try:
        check_names(specs)
    except ValueError as exc:
        raise ConfigError(f"--secrets: {exc}.") from None

    def from_env_or_file(option: str) -> Secret | None:
        value = values[option]
        path = values.get(f"{option}-file")
        if value:
            return Secret(value)
        if path:
            return read_secret_file(f"--{option}-file", path)
        return None

    token, role_id, secret_id, jwt = (
        from_env_or_file(name) for name in ("token", "role-id", "secret-id", "jwt")
    )
    if need_login:
        _check_login_inputs(method, values, token, role_id, secret_id, jwt, env)
        if not specs:
            raise ConfigError(
                "--secrets is empty: say what to read, e.g. --secrets 'secret/ml/db password | "
                "DB_PASSWORD' (env MLSTEPS_SECRETS_SECRETS, or secrets.secrets in mlsteps.yaml)."
            )
    file_format = values["file-format"] or (
        "json" if (values["file"] or "").endswith(".json") else "dotenv"
    )
    return SecretsConfig(
        url=url.rstrip("/"),
        namespace=values["namespace"],
        ca_cert=values["ca-cert"],
        client_cert=values["client-cert"],
        client_key=values["client-key"],
        tls_skip_verify=values["tls-skip-verify"],
        timeout=values["timeout"],
        specs=tuple(specs),
        method=method,
        mount=(values["mount"] or method).strip("/"),
        role=values["role"],
        token=token,
        role_id=role_id,
        secret_id=secret_id,
        secret_id_wrapped=values["secret-id-wrapped"],
        jwt=jwt,
        jwt_audience=values["jwt-audience"],
        kubernetes_token_path=values["kubernetes-token-path"],
        export_env=values["export-env"],
        export_outputs=values["export-outputs"],
        file=values["file"],
        file_format=file_format,
        lease_file=values["lease-file"],
        github=runtime.get_face().name == "github",
        environ=env,
    )


def _check_login_inputs(
    method: str,
    values: Mapping[str, Any],
    token: Secret | None,
    role_id: Secret | None,
    secret_id: Secret | None,
    jwt: Secret | None,
    env: Mapping[str, str],
) -> None:
    """Everything a login needs is there before Vault is asked (exit 2, with the way to give it)."""
    if method == "token" and token is None:
        raise ConfigError(
            "--method token needs a token: set VAULT_TOKEN (or MLSTEPS_SECRETS_TOKEN) or "
            "--token-file; or log in another way with --method approle|jwt|kubernetes."
        )
    if method == "approle" and (role_id is None or secret_id is None):
        which = "role id" if role_id is None else "secret id"
        raise ConfigError(
            f"--method approle needs the {which}: set VAULT_ROLE_ID and VAULT_SECRET_ID (or "
            "MLSTEPS_SECRETS_ROLE_ID / _SECRET_ID), or --role-id-file / --secret-id-file."
        )
    if method in ("jwt", "kubernetes") and not values["role"]:
        raise ConfigError(f"--method {method} needs --role: the Vault role to log in as.")
    if method == "jwt" and jwt is None and not env.get("ACTIONS_ID_TOKEN_REQUEST_URL"):
        raise ConfigError(
            "--method jwt needs a JWT: --jwt-file or env VAULT_JWT (MLSTEPS_SECRETS_JWT); on "
            "GitHub Actions give the job `permissions: id-token: write` and the runner's OIDC "
            "token is used."
        )
