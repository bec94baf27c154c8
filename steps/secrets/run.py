"""Applying a secrets plan: log in, read concurrently, mask, hand the values on, revoke.

Loaded only by a real run (it imports hvac through steps.services.vault). Every path that
fails after the login undoes what it made: leases and the login token are revoked, files
removed.
"""

from __future__ import annotations

import json
import secrets as random_tokens
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from steps.ci.base import Face
from steps.core import signals
from steps.core.errors import ConfigError, StepFailed
from steps.core.plan import Action, Plan
from steps.core.runtime import Runtime, StepResult
from steps.core.secret import Secret
from steps.secrets.options import SecretsConfig
from steps.secrets.plan import default_lease_dir
from steps.secrets.record import (
    FileIdentity,
    LeaseRecord,
    check_files,
    load_record,
    record_text,
    remove_files,
    write_private,
)
from steps.secrets.specs import SecretSpec, pick
from steps.services.vault import Connection, Credentials, Vault, VaultFailed

MAX_CONCURRENT_READS = 16
# Seconds revocation may take at most: a cancelled CI job is killed about 10 s after its first
# signal (GitHub: SIGINT, SIGTERM 7.5 s later, SIGKILL 2.5 s after that).
REVOKE_BUDGET = 7.0


def warn_about_transport(face: Face, url: str, *, skip_verify: bool) -> None:
    """Say so when what crosses the network (credentials, tokens, values) is not protected."""
    host = urlsplit(url).hostname or ""
    if url.startswith("http://") and host not in ("127.0.0.1", "localhost", "::1"):
        face.warning(
            f"--url {url} is plain http: the login and the secrets cross the network "
            "unencrypted. Use https outside a test setup."
        )
    if skip_verify:
        face.warning(
            "--tls-skip-verify: the Vault server's certificate is not checked, so anyone "
            "on the network path could read the secrets. Use --ca-cert outside tests."
        )


class Session:
    """One login and everything it made, so it can all be revoked."""

    def __init__(self, config: SecretsConfig, runtime: Runtime) -> None:
        self.config = config
        self.runtime = runtime
        self.face = runtime.get_face()
        warn_about_transport(self.face, config.url, skip_verify=config.tls_skip_verify)
        self.vault = Vault(
            Connection(
                url=config.url,
                namespace=config.namespace,
                ca_cert=config.ca_cert,
                client_cert=config.client_cert,
                client_key=config.client_key,
                tls_skip_verify=config.tls_skip_verify,
                timeout=config.timeout,
            ),
            on_retry=self.face.info,
        )
        self.token: Secret | None = None
        self.token_is_ours = False
        self.leases: list[str] = []
        self.values: dict[str, Secret] = {}
        self.sources: dict[str, str] = {}  # name → "path key", for the summary

    # ----- plan actions ------------------------------------------------------------------
    def login(self, action: Action) -> None:
        config = self.config
        for secret in (config.token, config.role_id, config.secret_id, config.jwt):
            if secret is not None:
                self.face.mask(secret.reveal())
        environ = config.environ
        oidc_token = environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
        login = self.vault.login(
            Credentials(
                method=config.method,
                mount=config.mount,
                role=config.role,
                token=config.token,
                role_id=config.role_id,
                secret_id=config.secret_id,
                secret_id_wrapped=config.secret_id_wrapped,
                jwt=config.jwt,
                oidc_request_url=environ.get("ACTIONS_ID_TOKEN_REQUEST_URL"),
                oidc_request_token=Secret(oidc_token) if oidc_token else None,
                jwt_audience=config.jwt_audience,
                kubernetes_token_path=config.kubernetes_token_path,
            )
        )
        self.face.mask(login.token.reveal())
        self.token, self.token_is_ours = login.token, login.created
        self.face.info(
            f"logged in to Vault with {config.method} (policies: "
            f"{', '.join(login.policies) or 'none'})"
        )

    def read(self, action: Action) -> None:
        config = self.config
        # One read per path and version, however many keys are taken from it.
        wanted: dict[tuple[str, int | None], list[SecretSpec]] = {}
        for spec in config.specs:
            wanted.setdefault((spec.path, spec.version), []).append(spec)
        started = time.monotonic()
        pool = ThreadPoolExecutor(max_workers=min(MAX_CONCURRENT_READS, len(wanted)))
        futures = {
            key: pool.submit(
                self.vault.read,
                key[0],
                key[1],
                optional=all(s.optional for s in specs),
                keys=[s.key for s in specs if not s.optional],
            )
            for key, specs in wanted.items()
        }
        try:
            wait(futures.values())
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            # Before any read's failure (or a cancel) is raised: every lease already made is
            # recorded, so that it is revoked even when the token is the user's and stays.
            for future in futures.values():
                if future.done() and not future.cancelled() and future.exception() is None:
                    result = future.result()
                    if result is not None and result.lease_id:
                        self.leases.append(result.lease_id)
        results = {key: future.result() for key, future in futures.items()}  # the first failure
        missing: list[str] = []
        clashes: list[str] = []
        problems: list[str] = []  # each a sentence
        for key, specs in wanted.items():
            result = results[key]
            for spec in specs:
                try:
                    picked = pick(spec, result.data) if result is not None else None
                except ValueError as exc:
                    problems.append(f"{exc}.")
                    continue
                if picked is None:
                    if spec.optional:
                        self.face.info(f"optional secret {spec.describe()} not found: skipped")
                        continue
                    keys = ", ".join(sorted(result.data)) if result is not None else "none"
                    missing.append(f"{spec.describe()}: no key {spec.key!r} (keys: {keys})")
                    continue
                for name, value in picked.items():
                    # Masks first: on GitHub a value is hidden only in lines printed after it.
                    self.face.mask(value.reveal())
                    if name in self.values and self.sources[name] != spec.describe():
                        # A * request can name a variable another request names too.
                        clashes.append(f"{name} from {self.sources[name]} and {spec.describe()}")
                    self.values[name] = value
                    self.sources[name] = spec.describe()
        if clashes:
            problems.append(
                "two requests give the same variable name — " + "; ".join(clashes) + ". Rename "
                "one with '| OTHER_NAME', or give the * request a prefix ('PATH * | PREFIX_')."
            )
        if missing:
            problems.insert(
                0,
                "missing secrets — " + "; ".join(missing) + ". Fix the key, or mark the "
                "request optional (optional: true in mlsteps.yaml).",
            )
        if problems:
            raise VaultFailed(" ".join(problems))
        self.face.info(
            f"read {len(self.values)} secret(s) from {len(wanted)} path(s) in "
            f"{time.monotonic() - started:.2f} s"
            + (f"; {len(self.leases)} lease(s) to revoke" if self.leases else "")
        )

    def revoke(self, action: Action | None = None) -> list[str]:
        """Revoke every lease and, when the login made it, the token. Returns what failed."""
        failed: list[str] = []
        if self.token is None:
            return failed
        self.vault.restart_clock(min(self.config.timeout, REVOKE_BUDGET))
        with signals.shielded(deliver=action is not None):
            for lease in self.leases:
                try:
                    if not self.vault.revoke_lease(lease) and not self.token_is_ours:
                        failed.append(f"lease {lease}")
                except VaultFailed as exc:
                    failed.append(f"lease {lease} ({exc.message})")
            token_gone_already = False
            if self.token_is_ours:
                try:
                    # takes the leases made with it along; refused only when it is gone already
                    token_gone_already = not self.vault.revoke_self()
                except VaultFailed as exc:
                    failed.append(f"the login token ({exc.message})")
            self.token = None
        if failed:
            self.face.warning(
                "could not revoke " + ", ".join(failed) + ": they expire with their TTL; "
                "revoke them with the Vault CLI if they must end now."
            )
        elif self.leases or self.token_is_ours:
            token = " and the login token" if self.token_is_ours else ""
            if token_gone_already:
                token = "; the login token had expired already"
            self.face.info(f"revoked {len(self.leases)} lease(s){token}")
        else:
            self.face.info("nothing to revoke: no leases, and the token is yours to keep")
        return failed

    def summary(self, delivered: str) -> str:
        rows = "\n".join(f"| `{name}` | `{self.sources[name]}` |" for name in self.values)
        return (
            f"### mlsteps secrets: {len(self.values)} secret(s) {delivered}\n\n"
            "| name | from |\n| --- | --- |\n" + rows + "\n\nValues are masked; "
            f"{len(self.leases)} lease(s).\n"
        )


def apply_plan(plan: Plan, session: Session, handlers: Mapping[str, Any]) -> list[str]:
    """Apply the plan; on any failure or cancel, revoke what the login made, then re-raise."""
    try:
        return plan.apply({"vault.login": session.login, "vault.read": session.read, **handlers})
    except BaseException:
        with signals.shielded(deliver=False):
            session.revoke()
        raise


# ----- fetch -----------------------------------------------------------------------------------
def run_fetch(config: SecretsConfig, plan: Plan, runtime: Runtime) -> StepResult:
    session = Session(config, runtime)
    face = session.face
    written: list[FileIdentity] = []
    record_path = Path(
        config.lease_file
        or default_lease_dir(config.environ)
        / f"lease-{time.strftime('%Y%m%d-%H%M%S')}-{random_tokens.token_hex(4)}.json"
    )
    outputs: dict[str, Any] = {}

    def export_env(action: Action) -> None:
        from steps.ci.github import GitHubFace

        if not isinstance(face, GitHubFace):  # the plan has this action on the GitHub face only
            raise RuntimeError("github.export-env planned for another face")
        if not config.environ.get("GITHUB_ENV"):
            raise ConfigError("GITHUB_ENV is not set: --export-env works in a GitHub Actions step.")
        for name, value in session.values.items():
            face.set_env(name, value.reveal())

    def set_outputs(action: Action) -> None:
        outputs.update(session.values)

    def write_file(action: Action) -> None:
        assert config.file is not None
        path = Path(config.file)
        if config.file_format == "json":
            text = json.dumps({n: v.reveal() for n, v in session.values.items()}, indent=2) + "\n"
        else:
            text = "".join(f"{n}={_dotenv_quote(v.reveal())}\n" for n, v in session.values.items())
        written.append(write_private(path, text))

    def write_record(action: Action) -> None:
        text = record_text(
            url=config.url,
            namespace=config.namespace,
            # The token the reads were made with: revoke needs it to revoke their leases, and
            # revokes the token itself only when the login made it (token_owned). A token the
            # user gave is kept out of the file when there is nothing for it to revoke.
            token=session.token.reveal()
            if session.token and (session.token_is_ours or session.leases)
            else None,
            token_owned=session.token_is_ours,
            leases=session.leases,
            files=written,
            # How to reach the server again (paths, not contents), so that the cleanup step
            # needs no TLS options of its own.
            tls={
                "ca-cert": config.ca_cert,
                "client-cert": config.client_cert,
                "client-key": config.client_key,
                "tls-skip-verify": config.tls_skip_verify,
            },
        )
        write_private(record_path, text)

    try:
        applied = apply_plan(
            plan,
            session,
            {
                "github.export-env": export_env,
                "github.outputs": set_outputs,
                "file.write": write_file,
                "record.write": write_record,
            },
        )
    except BaseException:
        with signals.shielded(deliver=False):
            for file in written:
                Path(file.path).unlink(missing_ok=True)
        raise
    outputs.update(
        {
            "names": ",".join(session.values),
            "file": str(Path(config.file).resolve()) if config.file else "",
            "lease-file": str(record_path.resolve()),
        }
    )
    return StepResult(outputs, session.summary("fetched"), applied=tuple(applied))


def _dotenv_quote(value: str) -> str:
    # Double quotes as the shell reads them, so `set -a; . FILE` in bash or any POSIX sh gives
    # back every value exactly: inside "…" only the backslash, ", $ and ` are special, each
    # escaped with a backslash (an unescaped ` or $( would run a command); new lines stay real,
    # since the shell keeps "\n" as two characters. python-dotenv (interpolate=False) reads
    # it back the same, except that it keeps the backslash before $ and `: a reader other
    # than the shell that must get every value exactly should take --file NAME.json.
    escaped = "".join("\\" + char if char in '\\"$`' else char for char in value)
    return '"' + escaped + '"'


# ----- revoke ----------------------------------------------------------------------------------
def run_revoke(records: Sequence[Path], values: Mapping[str, Any], runtime: Runtime) -> StepResult:
    face = runtime.get_face()
    if not records:
        face.info("nothing to revoke: no lease record found")
        return StepResult({"revoked": "0"})
    # Every record is checked before any is acted on: one that fetch did not write stops the
    # whole revoke (exit 2) with nothing deleted and no server contacted.
    loaded: list[tuple[Path, LeaseRecord]] = []
    for path in records:
        record = load_record(path)
        if record is None:
            face.info(f"{path}: already revoked (no such record)")
            continue
        check_files(path, record)
        loaded.append((path, record))
    revoked, failures = 0, []
    for path, record in loaded:
        token = Secret(record.token) if record.token else None
        owned = token is not None and record.token_owned
        if token is not None:
            face.mask(token.reveal())
        # Files first: they hold values on disk, and removing them needs no server.
        for problem in remove_files(record):
            face.warning(f"{problem}: remove it yourself.")
        if not owned and not record.leases:
            path.unlink()
            continue
        try:
            revoked += _revoke_record(record, token, owned, values, face)
        except VaultFailed as exc:  # the next record may be on a server that answers
            failures.append(f"{path}: {exc.message}")
            continue
        path.unlink()
    if failures:
        raise StepFailed(
            "could not revoke everything — " + "; ".join(failures) + " The records are kept "
            "so revoke can be run again; leases end with their TTL."
        )
    face.info(f"revoked {revoked} lease(s)/token(s) from {len(records)} record(s)")
    return StepResult({"revoked": str(revoked)})


def _revoke_record(
    record: LeaseRecord,
    token: Secret | None,
    owned: bool,
    values: Mapping[str, Any],
    face: Face,
) -> int:
    """Revoke one record's leases and (when owned) its token; the count revoked."""
    tls = record.tls
    skip = bool(values["tls-skip-verify"] or tls.get("tls-skip-verify"))
    url = (values["url"] or record.url).rstrip("/")
    warn_about_transport(face, url, skip_verify=skip)
    vault = Vault(
        Connection(
            # what the fetch used, unless this invocation says otherwise
            url=url,
            namespace=values["namespace"] or record.namespace,
            ca_cert=values["ca-cert"] or tls.get("ca-cert"),
            client_cert=values["client-cert"] or tls.get("client-cert"),
            client_key=values["client-key"] or tls.get("client-key"),
            tls_skip_verify=skip,
            timeout=values["timeout"],
        ),
        on_retry=face.info,
        token=token,
    )
    revoked, refused = 0, []
    with signals.shielded():
        for lease in record.leases:
            # Revoking a token we own takes its leases along, so a lease it could not revoke
            # one by one still ends with it.
            if vault.revoke_lease(lease) or owned:
                revoked += 1
            else:
                refused.append(lease)
        if owned:
            if vault.revoke_self():
                revoked += 1
            else:
                face.info("the login token had already expired or been revoked")
    if refused:
        raise VaultFailed(
            f"Vault refused to revoke the leases {', '.join(refused)}: the token in the record "
            "may lack `update` on sys/leases/revoke."
        )
    return revoked
