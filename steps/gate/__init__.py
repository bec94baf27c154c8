"""``mlsteps gate``: judge a candidate model before it is promoted.

Order of work, which the plan lists and ``--dry-run`` prints: find the candidate and the
champion in MLflow → load the data sets → schema, quality and drift checks on the evaluation
data → score both models on the same rows with paired bootstrap intervals (or, without data,
compare the metrics their runs logged) → per-slice checks → write the report (markdown, JSON,
PNG) → log it to the candidate's run and tag the run and its model version with the verdict.

Nothing is written before the last two actions, so bad input (a missing column, an unknown
metric) leaves nothing behind. The verdict is exit 0 (pass) or 3 (rejected, every failing
check named); the report is written either way. This package: the command (here),
its options (options.py), the plan (plan.py) and applying it (run.py, imported only by a
real run).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from steps.core.errors import ConfigError
from steps.core.options import MLFLOW, MODEL
from steps.core.runtime import Runtime, StepResult, step_command
from steps.gate.options import HELP, OUTPUTS, SECTION, load_config
from steps.gate.plan import NEEDS_EXTRA, build_plan, missing_extra, show_models

__all__ = ["COMMANDS", "HELP", "OUTPUTS", "SECTION", "command"]


@step_command(
    SECTION,
    help=HELP
    + "\n\nExit 0 when the candidate passes, 3 when it is rejected (every failing check named), "
    "2 for bad input, 1 when a service fails. Thresholds, slices and data rules usually live in "
    "mlsteps.yaml under gate:.",
    epilog="Example: mlsteps gate --model-uri models:/churn/7 --name churn --data eval.csv "
    "--target churned --metrics '{roc_auc: {min: 0.8, min-delta: -0.005}}'",
    shared=(MLFLOW, MODEL),
    # Of the shared sections: the server and the registered model's name (gate creates no run).
    only=(*(o.name for o in SECTION.options), "tracking-uri", "name"),
)
def command(runtime: Runtime, flags: Mapping[str, Any], command: list[str]) -> StepResult:
    config = load_config(runtime, flags)
    plan = build_plan(config)
    missing = missing_extra(config)
    if runtime.dry_run:
        if missing:
            runtime.get_face().warning(f"{NEEDS_EXTRA} (missing here: {', '.join(missing)}).")
        show_models(runtime, config)
        return StepResult(outputs={}, plan=plan)
    if missing:
        raise ConfigError(
            f"{NEEDS_EXTRA} (missing here: {', '.join(missing)}). It loads and scores the "
            "models and reads --data; without --data, gate compares the metrics the runs logged."
        )
    from steps.gate.run import run

    return run(runtime, config, plan)


# The commands of this step, each with its line in `mlsteps --help` (read by steps/registry.py).
COMMANDS = {"gate": (HELP, command)}
