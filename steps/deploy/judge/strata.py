"""What the judge keeps per time bucket and arm: counts, and sums of log-latency.

A stratum is (traffic step, bucket of bucket_seconds, generation): a bucket never spans two
steps, and records that arrive for a bucket already judged form a new generation of it, so a
stratum is never changed once a test has read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

# nginx writes upstream times in whole milliseconds: a fast answer reads 0.000, which has no
# logarithm. It is read as half the resolution, in both arms alike.
LATENCY_RESOLUTION = 0.0005


@dataclass
class Arm:
    """One variant's requests in one stratum."""

    requests: int = 0  # served or mirrored, 4xx included
    failed: int = 0  # 5xx and no answer
    client_errors: int = 0  # 4xx, counted, never errors
    latencies: int = 0  # answered requests whose latency was read (the mean's count)
    latency_sum: float = 0.0  # Σ log(latency)
    # The subset whose spread is known (single requests; summaries that give a variance).
    spread_n: int = 0
    spread_sum: float = 0.0
    spread_squares: float = 0.0

    def add_latency(self, log_latency: float) -> None:
        self.latencies += 1
        self.latency_sum += log_latency
        self.spread_n += 1
        self.spread_sum += log_latency
        self.spread_squares += log_latency * log_latency

    def add_summary(self, count: int, mean: float, variance: float | None) -> None:
        self.latencies += count
        self.latency_sum += count * mean
        if variance is not None:
            self.spread_n += count
            self.spread_sum += count * mean
            self.spread_squares += (count - 1) * variance + count * mean * mean

    def merge(self, other: Arm) -> None:
        for item in fields(self):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))

    def squared_deviations(self) -> tuple[float, int]:
        """Σ (x − mean)² over the spread-known subset, and its degrees of freedom."""
        if self.spread_n < 2:
            return 0.0, 0
        deviations = self.spread_squares - self.spread_sum * self.spread_sum / self.spread_n
        return max(deviations, 0.0), self.spread_n - 1

    def to_list(self) -> list[float]:
        return [getattr(self, item.name) for item in fields(self)]

    @classmethod
    def from_list(cls, values: object) -> Arm:
        """The inverse of to_list; ValueError for anything that is not such a list."""
        names = [item.name for item in fields(cls)]
        if not isinstance(values, list) or len(values) != len(names):
            raise ValueError(f"an arm is a list of {len(names)} numbers, not {values!r:.80}")
        arm = cls()
        for item, value in zip(fields(cls), values, strict=True):
            if item.type == "int":
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ValueError(f"{item.name} must be a count, not {value!r:.40}")
            elif (
                not isinstance(value, (int, float))
                or isinstance(value, bool)
                or not math.isfinite(value)
            ):
                raise ValueError(f"{item.name} must be a finite number, not {value!r:.40}")
            setattr(arm, item.name, value)
        if arm.failed + arm.client_errors > arm.requests or arm.spread_n > arm.latencies:
            raise ValueError(f"an arm's counts do not add up: {values!r:.120}")
        return arm


Key = tuple[int, int, int]  # (step, bucket, generation)


@dataclass
class Stratum:
    champion: Arm
    candidate: Arm

    @classmethod
    def empty(cls) -> Stratum:
        return cls(Arm(), Arm())

    @property
    def share(self) -> float:
        """The candidate's share of the stratum's requests."""
        total = self.champion.requests + self.candidate.requests
        return self.candidate.requests / total if total else 0.0
