"""The click commands of ``mlsteps promote``: read the options, make the plan, print it on a dry
run or hand it to the run (loaded only then)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from steps.core.options import MLFLOW, MODEL
from steps.core.plan import Plan
from steps.core.runtime import Runtime, StepResult, step_command
from steps.promote import HELP, ROLLBACK_HELP
from steps.promote.options import (
    OUTPUTS,
    PROMOTE_OPTIONS,
    ROLLBACK_OPTIONS,
    SECTION,
    PromoteConfig,
    load_config,
)
from steps.promote.plan import EVIDENCE_TAGS, build_plan, build_rollback_plan

CREDENTIALS = (
    "Credentials come from the environment only: the Vault token of --lock vault "
    "(MLSTEPS_PROMOTE_VAULT_TOKEN or VAULT_TOKEN; its policy needs create, read and update on "
    "MOUNT/data/PATH of --lock-path); for --lock dynamodb, AWS credentials and region as boto3 "
    "reads them (AWS_REGION, AWS_PROFILE, a role); for --sagemaker-model-package-group, the "
    "same AWS chain (AWS_ENDPOINT_URL_SAGEMAKER or AWS_ENDPOINT_URL for another endpoint)."
)
EPILOG = (
    "Outputs: "
    + ", ".join(o.name for o in OUTPUTS)
    + " (decision: promoted, unchanged or rolled-back; "
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
    help=HELP + "\n\nmlsteps promote --name MODEL --version N [OPTIONS]",
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
    help=ROLLBACK_HELP + "\n\nmlsteps rollback --name MODEL [OPTIONS]\n\nTakes the "
    "promote options of the same names (section promote: in mlsteps.yaml, MLSTEPS_PROMOTE_* "
    "variables): the same lock and aliases as the promotions it undoes.",
    epilog="Outputs: "
    + ", ".join(o.name for o in OUTPUTS)
    + " (decision: rolled-back; previous-version: the "
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

    # Libraries load with signals held (see steps/train/: a cancel inside an import hangs cleanup).
    with signals.shielded():
        import requests  # noqa: F401

        if config.lock == "dynamodb" or config.sagemaker_model_package_group:
            import boto3  # noqa: F401

        from steps.promote.run import PromoteRun

        run = PromoteRun(config, runtime, rollback=rollback)  # a Vault lock loads hvac here
    return run.run(plan)
