"""What ``mlsteps secrets fetch|exec`` will do, as a ``Plan`` (``--dry-run`` prints it), and
the checks of where fetch writes. Light: it imports no heavy library and never the run
(steps/secrets/run.py, steps/secrets/execute.py).
"""

from __future__ import annotations

import os
import shlex
import stat
from collections.abc import Mapping
from pathlib import Path

from steps.core.errors import ConfigError
from steps.core.plan import Plan
from steps.secrets.options import (
    SecretsConfig,
)
from steps.secrets.specs import env_name_for


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


def check_fetch_target(config: SecretsConfig) -> None:
    if (
        config.lease_file
        and Path(config.lease_file).exists()
        and not Path(config.lease_file).is_dir()
    ):
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
    # Every place the run writes is checked before the login: a path that cannot be written
    # found after the reads would leave leases and a token made for nothing.
    _check_output_path("--file", config.file, private=True)
    lease_file = config.lease_file or str(default_lease_dir(config.environ) / "lease-x.json")
    _check_output_path("--lease-file", lease_file, private=True)
    if config.github and config.export_env:
        if not config.environ.get("GITHUB_ENV"):
            raise ConfigError(
                "GITHUB_ENV is not set: --export-env works in a GitHub Actions step. Give "
                "--export-env false and --file PATH elsewhere."
            )
        _check_output_path("$GITHUB_ENV", config.environ["GITHUB_ENV"])
    if config.github and config.export_outputs and config.environ.get("GITHUB_OUTPUT"):
        _check_output_path("$GITHUB_OUTPUT", config.environ["GITHUB_OUTPUT"])


def _check_output_path(option: str, path: str | None, *, private: bool = False) -> None:
    """Exit 2 when the file at path could not be written (created with its directories), or,
    for a file of values, when anyone could swap it for their own after it was written."""
    if not path:
        return
    target = Path(path)
    long = [part for part in target.parts if len(part.encode()) > 255]
    if long:
        raise ConfigError(
            f"{option} {path}: the name {long[0][:40]!r}… is longer than 255 bytes, more than "
            "a file system allows. Give a shorter path."
        )
    if target.is_dir():
        raise ConfigError(
            f"{option} {path}: a directory, not a file. Give the path of a file in it, e.g. "
            f"{target / 'secrets.env'}."
        )
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(
            f"{option} {path}: {parent} is a file, so nothing can be written under it. Give a "
            "path in a directory."
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{option} {path}: this user may not write in {parent}. Give a path in a "
            "directory you can write."
        )
    mode = parent.stat().st_mode
    if private and mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
        # Without the sticky bit (as /tmp has) any user may rename the file away and put
        # their own in its place: the job would then source their text as its secrets, and
        # revoke would find a record that is not ours.
        raise ConfigError(
            f"{option} {path}: {parent} may be written by every user and has no sticky bit, "
            "so anyone could replace the file after it is written. Give a path in a "
            "directory only you can write (or /tmp, which is sticky)."
        )
