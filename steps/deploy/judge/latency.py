"""Latency: a one-sided normal-mixture test on log-latency, stratified per time bucket.

In each bucket s where both arms answered, D_s = mean log-latency of the candidate − of the
champion estimates the log of the ratio of their geometric means, with variance
σ_B²/n_B,s + σ_A²/n_A,s. Weighting each bucket by its information I_s = 1/that variance,
S(θ) = Σ I_s (D_s − θ) is a sum of independent, centred increments of variance V = Σ I_s when
the true difference is θ in every bucket: Brownian motion in V, to which the normal-mixture
boundary (boundaries.py) applies. Means are never pooled across buckets or steps, so a drift
common to both arms, or a split that changes with the steps, cancels inside each bucket (the
pooled statistic falsely rolls back nearly every identical model under a +20% common drift,
canary-judge.md §2.4).

σ_A² and σ_B² are plug-ins (the test is asymptotically valid, Waudby-Smith et al., Ann. Stat.
2024): each arm's deviations from its bucket means, pooled over buckets; while an arm has too
few buckets with two answers (a small share at low traffic), its deviations from its step
means instead, which a drift only makes larger (so the test is more cautious, never less). No
verdict before each arm has MIN_LATENCIES answers in compared buckets (the plug-in's burn-in).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from steps.deploy.judge.boundaries import best_rho, log_one_sided_mixture, one_sided_radius
from steps.deploy.judge.looks import HARM, NO_DATA, SAFE, UNSURE, MetricLook, evalue, verdict_of
from steps.deploy.judge.strata import Arm, Key, Stratum

# A bucket counts once each arm has this many answers in it.
BUCKET_MIN = 1
# Each arm's answers in compared buckets before a verdict (the plug-in variance's burn-in).
MIN_LATENCIES = 50
# Degrees of freedom a variance needs before it is used.
MIN_DEGREES = 20
# The mixture is tuned to be tightest at V_OPT_FACTOR / distance², distance being the one between
# the safe margin and the harm tolerance (log units). Measured at 10 requests/s, 5% canary,
# σ 0.4: 2.5 catches +10% after a median of 165 canary requests (10: 206), and the time to show
# an identical model safe does not move.
V_OPT_FACTOR = 2.5


@dataclass(frozen=True)
class LatencyEvidence:
    estimate: float  # Σ I_s D_s / V: the log of the geometric-mean ratio
    lower: float  # the confidence sequence on it, log units
    upper: float
    log_harm: float  # log e-values of H0 "Δ ≤ log(1+tolerance)" and "Δ ≥ log(1+margin)"
    log_safe: float
    candidate_n: int  # answers in compared buckets
    champion_n: int
    ready: bool  # past the burn-in


def mixture_rho(tolerance: float, margin: float, alpha: float) -> float:
    distance = math.log1p(margin) - math.log1p(tolerance)
    return best_rho(V_OPT_FACTOR / (distance * distance), alpha)


def _variance(arms_by_bucket: Sequence[Arm], arms_by_step: Sequence[Arm]) -> float | None:
    for arms in (arms_by_bucket, arms_by_step):
        total, degrees = 0.0, 0
        for arm in arms:
            deviations, freedom = arm.squared_deviations()
            total += deviations
            degrees += freedom
        if degrees >= MIN_DEGREES:
            return max(total / degrees, 1e-12)
    return None


def _by_step(strata: dict[Key, Stratum], candidate: bool) -> list[Arm]:
    steps: dict[int, Arm] = {}
    for key, stratum in strata.items():
        steps.setdefault(key[0], Arm()).merge(stratum.candidate if candidate else stratum.champion)
    return list(steps.values())


def judge_latency(
    strata: dict[Key, Stratum], tolerance: float, margin: float, alpha: float, threshold: float
) -> LatencyEvidence | None:
    """The evidence from the judged strata, None while no bucket has both arms' answers.

    tolerance and margin are relative changes (0.05 = 5% slower); threshold is the e-value a
    test must reach.
    """
    compared = [
        stratum
        for stratum in strata.values()
        if stratum.candidate.latencies >= BUCKET_MIN and stratum.champion.latencies >= BUCKET_MIN
    ]
    if not compared:
        return None
    candidate_n = sum(stratum.candidate.latencies for stratum in compared)
    champion_n = sum(stratum.champion.latencies for stratum in compared)
    var_b = _variance([s.candidate for s in strata.values()], _by_step(strata, True))
    var_a = _variance([s.champion for s in strata.values()], _by_step(strata, False))
    if var_a is None or var_b is None:
        return LatencyEvidence(
            math.nan, -math.inf, math.inf, 0.0, 0.0, candidate_n, champion_n, False
        )
    weighted, information = 0.0, 0.0
    for stratum in compared:
        b, a = stratum.candidate, stratum.champion
        difference = b.latency_sum / b.latencies - a.latency_sum / a.latencies
        weight = 1.0 / (var_b / b.latencies + var_a / a.latencies)
        weighted += weight * difference
        information += weight
    rho = mixture_rho(tolerance, margin, alpha)
    log_threshold = math.log(threshold)
    harm_null, safe_null = math.log1p(tolerance), math.log1p(margin)
    radius = one_sided_radius(information, rho, log_threshold)
    return LatencyEvidence(
        estimate=weighted / information,
        lower=(weighted - radius) / information,
        upper=(weighted + radius) / information,
        log_harm=log_one_sided_mixture(weighted - harm_null * information, information, rho),
        log_safe=log_one_sided_mixture(safe_null * information - weighted, information, rho),
        candidate_n=candidate_n,
        champion_n=champion_n,
        ready=min(candidate_n, champion_n) >= MIN_LATENCIES,
    )


def latency_look(
    strata: Sequence[Stratum],
    judged: dict[Key, Stratum],
    tolerance: float,
    margin: float,
    alpha: float,
    threshold: float,
    level: str,
    unreadable: int,
) -> MetricLook:
    """The latency metric: counts from every stratum seen, the test from the judged ones.
    unreadable: latencies left out (NaN, inf, negative), said in the reason."""
    candidate_n = sum(s.candidate.latencies for s in strata)
    champion_n = sum(s.champion.latencies for s in strata)
    left_out = f" ({unreadable} unreadable latencies left out)" if unreadable else ""
    if not candidate_n or not champion_n:
        who = "the candidate" if not candidate_n else "the champion"
        reason = f"latency: no answered requests from {who} yet{left_out} -> no data, no verdict"
        return MetricLook("latency", NO_DATA, None, None, None, margin, 1.0, 1.0, threshold,
                          candidate_n, champion_n, reason)  # fmt: skip
    evidence = judge_latency(judged, tolerance, margin, alpha, threshold)
    if evidence is None or math.isnan(evidence.estimate):
        reason = (
            f"latency: {candidate_n} candidate and {champion_n} champion answers{left_out}, "
            "too few in judged buckets to estimate a spread yet -> unsure"
        )
        return MetricLook("latency", UNSURE, None, -1.0, math.inf, margin, 1.0, 1.0, threshold,
                          candidate_n, champion_n, reason)  # fmt: skip
    harm, safe = evalue(evidence.log_harm), evalue(evidence.log_safe)
    verdict = verdict_of(harm, safe, threshold, evidence.ready)
    estimate, lower, upper = (
        math.expm1(x) for x in (evidence.estimate, evidence.lower, evidence.upper)
    )
    counts = (
        f"latency: geometric mean {estimate:+.1%} (candidate against champion, "
        f"{evidence.candidate_n} and {evidence.champion_n} answers in judged buckets{left_out})"
    )
    if not evidence.ready:
        found = (
            f"between {lower:+.1%} and {upper:+.1%}; waiting for {MIN_LATENCIES} answers "
            "per arm before any verdict"
        )
    elif verdict == HARM:
        found = (
            f"slower by >= {lower:+.1%} with {level} confidence at every look, "
            f"above tolerance {tolerance:+.1%}"
        )
    elif verdict == SAFE:
        found = f"change <= {upper:+.1%} with {level} confidence, below margin {margin:+.1%}"
    else:
        found = (
            f"between {lower:+.1%} and {upper:+.1%}: neither above tolerance "
            f"{tolerance:+.1%} nor below margin {margin:+.1%} yet"
        )
    reason = f"{counts}; {found} -> {verdict}"
    return MetricLook("latency", verdict, estimate, lower, upper, margin, harm, safe, threshold,
                      evidence.candidate_n, evidence.champion_n, reason)  # fmt: skip
