"""``mlsteps secrets``: Vault secrets into the work that needs them, never into a log.

Three ways to hand them on, one per subcommand:

- ``secrets exec -- CMD``: CMD runs with the values in its environment; nothing on disk; leases
  and the login token are revoked when it ends, however it ends.
- ``secrets fetch``: on GitHub, masked and exported to ``$GITHUB_ENV`` (or, opt-in, to step
  outputs); anywhere, a dotenv/JSON file of mode 0600. A lease record (0600) keeps what to revoke.
- ``secrets revoke``: revokes what a fetch left (leases, the login token) and removes its files.

This module is what ``--help`` and ``--dry-run`` need: options, plan, commands. Talking to Vault
(steps/vault.py, hvac) and applying the plan (steps/secrets_run.py) load only for a real run.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from steps.cli import STEP_HELP, Runtime, StepResult, step_command
from steps.config import Option, Section, parse_duration, redact_url, resolve
from steps.errors import ConfigError
from steps.plan import Plan
from steps.secret import Secret
from steps.secret_specs import SecretSpec, check_names, env_name_for, parse_specs

AUTH_METHODS = ("token", "approle", "jwt", "kubernetes")
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


def _secret(name: str, help: str, *fallbacks: str) -> Option:
    # Secret values never come as flags: a flag is in argv, which every process on the
    # machine can read in /proc. They come from the environment or from a -file option.
    return Option(name=name, help=help, secret=True, cli=False, env_fallbacks=fallbacks)


SECTION = Section(
    "secrets",
    STEP_HELP["secrets"],
    (
        Option(
            name="secrets",
            kind="structured",
            parse=parse_specs,
            schema=SPECS_SCHEMA,
            metavar="'PATH KEY | NAME;'",
            help="What to read, vault-action syntax: 'secret/ml/db password | DB_PASSWORD ;' "
            "('PATH *' for every key); in mlsteps.yaml also a list of {path, key, env, version, "
            "optional}.",
        ),
        Option(
            name="url",
            help="Vault server, e.g. https://vault.example:8200.",
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
            help="How to log in. jwt on GitHub Actions uses the runner's OIDC token.",
        ),
        Option(name="mount", help="Path the auth method is mounted at (default: its name)."),
        Option(name="role", help="Role to log in as (jwt, kubernetes)."),
        _secret("token", "Vault token (method token). Env only.", "VAULT_TOKEN"),
        Option(name="token-file", kind="path", help="File holding the Vault token."),
        _secret("role-id", "AppRole role id. Env only.", "VAULT_ROLE_ID"),
        Option(name="role-id-file", kind="path", help="File holding the AppRole role id."),
        _secret("secret-id", "AppRole secret id. Env only.", "VAULT_SECRET_ID"),
        Option(name="secret-id-file", kind="path", help="File holding the AppRole secret id."),
        Option(
            name="secret-id-wrapped",
            kind="bool",
            default=False,
            help="The secret id is a response-wrapping token: unwrap it (once) first.",
        ),
        _secret("jwt", "JWT to log in with (method jwt). Env only.", "VAULT_JWT"),
        Option(name="jwt-file", kind="path", help="File holding the JWT (method jwt)."),
        Option(
            name="jwt-audience",
            help="Audience of the GitHub OIDC token; must be in the role's bound_audiences.",
        ),
        Option(
            name="kubernetes-token-path",
            kind="path",
            default=DEFAULT_SA_TOKEN,
            help="Service-account token (method kubernetes).",
        ),
        Option(
            name="ca-cert",
            kind="path",
            help="CA bundle of the server.",
            env_fallbacks=("VAULT_CACERT",),
        ),
        Option(
            name="client-cert",
            kind="path",
            help="TLS client certificate.",
            env_fallbacks=("VAULT_CLIENT_CERT",),
        ),
        Option(
            name="client-key",
            kind="path",
            help="TLS client key.",
            env_fallbacks=("VAULT_CLIENT_KEY",),
        ),
        Option(
            name="tls-skip-verify",
            kind="bool",
            default=False,
            help="Do not check the server's certificate (test servers only; warns).",
        ),
        Option(
            name="timeout",
            parse=parse_duration,
            default=60.0,
            metavar="DURATION",
            help="Total time for login and reads, retries included (revoke: for revoking).",
        ),
        Option(
            name="export-env",
            kind="bool",
            default=True,
            help="fetch on GitHub: export each value to $GITHUB_ENV for later steps.",
        ),
        Option(
            name="export-outputs",
            kind="bool",
            default=False,
            help="fetch on GitHub: also set each value as a step output (masked in logs).",
        ),
        Option(name="file", kind="path", help="fetch: write the values to this file (mode 0600)."),
        Option(
            name="file-format",
            kind="choice",
            choices=("dotenv", "json"),
            help="Format of --file (default: json for *.json, else dotenv).",
        ),
        Option(
            name="lease-file",
            kind="path",
            help="fetch: where to record what revoke must undo; revoke: the record to undo "
            "(default: every record under $RUNNER_TEMP/mlsteps-secrets or .mlsteps/secrets).",
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
# revoke reaches the server the record names; the TLS options may override the record's.
REVOKE_OPTIONS = (
    "ca-cert",
    "client-cert",
    "client-key",
    "tls-skip-verify",
    "timeout",
    "lease-file",
)
OUTPUTS = ("names", "file", "lease-file")


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
    # TLS files are read by the HTTP library deep in the first request: check them here, so a
    # typo is a clear exit 2 and not a stack of library errors.
    for option in ("ca-cert", "client-cert", "client-key"):
        path = values[option]
        if path and not Path(path).is_file():
            raise ConfigError(
                f"--{option} {path}: no such file (from {resolved[option].source}). Give the "
                "path of a PEM file."
            )
    if values["client-key"] and not values["client-cert"]:
        raise ConfigError("--client-key needs --client-cert: the key belongs to a certificate.")
    return values


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
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"--url {redact_url(url)}: expected http(s)://HOST:PORT.")
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
            try:
                text = Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"--{option}-file {path}: cannot read it ({exc.strerror}). Fix the path."
                ) from None
            if not text:
                raise ConfigError(f"--{option}-file {path}: the file is empty.")
            return Secret(text)
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


def default_lease_dir(environ: Mapping[str, str]) -> Path:
    runner_temp = environ.get("RUNNER_TEMP")
    return Path(runner_temp) / "mlsteps-secrets" if runner_temp else Path(".mlsteps/secrets")


# ----- the plan ------------------------------------------------------------------------------
def build_plan(config: SecretsConfig, mode: str, command: list[str] | None = None) -> Plan:
    """What fetch or exec will do, in order; a run applies exactly these actions."""
    plan = Plan(f"secrets {mode}")
    who = f" role {config.role}" if config.role else ""
    source = " (GitHub OIDC token)" if config.uses_github_oidc() else ""
    plan.add(
        "vault.login",
        f"log in to Vault at {config.url} with {config.method}{who}{source} (auth/{config.mount})",
        url=config.url,
        method=config.method,
        mount=config.mount,
    )
    paths = sorted({s.path for s in config.specs})
    requests = [
        f"{s.describe()} → {s.env or env_name_for(s.key) if not s.wildcard else 'every key'}"
        + (" (optional)" if s.optional else "")
        for s in config.specs
    ]
    plan.add(
        "vault.read",
        f"read {len(config.specs)} secret(s) from {len(paths)} path(s): " + "; ".join(requests),
        requests=requests,
    )
    names = ", ".join(config.names()) + (" + every key of a * request" if any(
        s.wildcard for s in config.specs) else "")  # fmt: skip
    if mode == "exec":
        shown = shlex.join(command or [])
        plan.add("process.exec", f"run {shown} with {names} in its environment", command=shown)
        plan.add("vault.revoke", "revoke the leases and the login token (always, even on failure)")
        return plan
    if config.github and config.export_env:
        plan.add("github.export-env", f"mask, then export {names} to $GITHUB_ENV")
    if config.github and config.export_outputs:
        plan.add("github.outputs", f"mask, then set {names} as step outputs")
    if config.file:
        plan.add(
            "file.write",
            f"write {names} to {config.file} ({config.file_format}, mode 0600)",
            path=config.file,
        )
    lease_file = config.lease_file or str(default_lease_dir(config.environ) / "lease-*.json")
    plan.add(
        "record.write",
        f"record the leases and the login token in {lease_file} (mode 0600) for "
        "`mlsteps secrets revoke`",
        path=lease_file,
    )
    return plan


def _check_fetch_target(config: SecretsConfig) -> None:
    if config.lease_file and Path(config.lease_file).exists():
        # Overwriting it would lose what it holds: leases and a token nobody could revoke.
        raise ConfigError(
            f"--lease-file {config.lease_file}: a lease record is already there. Run "
            f"`mlsteps secrets revoke --lease-file {config.lease_file}` first, or give another "
            "path."
        )
    if not config.file and not (config.github and (config.export_env or config.export_outputs)):
        raise ConfigError(
            "secrets fetch has nowhere to put the values here: give --file PATH (a 0600 "
            "dotenv or JSON file), or use `mlsteps secrets exec -- CMD` to run a command with "
            "them in its environment and nothing on disk."
        )


# ----- commands ------------------------------------------------------------------------------
EPILOG = (
    "Values are masked before anything is printed and never appear in argv, logs, outputs "
    "or summaries. Credentials come from the environment or files, "
    "never from flags: VAULT_TOKEN, VAULT_ROLE_ID, VAULT_SECRET_ID, VAULT_JWT (or "
    "MLSTEPS_SECRETS_TOKEN, _ROLE_ID, _SECRET_ID, _JWT), or the -file options."
)


@step_command(
    SECTION,
    name="fetch",
    only=FETCH_OPTIONS,
    help="Read the secrets and hand them on: $GITHUB_ENV on GitHub, or --file (mode 0600). "
    "Leases and the login token stay valid until `mlsteps secrets revoke`.",
    epilog="Outputs: " + ", ".join(OUTPUTS) + " (and the values, with --export-outputs on "
    "GitHub). " + EPILOG,
)
def fetch(runtime: Runtime, flags: Mapping[str, Any], _: list[str]) -> StepResult:
    config = load_config(runtime, flags, need_login=True)
    _check_fetch_target(config)
    plan = build_plan(config, "fetch")
    if runtime.dry_run:
        return StepResult({}, plan=plan)
    from steps.secrets_run import run_fetch

    return run_fetch(config, plan, runtime)


@step_command(
    SECTION,
    name="exec",
    only=LOGIN_OPTIONS,
    takes_command=True,
    help="Run a command with the secrets in its environment only; nothing is written to disk, "
    "and leases and the login token are revoked when it ends.\n\n"
    "mlsteps secrets exec [OPTIONS] -- COMMAND [ARGS]...",
    epilog="Exit code: the command's own (128+N when a signal N ended it). " + EPILOG,
)
def exec_(runtime: Runtime, flags: Mapping[str, Any], command: list[str]) -> StepResult:
    config = load_config(runtime, flags, need_login=True)
    if not command:
        raise ConfigError(
            "secrets exec needs a command after --, e.g. mlsteps secrets exec -- python train.py."
        )
    plan = build_plan(config, "exec", command)
    if runtime.dry_run:
        return StepResult({}, plan=plan)
    from steps.secrets_run import run_exec

    return run_exec(config, plan, runtime, command)


@step_command(
    SECTION,
    name="revoke",
    only=REVOKE_OPTIONS,
    help="Revoke what `secrets fetch` left: its leases and login token (a token you gave is "
    "not revoked), and remove the files it wrote. Safe to run twice.",
)
def revoke(runtime: Runtime, flags: Mapping[str, Any], _: list[str]) -> StepResult:
    values = resolve_values(runtime, flags)
    records = (
        [Path(values["lease-file"])]
        if values["lease-file"]
        else sorted(default_lease_dir(runtime.environ).glob("lease-*.json"))
    )
    if runtime.dry_run:
        plan = Plan("secrets revoke")
        if not records:
            plan.add("record.none", "nothing to revoke: no lease record found")
        for record in records:
            plan.add("record.revoke", f"revoke the leases and token in {record}, remove its files")
        return StepResult({}, plan=plan)
    from steps.secrets_run import run_revoke

    return run_revoke(records, values, runtime)


command = click.Group(
    "secrets",
    help=STEP_HELP["secrets"]
    + "\n\nexec runs a command with the values in its environment (nothing on disk) and "
    "revokes at the end; fetch exports them on GitHub ($GITHUB_ENV) or writes a 0600 file, and "
    "revoke undoes a fetch. Each subcommand has --help.",
    commands={"fetch": fetch, "exec": exec_, "revoke": revoke},
    context_settings={"help_option_names": ["-h", "--help"]},
)
