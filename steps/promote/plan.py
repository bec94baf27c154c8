"""What ``mlsteps promote`` and ``mlsteps rollback`` will do, as a ``Plan`` (``--dry-run``
prints it), the evidence tags they write and the summary line they end with. Light: it imports
no heavy library and never the run (steps/promote/run.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from steps.core.plan import Plan
from steps.core.text import redact_url
from steps.locks import duration
from steps.promote.options import (
    ANY_CHAMPION,
    NO_CHAMPION,
    PromoteConfig,
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
