"""Disagreement: the share of mirrored (or double-scored) requests the two models answered
differently, judged by betting (Waudby-Smith & Ramdas, "Estimating means of bounded random
variables by betting", JRSS-B 2024, predictable plug-in empirical Bernstein).

With X_i = 1 when pair i disagreed, λ_i chosen from the pairs before it, and
v_i = (X_i − μ̂_{i−1})², ψ(λ) = −log(1−λ) − λ,

    log E_t(m) = Σ λ_i (X_i − m) − Σ v_i ψ(λ_i)

is a nonnegative supermartingale when the disagreement rate is at most m (harm: H0 "rate ≤
tolerance"), and the same with m − X_i when it is at least m (safety: H0 "rate ≥ tolerance").
Both share the bets, so the pair of tests is a one-sided confidence sequence in closed form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from steps.deploy.judge.looks import HARM, NO_DATA, SAFE, MetricLook, evalue, verdict_of

# The largest bet: 3/4 keeps a disagreement's cost bounded while letting a clean run of pairs
# show "below 1%" in about 500 pairs (the likelihood-ratio limit is about 370).
MAX_BET = 0.75


@dataclass
class Betting:
    pairs: int = 0
    disagreements: int = 0
    mean: float = 0.5  # μ̂, regularised by one fake observation at 1/2
    squares: float = 0.25  # Σ (X − μ̂)² with the fake observation's 1/4
    bets: float = 0.0  # Σ λ
    winnings: float = 0.0  # Σ λ X
    penalty: float = 0.0  # Σ v ψ(λ)
    lower: float = 0.0  # the running intersection of the confidence sequence
    upper: float = 1.0

    def add(self, disagreed: bool, log_threshold: float) -> None:
        x = 1.0 if disagreed else 0.0
        count = self.pairs + 1
        variance = self.squares / count  # σ̂² from the pairs before this one
        bet = min(MAX_BET, math.sqrt(2.0 * log_threshold / (variance * count * math.log1p(count))))
        self.bets += bet
        self.winnings += bet * x
        self.penalty += (x - self.mean) ** 2 * (-math.log1p(-bet) - bet)
        self.pairs = count
        self.disagreements += int(disagreed)
        self.mean = (0.5 + self.disagreements) / (count + 1)
        self.squares += (x - self.mean) ** 2
        radius = log_threshold + self.penalty
        self.lower = max(self.lower, (self.winnings - radius) / self.bets)
        self.upper = min(self.upper, (self.winnings + radius) / self.bets)

    def log_harm(self, tolerance: float) -> float:
        return self.winnings - tolerance * self.bets - self.penalty

    def log_safe(self, tolerance: float) -> float:
        return tolerance * self.bets - self.winnings - self.penalty

    def to_list(self) -> list[float]:
        return [getattr(self, item.name) for item in fields(self)]

    @classmethod
    def from_list(cls, values: object) -> Betting:
        names = [item.name for item in fields(cls)]
        if not isinstance(values, list) or len(values) != len(names):
            raise ValueError(f"disagreement is a list of {len(names)} numbers, not {values!r:.80}")
        if not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in values
        ):
            raise ValueError(f"disagreement's numbers must be finite: {values!r:.120}")
        betting = cls(*values)
        if not (
            0 <= betting.disagreements <= betting.pairs == int(betting.pairs)
            and betting.squares > 0
            and 0.0 <= betting.lower <= betting.upper <= 1.0
        ):
            raise ValueError(f"disagreement's numbers do not add up: {values!r:.120}")
        betting.pairs, betting.disagreements = int(betting.pairs), int(betting.disagreements)
        return betting


def disagreement_look(
    betting: Betting, tolerance: float, threshold: float, level: str
) -> MetricLook:
    if not betting.pairs:
        reason = "disagreement: no compared answers yet -> no data, no verdict"
        return MetricLook("disagreement", NO_DATA, None, None, None, tolerance, 1.0, 1.0,
                          threshold, 0, 0, reason)  # fmt: skip
    harm = evalue(betting.log_harm(tolerance))
    safe = evalue(betting.log_safe(tolerance))
    verdict = verdict_of(harm, safe, threshold)
    rate = betting.disagreements / betting.pairs
    counts = f"disagreement: {betting.disagreements} of {betting.pairs} answers differ ({rate:.2%})"
    if verdict == HARM:
        found = (
            f"rate >= {betting.lower:.2%} with {level} confidence at every look, "
            f"above tolerance {tolerance:.2%}"
        )
    elif verdict == SAFE:
        found = (
            f"rate <= {betting.upper:.2%} with {level} confidence, below tolerance {tolerance:.2%}"
        )
    else:
        found = (
            f"rate between {betting.lower:.2%} and {betting.upper:.2%}, "
            f"not yet clear of tolerance {tolerance:.2%}"
        )
    reason = f"{counts}; {found} -> {verdict}"
    return MetricLook("disagreement", verdict, rate, betting.lower, betting.upper, tolerance,
                      harm, safe, threshold, betting.pairs, betting.pairs, reason)  # fmt: skip
