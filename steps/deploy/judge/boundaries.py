"""The normal-mixture e-process and its boundary (Howard, Ramdas, McAuliffe & Sekhon, "Time-
uniform, nonparametric, nonasymptotic confidence sequences", Ann. Stat. 2021; the one-sided form
is confseq's OneSidedNormalMixture).

For a sum S of increments with variance process V (Brownian motion in V under the null of drift
0), mixing exp(θS − θ²V/2) over a half-normal θ ≥ 0 of precision ρ gives

    Λ(S, V) = 2·sqrt(ρ/(V+ρ)) · exp(S²/(2(V+ρ))) · Φ(S/sqrt(V+ρ)),

a nonnegative martingale with Λ = 1 at V = 0, increasing in S. Ville's inequality then bounds
the chance that it ever reaches 1/α by α, however often it is looked at.
"""

from __future__ import annotations

import math

_SQRT2 = math.sqrt(2.0)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def normal_cdf(x: float) -> float:
    """Φ(x), accurate in both tails (erfc does not cancel as 1 − erf would)."""
    return 0.5 * math.erfc(-x / _SQRT2)


def log_normal_cdf(x: float) -> float:
    """log Φ(x); below −30, where Φ underflows, the asymptotic series (relative error < 1e-9)."""
    if x > -30.0:
        return math.log(normal_cdf(x))
    inverse_square = 1.0 / (x * x)
    series = 1.0 - inverse_square + 3.0 * inverse_square**2 - 15.0 * inverse_square**3
    return -0.5 * x * x - math.log(-x) - _LOG_SQRT_2PI + math.log(series)


def best_rho(v_opt: float, alpha: float) -> float:
    """The mixture precision that makes the one-sided boundary at level alpha tightest near
    V = v_opt (Howard et al. §3.5; confseq's best_rho(v, 2α) for a one-sided boundary)."""
    log_term = 2.0 * math.log(1.0 / (2.0 * alpha))
    return v_opt / (log_term + math.log(1.0 + log_term))


def log_one_sided_mixture(s: float, v: float, rho: float) -> float:
    """log Λ(S, V) of the half-normal mixture above (large Λ: evidence of a positive drift)."""
    spread = v + rho
    return (
        0.5 * math.log(4.0 * rho / spread)
        + s * s / (2.0 * spread)
        + log_normal_cdf(s / math.sqrt(spread))
    )


def one_sided_radius(v: float, rho: float, log_threshold: float) -> float:
    """The S at which log Λ(S, V) reaches log_threshold: the boundary a sum must cross.

    Λ grows with S, so bisection finds it; the answer is within 1e-9·(1 + S) of the root.
    """
    spread = math.sqrt(v + rho)
    low, high = 0.0, spread
    while log_one_sided_mixture(high, v, rho) < log_threshold:
        low, high = high, 2.0 * high
    for _ in range(200):
        middle = 0.5 * (low + high)
        if log_one_sided_mixture(middle, v, rho) < log_threshold:
            low = middle
        else:
            high = middle
        if high - low <= 1e-9 * (1.0 + high):
            break
    return high
