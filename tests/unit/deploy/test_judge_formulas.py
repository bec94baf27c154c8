"""The judge's formulas against independent computations: scipy's normal distribution and
numerical integration for the normal mixture, canary-judge.md §2.2's boundary, hand-worked
examples of the §2.4 conditional e-process and of the betting e-process, and exact expectations
that show each e-process is a (super)martingale under its null."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import integrate, stats

from steps.deploy.judge.boundaries import (
    best_rho,
    log_normal_cdf,
    log_one_sided_mixture,
    one_sided_radius,
)
from steps.deploy.judge.disagreement import MAX_BET, Betting
from steps.deploy.judge.errors import RatioTest, log_floor_evalue, tilt
from steps.deploy.judge.latency import judge_latency, mixture_rho
from steps.deploy.judge.strata import Stratum

# ----- the normal mixture (boundaries.py) ------------------------------------------------------


@pytest.mark.parametrize("x", [-60.0, -38.5, -30.01, -29.99, -8.0, -1.0, 0.0, 0.7, 6.0])
def test_log_normal_cdf_matches_scipy_in_both_tails(x: float) -> None:
    assert log_normal_cdf(x) == pytest.approx(stats.norm.logcdf(x), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(
    ("s", "v", "rho"),
    [(0.0, 10.0, 1.0), (3.0, 10.0, 1.0), (-4.0, 25.0, 3.0), (40.0, 900.0, 120.0), (2.0, 0.5, 8.0)],
)
def test_one_sided_mixture_is_the_half_normal_mixture_integrated_numerically(
    s: float, v: float, rho: float
) -> None:
    """Λ(S, V) = ∫₀^∞ exp(θS − θ²V/2) · 2·N(θ; 0, 1/ρ) dθ, by quadrature."""

    def integrand(theta: float) -> float:
        return float(
            math.exp(theta * s - theta * theta * v / 2) * 2 * stats.norm.pdf(theta, 0, rho**-0.5)
        )

    value, _ = integrate.quad(integrand, 0, np.inf, epsabs=0, epsrel=1e-11, limit=200)
    assert log_one_sided_mixture(s, v, rho) == pytest.approx(math.log(value), rel=1e-8, abs=1e-9)


@pytest.mark.parametrize(("v", "rho", "threshold"), [(50.0, 5.0, 40.0), (4000.0, 300.0, 60.0)])
def test_radius_solves_the_section_2_2_boundary_with_the_one_sided_factor(
    v: float, rho: float, threshold: float
) -> None:
    """§2.2: the two-sided mixture crosses 1/a at |S| = sqrt((V+ρ)(log(1+V/ρ) + 2 log(1/a))).
    The one-sided mixture is 2Φ(S/sqrt(V+ρ)) times the two-sided one, so its radius r is the
    two-sided boundary at a = 2Φ(r/sqrt(V+ρ))/threshold (evaluated with scipy)."""
    radius = one_sided_radius(v, rho, math.log(threshold))
    a = 2 * stats.norm.cdf(radius / math.sqrt(v + rho)) / threshold
    two_sided = math.sqrt((v + rho) * (math.log(1 + v / rho) + 2 * math.log(1 / a)))
    assert radius == pytest.approx(two_sided, rel=1e-8)
    assert log_one_sided_mixture(radius, v, rho) == pytest.approx(math.log(threshold), abs=1e-7)


def test_best_rho_makes_the_boundary_nearly_tightest_at_v_opt() -> None:
    """Howard et al.'s closed form against a numerical minimisation over ρ of the radius at
    V = v_opt: within 2% of the best width."""
    from scipy.optimize import minimize_scalar

    v_opt, alpha = 1000.0, 0.025
    best = minimize_scalar(
        lambda log_rho: one_sided_radius(v_opt, math.exp(log_rho), math.log(1 / alpha)),
        bounds=(-5, 12),
        method="bounded",
    )
    ours = one_sided_radius(v_opt, best_rho(v_opt, alpha), math.log(1 / alpha))
    assert ours <= best.fun * 1.02
    assert best_rho(v_opt, alpha) == pytest.approx(
        v_opt / (2 * math.log(1 / (2 * alpha)) + math.log(1 + 2 * math.log(1 / (2 * alpha))))
    )


# ----- errors: which arm did the error come from (errors.py) -----------------------------------


def _fraction_tilt(q: Fraction, r: Fraction) -> Fraction:
    return q * r / (q * r + 1 - q)


def test_conditional_eprocess_on_a_hand_example() -> None:
    """Two buckets worked in exact fractions: a 10% canary with 2 of 5 errors, then a 50% one
    with 3 of 4; H0 ratio ≤ 1, the six alternatives 1.25…10 weighted equally."""
    buckets = [(Fraction(1, 10), 2, 3), (Fraction(1, 2), 3, 1)]
    total = Fraction(0)
    for r in (Fraction(5, 4), Fraction(3, 2), Fraction(2), Fraction(3), Fraction(5), Fraction(10)):
        product = Fraction(1)
        for q, k_b, k_a in buckets:
            q_r = _fraction_tilt(q, r)
            product *= (q_r / q) ** k_b * ((1 - q_r) / (1 - q)) ** k_a
        total += product / 6
    test = RatioTest(1.0, upward=True)
    for q, k_b, k_a in buckets:
        test.add(float(q), k_b, k_a)
    assert math.exp(test.log_evalue()) == pytest.approx(float(total), rel=1e-12)
    # by hand for one term: r = 2 in the first bucket, q(2) = 0.2/1.1
    assert tilt(0.1, 2.0) == pytest.approx(2 / 11)


@pytest.mark.parametrize(("share", "errors"), [(0.05, 3), (0.25, 8), (0.5, 20)])
def test_conditional_eprocess_has_expectation_one_under_equal_rates(
    share: float, errors: int
) -> None:
    """E[E] over the binomial split of a bucket's errors is exactly 1 at ratio 1 (a martingale),
    at most 1 below it (the composite null), for the harm test; the mirror for the safety one."""

    def expected(test_null: float, upward: bool, true_ratio: float) -> float:
        q = tilt(share, true_ratio)
        total = 0.0
        for k_b in range(errors + 1):
            test = RatioTest(test_null, upward=upward)
            test.add(share, k_b, errors - k_b)
            total += stats.binom.pmf(k_b, errors, q) * math.exp(test.log_evalue())
        return total

    assert expected(1.0, True, 1.0) == pytest.approx(1.0, rel=1e-9)
    assert expected(1.0, True, 0.7) < 1.0
    assert expected(1.5, False, 1.5) == pytest.approx(1.0, rel=1e-9)
    assert expected(1.5, False, 2.5) < 1.0


def test_floor_evalue_by_hand() -> None:
    """H0 rate ≥ 1%: 0 errors in 300 requests; weights ½ on rate 0 and ⅙ on 0.25, 0.5, 0.75%."""
    by_hand = 0.5 * 0.99**-300 + sum(
        (1 / 6) * ((1 - f * 0.01) / 0.99) ** 300 for f in (0.25, 0.5, 0.75)
    )
    assert math.exp(log_floor_evalue(300, 0, 0.01)) == pytest.approx(by_hand, rel=1e-12)
    with_errors = sum((1 / 6) * f**2 * ((1 - f * 0.01) / 0.99) ** 298 for f in (0.25, 0.5, 0.75))
    assert math.exp(log_floor_evalue(300, 2, 0.01)) == pytest.approx(with_errors, rel=1e-12)
    # its expectation at the null rate is 1
    expectation = sum(
        stats.binom.pmf(k, 40, 0.01) * math.exp(log_floor_evalue(40, k, 0.01)) for k in range(41)
    )
    assert expectation == pytest.approx(1.0, rel=1e-9)


# ----- disagreement: betting (disagreement.py) ------------------------------------------------


def test_betting_on_a_hand_example() -> None:
    """Three pairs: agree, disagree, agree; bets and penalties written out step by step."""
    log_threshold = math.log(40)
    tolerance = 0.01
    mean, squares, winnings, bets, penalty = 0.5, 0.25, 0.0, 0.0, 0.0
    for t, x in enumerate([0, 1, 0], start=1):
        bet = min(MAX_BET, math.sqrt(2 * log_threshold / (squares / t * t * math.log(1 + t))))
        bets += bet
        winnings += bet * x
        penalty += (x - mean) ** 2 * (-math.log(1 - bet) - bet)
        mean = (0.5 + sum([0, 1, 0][:t])) / (t + 1)
        squares += (x - mean) ** 2
    betting = Betting()
    for x in [0, 1, 0]:
        betting.add(bool(x), log_threshold)
    assert betting.log_harm(tolerance) == pytest.approx(
        winnings - tolerance * bets - penalty, rel=1e-12
    )
    assert betting.log_safe(tolerance) == pytest.approx(
        tolerance * bets - winnings - penalty, rel=1e-12
    )
    assert betting.pairs == 3 and betting.disagreements == 1


def test_betting_is_a_supermartingale_at_the_tolerance() -> None:
    """One more pair's factor exp(λ(X − m) − vψ(λ)) has expectation ≤ 1 when P(X=1) = m,
    whatever came before (here: after 50 agreeing pairs, the bet at its cap)."""
    betting = Betting()
    for _ in range(50):
        betting.add(False, math.log(40))
    for m in (0.01, 0.2):
        outcomes = []
        for x in (False, True):
            after = Betting(*betting.to_list())
            after.add(x, math.log(40))
            outcomes.append(after.log_harm(m) - betting.log_harm(m))
        assert (1 - m) * math.exp(outcomes[0]) + m * math.exp(outcomes[1]) <= 1.0


# ----- latency: the stratified statistic (latency.py) -----------------------------------------


def test_latency_statistic_weighs_bucket_differences_by_information() -> None:
    """Two buckets of known log-latencies: the estimate is Σ I_s D_s / Σ I_s with the pooled
    within-bucket variances (numpy), never the difference of the pooled means."""
    rng = np.random.default_rng(3)
    data = {
        (0, 0, 0): (rng.normal(-3.0, 0.3, 40), rng.normal(-2.9, 0.3, 12)),
        (1, 1, 0): (rng.normal(-2.0, 0.3, 30), rng.normal(-1.9, 0.3, 30)),
    }
    strata = {}
    for key, (champion, candidate) in data.items():
        stratum = Stratum.empty()
        for values, arm in ((champion, stratum.champion), (candidate, stratum.candidate)):
            for value in values:
                arm.add_latency(float(value))
        strata[key] = stratum
    var_a = sum(((c - c.mean()) ** 2).sum() for c, _ in data.values()) / (40 - 1 + 30 - 1)
    var_b = sum(((b - b.mean()) ** 2).sum() for _, b in data.values()) / (12 - 1 + 30 - 1)
    weights = [1 / (var_b / len(b) + var_a / len(c)) for c, b in data.values()]
    differences = [b.mean() - c.mean() for c, b in data.values()]
    expected = sum(w * d for w, d in zip(weights, differences, strict=True)) / sum(weights)
    evidence = judge_latency(strata, 0.0, 0.05, 0.05, 40.0)
    assert evidence is not None
    assert evidence.estimate == pytest.approx(expected, rel=1e-9)
    pooled = (
        np.concatenate([b for _, b in data.values()]).mean()
        - np.concatenate([c for c, _ in data.values()]).mean()
    )
    assert abs(pooled - expected) > 0.1  # the drift between buckets would have leaked in
    information = sum(weights)
    rho = mixture_rho(0.0, 0.05, 0.05)
    assert evidence.log_harm == pytest.approx(
        log_one_sided_mixture(expected * information, information, rho), rel=1e-9
    )
    assert not evidence.ready  # fewer than 50 candidate answers
