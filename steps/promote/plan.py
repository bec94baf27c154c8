"""``mlsteps promote`` and ``mlsteps rollback``: move the champion alias with compare-and-set.

MLflow has no atomic alias swap, so both commands take a lock (steps/locks/: a file, a Vault
KV v2 key, or a DynamoDB item) and, while they hold it, read the champion, compare it with the
one expected, and only then move the aliases. Two pipelines promoting at once cannot overwrite
each other: the second finds the champion moved and exits 1 naming both versions.

promote: read the candidate version and the gate's report from its run, checked against the
digest the gate step handed on (steps/promote_candidate.py: tags are never trusted for the
verdict); the report must pass it and names the champion it was compared against → check the
approval → take the lock → read the champion; stop if it
is already the candidate, fail if it is not the expected one → keep the old champion under the
previous alias → point the alias at the candidate → tag the evidence on it → release the lock.
rollback: take the lock → read the champion and the previous alias → point the alias back →
remove the previous alias (one level of undo) → tag the demoted version → release the lock.

With --sagemaker-model-package-group the decision also goes to the SageMaker model registry
(steps/promote_sync.py): under the lock, once the champion is read and before any alias moves,
the version's model package is found or registered (bad input stops the run there); after the
move, the replaced champion's package is rejected and the version's approved (a rollback
rejects the demoted version's and approves the restored one's). A version that already is the
champion moves no alias, but its package is still approved.

A failure after the first alias write puts the aliases (and the SageMaker statuses) back; the
lock is released on every way out. The options are in steps/promote_options.py; applying the
plan (steps/promote_run.py) is imported only by a real run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from steps.cli import STEP_HELP, Runtime, StepResult, step_command
from steps.core.config_file import MLFLOW, MODEL, redact_url
from steps.core.plan import Plan
from steps.locks import duration
from steps.promote.options import (
    ANY_CHAMPION,
    NO_CHAMPION,
    OUTPUTS,
    PROMOTE_OPTIONS,
    ROLLBACK_OPTIONS,
    SECTION,
    PromoteConfig,
    load_config,
)

# Tags promote and rollback write on a model version.
EVIDENCE_TAGS = {
    "report-digest": "mlsteps.promote.report-digest",  # of the gate's report, verified
    "ci-run-url": "mlsteps.promote.ci-run-url",
    "commit": "mlsteps.promote.commit",
    "approved-by": "mlsteps.promote.approved-by",
    "previous-version": "mlsteps.promote.previous-version",  # "none" for a first champion
    "at": "mlsteps.promote.at",  # UTC, ISO 8601
}
ROLLED_BACK_AT_TAG = "mlsteps.promote.rolled-back-at"
ROLLED_BACK_TO_TAG = "mlsteps.promote.rolled-back-to"
# The model package of the version in SageMaker (--sagemaker-model-package-group).
SAGEMAKER_ARN_TAG = "mlsteps.sagemaker.model-package-arn"


def describe_lock(config: PromoteConfig) -> str:
    if config.lock == "file":
        where = f"the file lock {config.lock_path}"
    elif config.lock == "vault":
        where = f"the Vault KV v2 lock {config.lock_path} at {redact_url(config.vault_url or '')}"
    else:
        where = f"the DynamoDB lock in table {config.lock_path} (item mlsteps/promote/MODEL)"
    return (
        f"{where} (a stale one, older than {duration(config.lock_ttl)}, is taken over; wait up "
        f"to {duration(config.lock_timeout)})"
    )


def describe_expected(config: PromoteConfig) -> str:
    expected = config.expected_champion
    if expected is None:
        return "the version the gate compared against (read from the verified gate report)"
    if expected == NO_CHAMPION:
        return "unset (no champion yet: --expected-champion none)"
    if expected == ANY_CHAMPION:
        return "any version (--expected-champion any: no compare-and-set)"
    return f"version {expected} (--expected-champion)"


def describe_package(group: str, which: str) -> str:
    return (
        f"check that SageMaker model package group {group} exists and find the model package "
        f"of {which} (tag {SAGEMAKER_ARN_TAG}); without one, register it from its serving "
        f"image (tag mlsteps.image.tag, from `mlsteps package`) as PendingManualApproval and "
        "record its ARN on the version"
    )


def github_run(environ: Mapping[str, str]) -> tuple[str, str, str] | None:
    """(API URL, owner/repo, run id) when this is a GitHub Actions run, else None."""
    if environ.get("GITHUB_ACTIONS") != "true":
        return None
    repo, run_id = environ.get("GITHUB_REPOSITORY"), environ.get("GITHUB_RUN_ID")
    if not repo or not run_id:
        return None
    return environ.get("GITHUB_API_URL") or "https://api.github.com", repo, run_id


def describe_approval(config: PromoteConfig, environ: Mapping[str, str]) -> str:
    if config.approved_by:
        return f"record the approval of {config.approved_by} (--approved-by)"
    run = github_run(environ)
    assert run is not None, "load_config refuses --require-approval with no way to approve"
    api, repo, run_id = run
    return (
        f"read who approved GitHub run {run_id} of {repo} ({api}/repos/{repo}/actions/runs/"
        f"{run_id}/approvals, with GITHUB_TOKEN): at least one reviewer must have approved "
        f"environment '{config.approval_environment}' (--approval-environment; approvals of "
        "other environments do not count)"
    )


def build_plan(config: PromoteConfig, environ: Mapping[str, str]) -> Plan:
    name, version, alias = config.model_name, config.version, config.alias
    server = redact_url(config.tracking_uri)
    plan = Plan("promote")
    digest = config.gate_report_digest
    report = (
        f"the gate's report in the version's run (mlsteps/gate/report.json) must hash to {digest} "
        "(--gate-report-digest) and be about this version"
    )
    if not config.require_gate:
        gate = "its gate verdict is not required (--require-gate false)" + (
            f"; {report}" if digest else ""
        )
    else:
        gate = f"{report}; its verdict must be pass"
    plan.add(
        "mlflow.read-candidate",
        f"read version {version} of '{name}' at {server}: {gate}",
        model=name,
        version=version,
        require_gate=config.require_gate,
    )
    if config.require_approval or config.approved_by:
        plan.add(
            "approval.check",
            describe_approval(config, environ),
            require_approval=config.require_approval,
        )
    group = config.sagemaker_model_package_group
    plan.add("lock.acquire", "take " + describe_lock(config), lock=config.lock,
             lock_path=config.lock_path)  # fmt: skip
    plan.add(
        "alias.compare",
        f"read alias '{alias}' of '{name}': it must be {describe_expected(config)}; already "
        f"version {version}: stop, the aliases stay"
        + (" (its package is still approved in SageMaker, below)" if group else ""),
        alias=alias,
        expected_champion=config.expected_champion,
    )
    if group:
        plan.add(
            "sagemaker.package",
            describe_package(group, f"version {version}")
            + "; find the replaced champion's package (in this group) too. Already the "
            "champion: its package is still approved, nothing else is done",
            group=group,
            version=version,
        )
    plan.add(
        "alias.set-previous",
        f"point '{config.previous_alias}' at the old champion (remove it when there was none)",
        alias=config.previous_alias,
    )
    plan.add(
        "alias.set",
        f"point '{alias}' at version {version} (on any later failure, both aliases are put back)",
        alias=alias,
        version=version,
    )
    plan.add(
        "version.tag",
        f"tag version {version} with the evidence: "
        + ", ".join(EVIDENCE_TAGS.values())
        + " (the report digest: the one verified above)",
        tags=list(EVIDENCE_TAGS.values()),
    )
    if group:
        plan.add(
            "sagemaker.approve",
            "set the replaced champion's model package (if Approved) to Rejected, then the "
            f"model package of version {version} in SageMaker group {group} to Approved, the "
            "evidence in their approval descriptions (on failure, the statuses and the aliases "
            "are put back)",
            group=group,
            approve=version,
        )
    plan.add("lock.release", "release the lock (on every exit path, errors and signals too)")
    return plan


def build_rollback_plan(config: PromoteConfig) -> Plan:
    name, alias, previous = config.model_name, config.alias, config.previous_alias
    plan = Plan("rollback")
    plan.add(
        "mlflow.read-model",
        f"read registered model '{name}' at {redact_url(config.tracking_uri)}",
        model=name,
    )
    plan.add("lock.acquire", "take " + describe_lock(config), lock=config.lock,
             lock_path=config.lock_path)  # fmt: skip
    must = (
        f" (it must be version {config.expected_champion}: --expected-champion)"
        if config.expected_champion
        else ""
    )
    plan.add(
        "alias.compare",
        f"read alias '{alias}'{must} and '{previous}' of '{name}' (no '{previous}': nothing to "
        "roll back, exit 2)",
        alias=alias,
        previous_alias=previous,
        expected_champion=config.expected_champion,
    )
    group = config.sagemaker_model_package_group
    if group:
        plan.add(
            "sagemaker.package",
            describe_package(group, f"the version under '{previous}'")
            + "; find the demoted version's package (in this group) too",
            group=group,
        )
    plan.add(
        "alias.set",
        f"point '{alias}' at the version under '{previous}' (put back on a later failure)",
        alias=alias,
    )
    plan.add(
        "alias.delete-previous",
        f"remove '{previous}' (one level of undo: a second rollback has nothing to restore)",
        alias=previous,
    )
    plan.add(
        "version.tag",
        f"tag the demoted version with {ROLLED_BACK_AT_TAG} and {ROLLED_BACK_TO_TAG}",
        tags=[ROLLED_BACK_AT_TAG, ROLLED_BACK_TO_TAG],
    )
    if group:
        plan.add(
            "sagemaker.approve",
            f"in SageMaker group {group}, set the demoted version's model package (if it has "
            "one, Approved) to Rejected and the restored version's to Approved (on failure, the "
            "statuses and the aliases are put back)",
            group=group,
        )
    plan.add("lock.release", "release the lock (on every exit path, errors and signals too)")
    return plan


def summary_line(
    config: PromoteConfig, out: Mapping[str, str], approver: str | None, rejected: Sequence[str]
) -> str:
    """What a run did, in one line (the terminal and the CI summary), from its outputs."""
    alias, champion, previous = config.alias, out["champion-version"], out["previous-version"]
    if out["decision"] == "unchanged":
        line = f"version {champion} was already the {alias}" + (
            "." if out["sagemaker-model-package-arn"] else ": nothing changed."
        )
    elif out["decision"] == "rolled-back":
        line = (
            f"rolled back: version {champion} is the {alias} again (version {previous} was "
            "demoted)."
        )
    else:
        line = (
            f"version {champion} is the {alias} (it replaced "
            + (f"version {previous})" if previous else "no champion)")
            + (f", approved by {approver}" if approver else "")
            + "."
        )
    if out["sagemaker-model-package-arn"]:
        line += (
            f" In SageMaker group {config.sagemaker_model_package_group}, model package "
            f"{out['sagemaker-model-package-arn']} is Approved"
            + "".join(f" and {arn} Rejected" for arn in rejected)
            + "."
        )
    return line


CREDENTIALS = (
    "Credentials come from the environment only: the Vault token of --lock vault "
    "(MLSTEPS_PROMOTE_VAULT_TOKEN or VAULT_TOKEN; its policy needs create, read and update on "
    "MOUNT/data/PATH of --lock-path); for --lock dynamodb, AWS credentials and region as boto3 "
    "reads them (AWS_REGION, AWS_PROFILE, a role); for --sagemaker-model-package-group, the "
    "same AWS chain (AWS_ENDPOINT_URL_SAGEMAKER or AWS_ENDPOINT_URL for another endpoint)."
)
EPILOG = (
    "Outputs: " + ", ".join(OUTPUTS) + " (decision: promoted, unchanged or rolled-back; "
    "previous-version: the champion this run replaced, empty when none; "
    "sagemaker-model-package-arn: the champion's model package, Approved in SageMaker (also "
    "when unchanged), empty when not synced). Exit 1 when the champion is not the expected one "
    "(another promotion won), the lock stayed busy or SageMaker failed (the aliases are put "
    "back); 2 for bad input (unknown "
    "model or version, never gated, no approval, no such SageMaker group, a version with no "
    "serving image to register); 3 when the gate rejected the version. Tags written on the "
    "promoted version: "
    + ", ".join(EVIDENCE_TAGS.values())
    + ". "
    + CREDENTIALS
    + " GITHUB_TOKEN (or MLSTEPS_PROMOTE_GITHUB_TOKEN) reads the run's "
    "approvals for --require-approval on GitHub Actions."
)


@step_command(
    SECTION,
    shared=(MLFLOW, MODEL),
    only=PROMOTE_OPTIONS,
    help=STEP_HELP["promote"] + "\n\nmlsteps promote --name MODEL --version N [OPTIONS]",
    epilog=EPILOG,
)
def command(runtime: Runtime, flags: Mapping[str, Any], _: list[str]) -> StepResult:
    config = load_config(runtime, flags, rollback=False)
    plan = build_plan(config, runtime.environ)
    if runtime.dry_run:
        # Reads (never writes) what makes the plan informative: loads requests, not boto3.
        from steps.promote.candidate import read_for_dry_run

        return StepResult({}, plan=read_for_dry_run(config, plan, runtime.get_face().warning))
    return _run(config, runtime, plan, rollback=False)


@step_command(
    SECTION,
    name="rollback",
    shared=(MLFLOW, MODEL),
    only=ROLLBACK_OPTIONS,
    help=STEP_HELP["rollback"] + "\n\nmlsteps rollback --name MODEL [OPTIONS]\n\nTakes the "
    "promote options of the same names (section promote: in mlsteps.yaml, MLSTEPS_PROMOTE_* "
    "variables): the same lock and aliases as the promotions it undoes.",
    epilog="Outputs: " + ", ".join(OUTPUTS) + " (decision: rolled-back; previous-version: the "
    "demoted version; sagemaker-model-package-arn: the restored version's model package, "
    "Approved again). Exit 2 when there is nothing to roll back. " + CREDENTIALS,
)
def rollback_command(runtime: Runtime, flags: Mapping[str, Any], _: list[str]) -> StepResult:
    config = load_config(runtime, flags, rollback=True)
    plan = build_rollback_plan(config)
    if runtime.dry_run:
        return StepResult({}, plan=plan)
    return _run(config, runtime, plan, rollback=True)


def _run(config: PromoteConfig, runtime: Runtime, plan: Plan, *, rollback: bool) -> StepResult:
    from steps.core import signals

    # Libraries load with signals held (see train.py: a cancel inside an import hangs cleanup).
    with signals.shielded():
        import requests  # noqa: F401

        if config.lock == "dynamodb" or config.sagemaker_model_package_group:
            import boto3  # noqa: F401

        from steps.promote.run import PromoteRun

        run = PromoteRun(config, runtime, rollback=rollback)  # a Vault lock loads hvac here
    return run.run(plan)
