"""The click command of ``mlsteps deploy``: read the options, make the plan, print it on a dry
run or hand it to the controller (steps/deploy/run.py, loaded only then)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from steps.core.options import MLFLOW, MODEL
from steps.core.runtime import Runtime, StepResult, step_command
from steps.deploy import HELP
from steps.deploy.options import OUTPUTS, SECTION, load_config
from steps.deploy.plan import build_plan

EPILOG = (
    "Outputs: "
    + ", ".join(o.name for o in OUTPUTS)
    + ". Exit 0 when the candidate was rolled out (or a shadow passed); 3 when it was rolled "
    "back (harm found, or undecided with --on-inconclusive rollback) or held; 1 when the "
    "rollout failed (a target or the proxy broke: all traffic is put back on the champion "
    "first); 2 for bad input. SIGINT/SIGTERM roll back and exit 130/143. A re-run with the "
    "same arguments resumes an interrupted rollout. sagemaker: AWS credentials and region as "
    "boto3 reads them (AWS_ENDPOINT_URL_SAGEMAKER, AWS_ENDPOINT_URL_CLOUDWATCH or "
    "AWS_ENDPOINT_URL for another endpoint)."
)


@step_command(
    SECTION,
    shared=(MLFLOW, MODEL),
    only=(*(o.name for o in SECTION.options), "tracking-uri", "name"),
    help=HELP + "\n\nmlsteps deploy --image IMAGE [--endpoint NAME] [OPTIONS]",
    epilog=EPILOG,
)
def command(runtime: Runtime, flags: Mapping[str, Any], _: list[str]) -> StepResult:
    config = load_config(runtime, flags)
    plan = build_plan(config)
    if runtime.dry_run:
        return StepResult({}, plan=plan)
    from steps.core import signals

    # Libraries load with signals held (see steps/train/: a cancel inside an import hangs cleanup).
    with signals.shielded():
        from steps.deploy.run import DeployRun

        run = DeployRun(config, runtime, plan)
    return run.run()
