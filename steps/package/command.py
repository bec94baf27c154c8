"""The click command of ``mlsteps package``: read the options, make the plan, print it on a dry
run or hand it to the run (loaded only then)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from steps.core import signals
from steps.core.options import MLFLOW, MODEL
from steps.core.runtime import Runtime, StepResult, step_command
from steps.package import HELP
from steps.package.options import OUTPUTS, SECTION, load_config
from steps.package.plan import build_plan, check_model, layout, plan_warnings
from steps.services.images.build import model_dockerfile


@step_command(
    SECTION,
    shared=(MLFLOW, MODEL),
    # Of the shared sections: the server and the registered model's name. No --experiment:
    # package creates no MLflow run.
    only=(*(o.name for o in SECTION.options), "tracking-uri", "name"),
    help=HELP + "\n\nmlsteps package --model-uri URI [--registry HOST] [OPTIONS]",
    epilog="Outputs: "
    + ", ".join(o.name for o in OUTPUTS)
    + ". Without --registry the image is built and "
    "smoke-tested here only.",
)
def command(runtime: Runtime, flags: Mapping[str, Any], cmd: list[str]) -> StepResult:
    from steps.services.images import model_facts
    from steps.services.mlflow import model_source

    config = load_config(runtime, flags)
    face = runtime.get_face()
    if config.registry_password is not None:
        face.mask(config.registry_password.reveal())
    ref = model_source.resolve(config.model_uri, config.tracking_uri)
    check_model(config, ref)
    artifacts = model_source.Artifacts(config.tracking_uri)
    facts = model_facts.read_facts(ref, artifacts)
    lay = layout(config, ref, facts, runtime.environ)
    plan = build_plan(config, ref, facts, lay)
    for warning in plan_warnings(config, ref, facts):
        face.warning(warning)
    if runtime.dry_run:
        face.info(
            f"dry run: read {ref.uri}'s MLmodel and {facts.requirements_source} to plan the "
            "build (the one thing a package dry run reads)"
        )
        for title, text in (
            (f"dependencies image {lay.deps_image}", lay.deps.dockerfile()),
            (f"model image {lay.image}", model_dockerfile(lay.deps_image)),
        ):
            face.info(f"Dockerfile of the {title}:")
            for line in text.splitlines():
                face.info("    " + line)
        return StepResult({}, plan=plan)
    # The run's libraries load with signals held (see steps/train/: a cancel inside an import
    # would hang the cleanup).
    with signals.shielded():
        import docker  # noqa: F401
        import requests  # noqa: F401

        from steps.package.run import PackageRun
    run = PackageRun(config, runtime, ref, facts, lay, artifacts)
    try:
        applied = plan.apply(run.handlers())
    except BaseException:
        if run.digest:  # pushed, then failed (registering): CI still learns what was pushed
            runtime.partial_outputs = run.outputs()
        raise
    finally:
        with signals.shielded(deliver=False):
            run.cleanup()
    return StepResult(run.outputs(), run.summary(), applied=tuple(applied))
