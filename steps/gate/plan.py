"""What ``mlsteps gate`` will do, as a ``Plan`` (``--dry-run`` prints it), and what its dry run
checks. Light: it imports no heavy library and never the run (steps/gate/run.py).
"""

from __future__ import annotations

from pathlib import Path

from steps.checks.thresholds import describe_rule
from steps.checks.verdict import REPORT_ARTIFACT_DIR
from steps.core.errors import StepFailed
from steps.core.plan import Plan
from steps.core.runtime import Runtime
from steps.core.text import redact_url
from steps.gate.options import GateConfig

REPORT_FILES = ("report.md", "report.json", "report.png")
# An interval's end within its resampling error of a threshold: resample again, doubling, up
# to this many times --resamples; still too close then, the check fails as too close to call.
MORE_RESAMPLES = 8
SCHEMA_ARTIFACT = "mlsteps/schema.json"


def build_plan(config: GateConfig) -> Plan:
    plan = Plan("gate")
    tracking = redact_url(config.tracking_uri or "")
    champion = (
        f"the champion (alias @{config.champion_alias} of model '{config.model_name}')"
        if config.champion_alias
        else "no champion (--champion-alias none)"
    )
    plan.add(
        "gate.resolve",
        f"find the candidate {config.model_uri} and {champion} at {tracking}",
        model_uri=config.model_uri,
        model_name=config.model_name,
        champion_alias=config.champion_alias,
    )
    if config.data or config.training_data:
        names = [p for p in (config.data, config.training_data) if p]
        plan.add(
            "gate.load-data",
            f"read {' and '.join(Path(p).name for p in names)}"
            + (f" (label column {config.target})" if config.target else ""),
            data=config.data,
            training_data=config.training_data,
            target=config.target,
        )
    if config.data and config.schema is not None:
        source = (
            f"inferred from {Path(config.training_data).name}"
            if config.training_data
            else f"stored with the candidate ({SCHEMA_ARTIFACT}), if any"
        )
        plan.add(
            "gate.schema",
            f"check {Path(config.data).name} against the training data's schema ({source}): "
            "columns, types, ranges, categories, null rates",
            source=source,
        )
    if config.quality is not None:
        plan.add("gate.quality", "check the quality rules on the evaluation data")
    if config.drift is not None:
        plan.add(
            "gate.drift",
            "measure drift from the training data to the evaluation data per feature (PSI and "
            "Kolmogorov–Smirnov)",
        )
    metrics = (
        "; ".join(f"{n} ({describe_rule(r)})" for n, r in config.metrics.items())
        or "the task's default metrics"
    )
    if config.data:
        seed = (
            f"seed {config.seed}" if config.seed is not None
            else "seed derived from the digests of the data and the models"
        )  # fmt: skip
        intervals = (
            f"{config.resamples} paired bootstrap resamples ({seed}, {config.confidence:.0%} "
            f"intervals; up to {config.resamples * MORE_RESAMPLES} when an interval's end lies "
            "within the resampling error of its threshold, else too close to call: rejected)"
            if config.resamples
            else "no intervals (--resamples 0)"
        )
        line = f"score the candidate and the champion on the same rows: {metrics}; {intervals}"
        if config.resamples and config.champion_alias and _unthresholded(config):
            line += "; " + _default_check(config)
    else:
        shown = metrics if config.metrics else "all they share, shown, not judged"
        line = f"compare the metrics the runs logged: {shown}"
    plan.add(
        "gate.evaluate", line, metrics=list(config.metrics), resamples=config.resamples,
        seed=config.seed, confidence=config.confidence,
        default_margin=str(config.default_margin) if config.default_margin else None,
    )  # fmt: skip
    if config.slices is not None:
        plan.add(
            "gate.slices",
            f"per-slice checks by {', '.join(config.slices.columns)} (slices of at least "
            f"{config.slices.min_size} rows)",
            columns=list(config.slices.columns),
        )
    plan.add(
        "gate.report",
        f"write {', '.join(REPORT_FILES)} to {config.report_dir} and the table to the CI summary",
        report_dir=config.report_dir,
    )
    if config.log_report:
        plan.add(
            "mlflow.log-report",
            f"log the report to the candidate's run ({REPORT_ARTIFACT_DIR}/)"
            + (f" with the inferred schema ({SCHEMA_ARTIFACT})" if config.training_data else "")
            + " and tag the run and its model version with the verdict (mlsteps.gate.*)",
            artifact_dir=REPORT_ARTIFACT_DIR,
        )
    return plan


def _unthresholded(config: GateConfig) -> bool:
    """Whether some judged metric has no threshold (every default metric has none)."""
    return not config.metrics or any(rule.empty for rule in config.metrics.values())


def _default_check(config: GateConfig) -> str:
    if config.default_margin is not None:
        return (
            f"metrics without a threshold must stay within {config.default_margin} of the "
            "champion, their whole interval (default-margin)"
        )
    return (
        "no margin set: metrics without a threshold reject only a candidate worse beyond the "
        "sampling noise, so a somewhat worse one can pass (set gate.default-margin)"
    )


# What gate needs to read data and score models: the gate extra's libraries, by import name.
GATE_EXTRA = ("numpy", "pandas", "sklearn", "scipy", "mlflow")
NEEDS_EXTRA = "gate --data needs the gate extra: pip install 'mlsteps[gate]'"


def missing_extra(config: GateConfig) -> list[str]:
    """The gate extra's libraries this gate needs and this Python lacks (found, not imported:
    the dry run stays light)."""
    from importlib.util import find_spec

    if not (config.data or config.training_data):
        return []  # a gate on logged metrics reads JSON only
    return [name for name in GATE_EXTRA if find_spec(name) is None]


def show_models(runtime: Runtime, config: GateConfig) -> None:
    """What the run would judge, read (never written) from the registry: a candidate that does
    not exist, or a champion alias that cannot be right, is exit 2 here as in the run; an
    MLflow that cannot be reached leaves the plan as it is, with a warning."""
    from steps.gate.lookup import describe, find
    from steps.services.mlflow.tracking import RestTracking

    assert config.tracking_uri
    face = runtime.get_face()
    face.info("dry run: read the registry for the candidate and the champion (nothing written)")
    try:
        candidate, champion, notes = find(config, RestTracking(config.tracking_uri))
    except StepFailed as exc:  # as promote's dry run: the plan stands, said as unread
        face.warning(
            f"dry run: could not read MLflow to show what the run would find: {exc.message}"
        )
        return
    face.info(f"candidate: {describe(candidate)}")
    face.info(f"champion: {describe(champion) if champion else 'none'}")
    for note in notes:
        face.info(note)
