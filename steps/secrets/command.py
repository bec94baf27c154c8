"""The click commands of ``mlsteps secrets``: read the options, make the plan, print it on a dry
run or hand it to the run (loaded only then)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from steps.core.errors import ConfigError
from steps.core.plan import Plan
from steps.core.runtime import Runtime, StepResult, step_command
from steps.secrets import HELP
from steps.secrets.options import (
    FETCH_OPTIONS,
    LOGIN_OPTIONS,
    OUTPUTS,
    REVOKE_OPTIONS,
    SECTION,
    load_config,
    resolve_values,
)
from steps.secrets.plan import build_plan, check_fetch_target, default_lease_dir

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
    epilog="Outputs: "
    + ", ".join(o.name for o in OUTPUTS)
    + " (and the values, with --export-outputs on "
    "GitHub). " + EPILOG,
)
def fetch(runtime: Runtime, flags: Mapping[str, Any], _: list[str]) -> StepResult:
    config = load_config(runtime, flags, need_login=True)
    check_fetch_target(config)
    plan = build_plan(config, "fetch")
    if runtime.dry_run:
        return StepResult({}, plan=plan)
    from steps.secrets.run import run_fetch

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
    from steps.secrets.execute import run_exec

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
        from steps.secrets.record import check_files, load_record

        for path in records:
            # Read, never acted on: a record the run would refuse is refused here too.
            record = load_record(path)
            if record is None:
                plan.add("record.gone", f"{path}: already revoked (no such record)")
                continue
            check_files(path, record)
            plan.add(
                "record.revoke",
                f"revoke the {len(record.leases)} lease(s)"
                + (" and the login token" if record.token and record.token_owned else "")
                + f" in {path}, remove its {len(record.files)} file(s)",
            )
        return StepResult({}, plan=plan)
    from steps.secrets.run import run_revoke

    return run_revoke(records, values, runtime)


command = click.Group(
    "secrets",
    help=HELP + "\n\nexec runs a command with the values in its environment (nothing on disk) and "
    "revokes at the end; fetch exports them on GitHub ($GITHUB_ENV) or writes a 0600 file, and "
    "revoke undoes a fetch. Each subcommand has --help.",
    commands={"fetch": fetch, "exec": exec_, "revoke": revoke},
    context_settings={"help_option_names": ["-h", "--help"]},
)
