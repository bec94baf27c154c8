"""What one look of the judge says, per metric and overall, in numbers and in words."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

HARM, SAFE, UNSURE, NO_DATA = "harm", "safe", "unsure", "no-data"
ROLLBACK, CONTINUE, EXTEND = "rollback", "continue", "extend"
# e-values are kept as numbers a JSON file can hold: beyond this they only say "overwhelming".
MAX_LOG_EVALUE = 700.0


def evalue(log_value: float) -> float:
    return math.exp(min(log_value, MAX_LOG_EVALUE))


def _json_number(value: Any) -> Any:
    """JSON has no inf or NaN: an unbounded side or an undefined estimate is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class MetricLook:
    name: str  # "errors" | "client-errors" | "latency" | "disagreement"
    verdict: str  # HARM | SAFE | UNSURE | NO_DATA
    # errors: rate ratio; latency: relative change (0.1 = +10%); disagreement: rate. None with
    # no data (and for errors with no error in either arm: no ratio to estimate).
    estimate: float | None
    lower: float | None  # the anytime-valid confidence sequence, same unit; ±inf: unbounded
    upper: float | None
    margin: float  # the "safe" bound in the same unit
    harm_evalue: float
    safe_evalue: float
    threshold: float  # m/alpha
    candidate_n: int
    champion_n: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {key: _json_number(value) for key, value in asdict(self).items()}


def verdict_of(harm: float, safe: float, threshold: float, ready: bool = True) -> str:
    if not ready:
        return UNSURE
    if harm >= threshold:
        return HARM
    return SAFE if safe >= threshold else UNSURE


def _ruled_out_phrase(metric: MetricLook) -> str:
    if metric.upper is None or not math.isfinite(metric.upper):
        return ""
    if metric.name == "errors":
        return f"an error-rate ratio above {metric.upper:.3g}"
    if metric.name == "client-errors":
        return f"a 4xx-rate ratio above {metric.upper:.3g}"
    if metric.name == "latency":
        return f"a latency change above {metric.upper:+.1%}"
    return f"a disagreement rate above {metric.upper:.2%}"


@dataclass(frozen=True)
class Look:
    verdict: str  # ROLLBACK | CONTINUE | EXTEND (anything not all safe, no data included)
    metrics: tuple[MetricLook, ...]
    reason: str
    candidate_requests: int
    champion_requests: int

    def ruled_out(self) -> str:
        """Which regressions the data has excluded, for the report on an inconclusive end."""
        phrases = [phrase for phrase in map(_ruled_out_phrase, self.metrics) if phrase]
        if not phrases:
            return "no size of regression is ruled out yet"
        joined = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1])
        if len(phrases) > 1:
            joined += f" and {phrases[-1]}"
        return f"{joined} {'is' if len(phrases) == 1 else 'are'} ruled out"

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "ruled_out": self.ruled_out(),
            "candidate_requests": self.candidate_requests,
            "champion_requests": self.champion_requests,
            "metrics": [metric.to_json() for metric in self.metrics],
        }


def overall(
    metrics: tuple[MetricLook, ...], candidate: int, champion: int, source_error: str
) -> Look:
    """Roll back on any harm; continue only when every metric is safe and the source answered;
    otherwise extend the bake (no data is never a pass)."""
    harmed = [metric for metric in metrics if metric.verdict == HARM]
    if harmed:
        verdict = ROLLBACK
        reason = "roll back: " + "; ".join(metric.reason for metric in harmed)
    elif source_error:
        verdict = EXTEND
        reason = f"extend: the metrics source failed ({source_error}); missing data is no pass"
    elif all(metric.verdict == SAFE for metric in metrics):
        verdict = CONTINUE
        reason = "continue: every metric is within its margin: " + "; ".join(
            metric.reason for metric in metrics
        )
    else:
        verdict = EXTEND
        waiting = [metric for metric in metrics if metric.verdict != SAFE]
        reason = "extend: not yet shown safe: " + "; ".join(metric.reason for metric in waiting)
    return Look(verdict, metrics, reason, candidate, champion)
