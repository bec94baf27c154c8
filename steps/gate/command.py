"""The click command of ``mlsteps gate``: read the options, make the plan, print it on a dry
run or hand it to the run (loaded only then)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from steps.core.errors import ConfigError
from steps.core.options import MLFLOW, MODEL
from steps.core.runtime import Runtime, StepResult, step_command
from steps.gate import HELP
from steps.gate.options import SECTION, load_config
from steps.gate.plan import NEEDS_EXTRA, build_plan, missing_extra, show_models


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
