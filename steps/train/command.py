"""The click command of ``mlsteps train``: read the options, make the plan, print it on a dry
run or hand it to the run (loaded only then)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from steps.core import signals
from steps.core.options import MLFLOW
from steps.core.runtime import Runtime, StepResult, step_command
from steps.train import HELP
from steps.train.options import OUTPUTS, SECTION, TRACKING_SECRETS, load_config
from steps.train.plan import build_plan, secrets_as_env_warning


@step_command(
    SECTION,
    shared=(MLFLOW,),
    takes_command=True,
    help=HELP + "\n\nmlsteps train --image IMAGE [OPTIONS] -- COMMAND [ARGS]...",
    epilog="Outputs: "
    + ", ".join(o.name for o in OUTPUTS)
    + ". The tracking server must be reachable from "
    "the container: a loopback URI uses the host network unless --network says otherwise.",
)
def command(runtime: Runtime, flags: Mapping[str, Any], cmd: list[str]) -> StepResult:

    config = load_config(runtime, flags, cmd)
    face = runtime.get_face()
    # Masks first: on GitHub a value is hidden only in lines printed after its add-mask.
    for name in (*config.secret_env, *TRACKING_SECRETS):
        if runtime.environ.get(name):
            face.mask(runtime.environ[name])
    if config.tracking_uri and (password := urlsplit(config.tracking_uri).password):
        face.mask(password)
    if config.secret_env and config.secrets_as_env:
        face.warning(secrets_as_env_warning(config))
    plan = build_plan(config)
    if runtime.dry_run:
        return StepResult({}, plan=plan)
    if not config.tracking_uri:
        face.warning(
            "MLflow tracking is off: set --tracking-uri (or mlflow.tracking-uri) to track runs."
        )
    # A cancel must not land inside an import: a half-initialised module or an import lock
    # left held would hang the shielded cleanup that follows (seen as a run that outlived
    # GitHub's grace period). So the real run's libraries load with signals held; a signal
    # that came meanwhile is raised as soon as they are in.
    with signals.shielded():
        from steps.services import containers, secret_files  # noqa: F401
        from steps.services.mlflow import tracking  # noqa: F401
        from steps.train.run import TrainRun

        if config.backend == "docker":
            import docker  # noqa: F401
        import requests  # noqa: F401
    run = TrainRun(config, runtime)
    try:
        applied = plan.apply(run.handlers())
    except BaseException as exc:
        with signals.shielded(deliver=False):
            run.remove_secrets()  # already gone unless the failure came before the training
            # A failed training still tells CI which run and exit code it had.
            if run.run_id or run.exit_code is not None:
                runtime.partial_outputs = run.outputs()
            cancelled = isinstance(exc, signals.Cancelled | KeyboardInterrupt)
            run.finish_after_failure("KILLED" if cancelled else "FAILED")
        raise
    return StepResult(run.outputs(), run.summary(), applied=tuple(applied))
