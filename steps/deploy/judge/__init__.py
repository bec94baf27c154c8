"""The judge of ``mlsteps deploy``: at every look, roll back, continue or extend the bake, with
anytime-valid tests (valid however often it looks and however the split changes between steps).

- errors (5xx and no answer): which arm each error came from, per time bucket (errors.py);
- client-errors (4xx): the same test on the 4xx answers, apart from errors: a client's bad
  request reaches either arm alike, so more 4xx on the candidate are its own (MLflow's scoring
  protocol answers an exception in predict with 400);
- latency: a one-sided normal-mixture test on log-latency per time bucket (latency.py);
- disagreement (shadow, double scoring): betting on the share of answers that differ
  (disagreement.py).

Each metric has a harm test (its e-value reaching m/alpha rolls back) and a safety test (every
metric's reaching m/alpha lets the controller continue); m is the number of metrics, so each
decision's error chance stays under alpha (Bonferroni). Nothing else is a pass: no data, too
little data or a metrics source that failed extends the bake.

Records are grouped per (traffic step, bucket of bucket_seconds). A bucket is judged once a
record from a later bucket or step has been added (so a test never reads half a bucket): until
then its requests are counted in the look but are not yet evidence. Standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from steps.deploy.judge.disagreement import Betting, disagreement_look
from steps.deploy.judge.errors import COUNTS, ErrorTests, errors_look
from steps.deploy.judge.latency import latency_look
from steps.deploy.judge.looks import Look, MetricLook, overall
from steps.deploy.judge.strata import LATENCY_RESOLUTION, Arm, Key, Stratum
from steps.deploy.observations import CANDIDATE, CHAMPION, Observations

__all__ = ["METRICS", "Judge", "JudgeSettings", "Look", "MetricLook"]

METRICS = ("errors", "client-errors", "latency", "disagreement")
STATE_VERSION = 1


@dataclass(frozen=True)
class JudgeSettings:
    alpha: float = 0.05  # each decision's error budget (Bonferroni over metrics)
    error_margin: float = 1.5  # "safe": candidate's error rate < 1.5 x champion's ...
    error_tolerance: float = 1.0  # "harm": ratio > this (r0)
    # ... or, when errors are too rare to compare, below this rate outright (no errors at all
    # in either arm is the usual case: without it such a candidate could never be shown safe).
    error_rate_floor: float = 0.01
    latency_margin: float = 0.05  # "safe": candidate's latency < +5% (geometric mean)
    latency_tolerance: float = 0.0  # "harm": slower by more than this
    disagreement_tolerance: float = 0.01  # share of mirrored requests answered differently
    bucket_seconds: float = 10.0  # stratum length
    # deploy judges "client-errors" too, and "disagreement" for shadow (steps/deploy/run.py).
    metrics: tuple[str, ...] = ("errors", "latency")

    def check(self) -> None:
        """ValueError naming the setting, for values no test can be run with."""
        problems = []
        if not 0.0 < self.alpha < 1.0:
            problems.append(f"alpha must be between 0 and 1, not {self.alpha}")
        if not 0.0 < self.error_tolerance < self.error_margin < math.inf:
            problems.append(
                f"error_tolerance ({self.error_tolerance}) must be above 0 and below "
                f"error_margin ({self.error_margin})"
            )
        if not 0.0 < self.error_rate_floor < 1.0:
            problems.append(
                f"error_rate_floor must be between 0 and 1, not {self.error_rate_floor}"
            )
        if not -1.0 < self.latency_tolerance < self.latency_margin < math.inf:
            problems.append(
                f"latency_tolerance ({self.latency_tolerance}) must be above -1 and below "
                f"latency_margin ({self.latency_margin})"
            )
        if not 0.0 < self.disagreement_tolerance < 1.0:
            problems.append(
                f"disagreement_tolerance must be between 0 and 1, not {self.disagreement_tolerance}"
            )
        if not 0.0 < self.bucket_seconds < math.inf:
            problems.append(f"bucket_seconds must be positive, not {self.bucket_seconds}")
        unknown = [name for name in self.metrics if name not in METRICS]
        if unknown or not self.metrics or len(set(self.metrics)) != len(self.metrics):
            problems.append(f"metrics must be distinct names from {METRICS}, not {self.metrics}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def threshold(self) -> float:
        return len(self.metrics) / self.alpha


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class Judge:
    """Reads observations as they come and judges them at each look."""

    def __init__(self, settings: JudgeSettings) -> None:
        settings.check()
        self.settings = settings
        self._open: dict[Key, Stratum] = {}  # buckets still filling
        self._judged: dict[Key, Stratum] = {}  # buckets the tests have read, in that order
        self._next_generation: dict[tuple[int, int], int] = {}
        self._newest: tuple[int, int] | None = None
        # One pair of tests per count metric (errors, client-errors): the same tolerance, margin
        # and floor.
        self._counts = {
            name: ErrorTests(settings.error_tolerance, settings.error_margin) for name in COUNTS
        }
        self._betting = Betting()
        # Records that could not be read (unknown variant, time or status that is not a number;
        # latencies that are NaN, inf or negative), never read as 0.
        self._ignored = {"records": 0, "latencies": 0, "pairs": 0}
        self._source_error = ""

    # ---- intake -------------------------------------------------------------------------
    def add(self, observations: Observations, step: int) -> None:
        """Take one look's records. step is the controller's traffic step index: a bucket never
        spans two steps. Mirrored requests count like served ones."""
        if not _count(step):
            raise ValueError(f"step must be a whole number >= 0, not {step!r}")
        self._source_error = observations.source_error
        for request in observations.requests:
            arm = self._arm(step, request.time, request.variant) if _count(request.status) else None
            if arm is None:
                self._ignored["records"] += 1
                continue
            arm.requests += 1
            if request.failed:
                arm.failed += 1
                continue  # a failure's latency (a timeout, a refused connection) is not the model's
            if 400 <= request.status < 500:
                arm.client_errors += 1
            if _finite(request.latency) and request.latency >= 0:
                arm.add_latency(math.log(max(request.latency, LATENCY_RESOLUTION)))
            else:
                self._ignored["latencies"] += 1
        for summary in observations.summaries:
            self._add_summary(step, summary)
        log_threshold = math.log(self.settings.threshold)
        for pair in sorted(
            (p for p in observations.pairs if _finite(p.time)), key=lambda p: float(p.time)
        ):
            if isinstance(pair.agree, bool):
                self._betting.add(not pair.agree, log_threshold)
            else:
                self._ignored["pairs"] += 1
        self._ignored["pairs"] += sum(not _finite(p.time) for p in observations.pairs)

    def _arm(self, step: int, time: object, variant: object) -> Arm | None:
        if not _finite(time) or variant not in (CHAMPION, CANDIDATE):
            return None
        bucket = math.floor(float(time) / self.settings.bucket_seconds)  # type: ignore[arg-type]
        key = (step, bucket, self._next_generation.get((step, bucket), 0))
        stratum = self._open.get(key)
        if stratum is None:
            stratum = self._open[key] = Stratum.empty()
            if self._newest is None or key[:2] > self._newest:
                self._newest = key[:2]
        return stratum.candidate if variant == CANDIDATE else stratum.champion

    def _add_summary(self, step: int, summary: Any) -> None:
        counts = (summary.requests, summary.failed, summary.client_errors)
        if not (
            all(_count(n) for n in counts)
            and summary.failed + summary.client_errors <= summary.requests
            and _finite(summary.seconds)
            and summary.seconds > 0
        ):
            self._ignored["records"] += 1
            return
        arm = self._arm(step, summary.start, summary.variant)
        if arm is None:
            self._ignored["records"] += 1
            return
        arm.requests += summary.requests
        arm.failed += summary.failed
        arm.client_errors += summary.client_errors
        answered = summary.requests - summary.failed
        mean, variance = summary.log_latency_mean, summary.log_latency_var
        if mean is None or not answered:
            return  # the source gave no latency for the period: judged on the others
        if not _finite(mean) or (
            variance is not None and not (_finite(variance) and variance >= 0)
        ):
            self._ignored["latencies"] += answered
            return
        arm.add_summary(answered, float(mean), None if variance is None else float(variance))

    def _judge_finished_buckets(self) -> None:
        """Hand every bucket older than the newest to the tests."""
        if self._newest is None:
            return
        for key in sorted(k for k in self._open if k[:2] < self._newest):
            self._fold(key, self._open.pop(key))

    def _fold(self, key: Key, stratum: Stratum) -> None:
        self._judged[key] = stratum
        self._next_generation[key[:2]] = key[2] + 1
        for name, tests in self._counts.items():
            count = COUNTS[name]
            tests.add(stratum.share, count(stratum.candidate), count(stratum.champion))

    # ---- the look -----------------------------------------------------------------------
    def look(self) -> Look:
        self._judge_finished_buckets()
        settings = self.settings
        threshold = settings.threshold
        level = f"{1 - settings.alpha:.0%}"
        strata = [*self._judged.values(), *self._open.values()]
        metrics: list[MetricLook] = []
        for name in settings.metrics:
            if name in COUNTS:
                metrics.append(
                    errors_look(strata, list(self._judged.values()), self._counts[name],
                                settings.error_rate_floor, threshold, level, name)
                )  # fmt: skip
            elif name == "latency":
                metrics.append(
                    latency_look(strata, self._judged, settings.latency_tolerance,
                                 settings.latency_margin, settings.alpha, threshold, level,
                                 self._ignored["latencies"])
                )  # fmt: skip
            else:
                metrics.append(
                    disagreement_look(self._betting, settings.disagreement_tolerance,
                                      threshold, level)
                )  # fmt: skip
        candidate = sum(s.candidate.requests for s in strata)
        champion = sum(s.champion.requests for s in strata)
        return overall(tuple(metrics), candidate, champion, self._source_error)

    # ---- state --------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """JSON-able; from_state(settings, to_state()) looks the same."""

        def strata(table: dict[Key, Stratum]) -> list[list[Any]]:
            return [
                [*key, stratum.champion.to_list(), stratum.candidate.to_list()]
                for key, stratum in table.items()
            ]

        return {
            "version": STATE_VERSION,
            "bucket_seconds": self.settings.bucket_seconds,
            "newest": None if self._newest is None else list(self._newest),
            "judged": strata(self._judged),
            "open": strata(self._open),
            "disagreement": self._betting.to_list(),
            "ignored": dict(self._ignored),
            "source_error": self._source_error,
        }

    @classmethod
    def from_state(cls, settings: JudgeSettings, state: Mapping[str, Any]) -> Judge:
        """The judge that wrote state, resumed; ValueError when state is not such a state."""
        from steps.deploy.judge.state import parse

        judge = cls(settings)
        parsed = parse(state, settings.bucket_seconds)
        for key, stratum in parsed.judged.items():
            judge._fold(key, stratum)
        judge._open = parsed.open
        judge._newest = parsed.newest
        judge._betting = parsed.betting
        judge._ignored = parsed.ignored
        judge._source_error = parsed.source_error
        return judge
