"""One checked rule of a gate, as every part of the gate reports it, and the verdict over them.

The names of the tags gate writes on a model version, and where it logs its report, live here
too: promote reads them (and a step never imports another step).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Tags gate sets on the candidate's model version; promote reads them back.
VERDICT_TAG = "mlsteps.gate.verdict"  # "pass" | "rejected"
CHAMPION_TAG = "mlsteps.gate.champion-version"  # the version compared against, or "none"
REPORT_DIGEST_TAG = "mlsteps.gate.report-digest"  # "sha256:…" of the JSON report
REPORT_URI_TAG = "mlsteps.gate.report-uri"  # where the report was logged (run artifacts)
NO_CHAMPION = "none"
# Where in the candidate's run the gate logs report.md, report.json and report.png; promote
# verifies report.json there against the digest the gate step handed on.
REPORT_ARTIFACT_DIR = "mlsteps/gate"


@dataclass(frozen=True, kw_only=True)
class Check:
    """One row of the gate's report.

    ``passed`` is this rule's result; ``enforced`` False means warn-only (shown, not rejecting).
    Numbers are None where they do not apply (no champion, no interval, a schema rule).
    """

    kind: str  # "metric" | "change" | "slice" | "gap" | "schema" | "quality" | "drift"
    name: str  # what was checked, e.g. "accuracy", "accuracy [group=b]", "age (PSI)"
    passed: bool
    threshold: str  # the rule as a person reads it, e.g. "≥ 0.9", "Δ ≥ -1%", "≤ 0.2"
    candidate: float | str | None = None
    champion: float | None = None
    delta: float | None = None  # candidate − champion, in the metric's own units
    interval: tuple[float, float] | None = None  # of delta for a change check, else of candidate
    detail: str = ""  # why, in words: "interval straddles the threshold", "3 unseen values: …"
    enforced: bool = True
    # An interval's end within its resampling error of the threshold: more resamples may decide
    # it (the gate adds some); if not, it fails as too close to call. Said in detail, not JSON.
    undecided: bool = False

    @property
    def status(self) -> str:
        if self.passed:
            return "pass"
        return "fail" if self.enforced else "warn"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "status": self.status,
            "passed": self.passed,
            "enforced": self.enforced,
            "threshold": self.threshold,
            "candidate": self.candidate,
            "champion": self.champion,
            "delta": self.delta,
            "interval": list(self.interval) if self.interval else None,
            "detail": self.detail,
        }


def verdict(checks: Sequence[Check]) -> str:
    """The gate's decision: "rejected" when an enforced check failed, else "pass"."""
    return "rejected" if any(c.status == "fail" for c in checks) else "pass"
