"""What a gate run's handlers find and hand on to each other (steps/gate/run.py and the scoring
in steps/gate/scoring.py both read and fill it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steps.checks.verdict import Check
from steps.services.mlflow.model_source import Artifacts, ModelRef
from steps.services.mlflow.tracking import RestTracking


@dataclass
class GateState:
    """What the handlers find and hand on to each other."""

    rest: RestTracking
    artifacts: Artifacts
    candidate: ModelRef | None = None
    champion: ModelRef | None = None
    data: Any = None  # pandas.DataFrame
    training: Any = None
    data_digest: str = ""
    inferred_schema: dict[str, Any] | None = None
    predictions: Any = None  # (candidate, champion | None) metrics.Predictions, for slices
    task: str = ""
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    not_judged: dict[str, str] = field(default_factory=dict)  # metric → why it could not be
    seed: int = 0  # of the resampling: --seed, or derived from the data and the models
    resamples: int = 0  # how many were drawn: --resamples, more when a check was too close
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    evaluation: str = ""
    report: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
