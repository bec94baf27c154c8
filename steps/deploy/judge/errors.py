"""Errors: which arm did each error come from (Lindon & Malek, "Anytime-valid inference for
multinomial count data", NeurIPS 2022), stratified per time bucket.

Within a bucket where the champion served n_A requests and the candidate n_B, an error comes
from the candidate with probability q = n_B/(n_A+n_B) when both arms fail at the same rate, and
q(r) = q·r/(q·r + 1 − q) when the candidate fails r times as often. Only the split of the
bucket's errors between the arms is read, so a spike in both arms, a base rate that drifts and a
split that changes between steps all cancel out; it needs no burn-in and no variance estimate.

For H0 "ratio ≤ r0" the e-process is a mixture over alternatives r_j > r0 of the likelihood
ratios Π_s (q_s(r_j)/q_s(r0))^{k_B,s} · ((1−q_s(r_j))/(1−q_s(r0)))^{k_A,s}. It is a martingale
for Poisson errors; for per-request errors k_B given the bucket's total is hypergeometric, which
the binomial dominates in convex order (Hoeffding 1963), so it stays a supermartingale; the
likelihood ratio is monotone in r, so the whole composite null is covered. The mirror test
(H0 "ratio ≥ margin", alternatives below) is the same with the direction turned round.

A candidate whose error rate is too low to compare (no errors at all, the usual case) is shown
safe by a second test: its own rate below an absolute floor (H0 "rate ≥ floor").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from steps.deploy.judge.looks import HARM, NO_DATA, SAFE, MetricLook, evalue, verdict_of
from steps.deploy.judge.strata import Arm, Stratum

# Alternatives are the null times (harm) or divided by (safe) these, with equal weights: the
# grid of canary-judge.md §2.4, from a quarter more errors to ten times as many.
MULTIPLIERS = (1.25, 1.5, 2.0, 3.0, 5.0, 10.0)
# The confidence sequence is evaluated on ratios 2^(i/12), 1/256 to 256 (6% apart): a bound is
# reported at the grid point on the safe side of the exact one. Its tests use the multipliers
# rounded onto the grid (1.26, 1.50, 2, 3.00, 5.04, 10.1), so that one bucket's log-likelihoods
# at the grid points give every test's increment by differences.
GRID_STEP = 2.0 ** (1 / 12)
GRID_SHIFTS = (4, 7, 12, 19, 28, 40)
GRID_SPAN = 96
# The floor test's alternatives, as fractions of the floor, and their weights: half on "no
# errors at all", which is what most candidates show.
FLOOR_ALTERNATIVES = ((0.0, 0.5), (0.25, 1 / 6), (0.5, 1 / 6), (0.75, 1 / 6))


def tilt(share: float, ratio: float) -> float:
    """The chance that an error comes from the candidate, given its share of the bucket's
    requests and the ratio of its error rate to the champion's."""
    return share * ratio / (share * ratio + 1.0 - share)


def log_mean_exp(logs: Sequence[float]) -> float:
    """log of the equally weighted mean of exp(logs), without overflow."""
    top = max(logs)
    if top == -math.inf:
        return -math.inf
    return top + math.log(sum(math.exp(value - top) for value in logs) / len(logs))


class RatioTest:
    """The mixture e-process for H0 "ratio ≤ null" (upward) or "ratio ≥ null" (downward)."""

    def __init__(self, null: float, *, upward: bool) -> None:
        self.null = null
        self.alternatives = tuple(null * m if upward else null / m for m in MULTIPLIERS)
        self.logs = [0.0] * len(self.alternatives)

    def add(self, share: float, candidate_errors: int, champion_errors: int) -> None:
        """Fold in one bucket: the candidate's share of its requests and each arm's errors."""
        if candidate_errors + champion_errors == 0 or not 0.0 < share < 1.0:
            return  # no error, or one arm absent: the bucket says nothing about the ratio
        q0 = tilt(share, self.null)
        for index, ratio in enumerate(self.alternatives):
            q = tilt(share, ratio)
            self.logs[index] += candidate_errors * math.log(q / q0) + champion_errors * math.log(
                (1.0 - q) / (1.0 - q0)
            )

    def log_evalue(self) -> float:
        return log_mean_exp(self.logs)


def log_floor_evalue(requests: int, errors: int, floor: float) -> float:
    """log e-value for H0 "the candidate's error rate ≥ floor" from its requests and errors: a
    mixture of Bernoulli likelihood ratios with rates below the floor. Only the totals matter,
    so the order of the requests does not."""
    terms = []
    for fraction, weight in FLOOR_ALTERNATIVES:
        rate = fraction * floor
        if rate == 0.0:
            term = -math.inf if errors else -requests * math.log1p(-floor)
        else:
            term = errors * math.log(rate / floor) + (requests - errors) * (
                math.log1p(-rate) - math.log1p(-floor)
            )
        terms.append(math.log(weight) + term)
    top = max(terms)
    return top + math.log(sum(math.exp(term - top) for term in terms))


class ConfidenceGrid:
    """Upward and downward ratio tests at every grid ratio, the confidence sequence's."""

    def __init__(self) -> None:
        self.ratios = [GRID_STEP**i for i in range(-GRID_SPAN, GRID_SPAN + 1)]
        self.up = [[0.0] * len(GRID_SHIFTS) for _ in self.ratios]
        self.down = [[0.0] * len(GRID_SHIFTS) for _ in self.ratios]

    def add(self, share: float, candidate_errors: int, champion_errors: int) -> None:
        if candidate_errors + champion_errors == 0 or not 0.0 < share < 1.0:
            return
        reach = GRID_SPAN + GRID_SHIFTS[-1]
        # log-likelihood of the bucket's split at each ratio 2^(i/12), offset by reach
        loglik = []
        for i in range(-reach, reach + 1):
            q = tilt(share, GRID_STEP**i)
            loglik.append(candidate_errors * math.log(q) + champion_errors * math.log1p(-q))
        for index in range(len(self.ratios)):
            here = loglik[index + GRID_SHIFTS[-1]]
            up, down = self.up[index], self.down[index]
            for j, shift in enumerate(GRID_SHIFTS):
                up[j] += loglik[index + GRID_SHIFTS[-1] + shift] - here
                down[j] += loglik[index + GRID_SHIFTS[-1] - shift] - here

    def bounds(self, log_threshold: float) -> tuple[float, float]:
        """Ratios whose harm test has not rejected (lower) and whose safety test has not
        (upper). 0 and inf when nothing is ruled out yet."""
        lower = 0.0
        for ratio, logs in zip(self.ratios, self.up, strict=True):
            if log_mean_exp(logs) >= log_threshold:
                lower = ratio
        upper = math.inf
        for ratio, logs in zip(reversed(self.ratios), reversed(self.down), strict=True):
            if log_mean_exp(logs) >= log_threshold:
                upper = ratio
        return lower, upper


class ErrorTests:
    """The harm and safety tests for the error-rate ratio, and its confidence sequence, each
    updated once per bucket (a look costs nothing more)."""

    def __init__(self, tolerance: float, margin: float) -> None:
        self.harm = RatioTest(tolerance, upward=True)
        self.safe = RatioTest(margin, upward=False)
        self.grid = ConfidenceGrid()

    def add(self, share: float, candidate_errors: int, champion_errors: int) -> None:
        self.harm.add(share, candidate_errors, champion_errors)
        self.safe.add(share, candidate_errors, champion_errors)
        self.grid.add(share, candidate_errors, champion_errors)


def _rate(errors: int, requests: int) -> str:
    return f"{errors} of {requests} ({errors / requests:.2%})"


# The count metrics: what each counts in an arm. client-errors are 4xx answers: a client's
# fault reaches both arms alike (the split is random), so more of them on the candidate is the
# model's doing -- MLflow's scoring protocol answers an exception in predict with 400.
COUNTS: dict[str, Callable[[Arm], int]] = {
    "errors": lambda arm: arm.failed,
    "client-errors": lambda arm: arm.client_errors,
}


def errors_look(
    strata: Sequence[Stratum],
    judged: Sequence[Stratum],
    tests: ErrorTests,
    floor: float,
    threshold: float,
    level: str,
    name: str = "errors",
) -> MetricLook:
    """A count metric (COUNTS[name]) from every stratum seen (counts, estimate) and the judged
    ones (the tests). level is the confidence in words ("95%")."""
    count = COUNTS[name]
    candidate_n = sum(s.candidate.requests for s in strata)
    champion_n = sum(s.champion.requests for s in strata)
    margin = tests.safe.null
    if not candidate_n or not champion_n:
        who = "the candidate" if not candidate_n else "the champion"
        reason = f"{name}: no requests to {who} yet -> no data, no verdict"
        return MetricLook(name, NO_DATA, None, None, None, margin, 1.0, 1.0, threshold,
                          candidate_n, champion_n, reason)  # fmt: skip
    candidate_k = sum(count(s.candidate) for s in strata)
    champion_k = sum(count(s.champion) for s in strata)
    # Mantel-Haenszel: the rate ratio within buckets, weighted as the test weighs them.
    above = sum(count(s.candidate) * s.champion.requests / _total(s) for s in strata)
    below = sum(count(s.champion) * s.candidate.requests / _total(s) for s in strata)
    estimate = None if above == below == 0 else (math.inf if below == 0 else above / below)
    log_threshold = math.log(threshold)
    lower, upper = tests.grid.bounds(log_threshold)
    # The grid's multipliers are rounded: where it lags the decision's exact test, the bound
    # says what that test has shown (the ratio is past the tolerance, or under the margin).
    if tests.harm.log_evalue() >= log_threshold:
        lower = max(lower, tests.harm.null)
    if tests.safe.log_evalue() >= log_threshold:
        upper = min(upper, margin)
    harm = evalue(tests.harm.log_evalue())
    judged_n = sum(s.candidate.requests for s in judged)
    judged_k = sum(count(s.candidate) for s in judged)
    # Safe if either the ratio is below the margin or the rate below the floor: the null is
    # both failing, under which the mean of the two e-values is an e-value.
    safe = 0.5 * (
        evalue(tests.safe.log_evalue()) + evalue(log_floor_evalue(judged_n, judged_k, floor))
    )
    verdict = verdict_of(harm, safe, threshold)
    counts = (
        f"candidate {_rate(candidate_k, candidate_n)}, champion {_rate(champion_k, champion_n)}"
    )
    if verdict == HARM:
        found = (
            f"rate ratio >= {lower:.3g} with {level} confidence at every look, "
            f"above tolerance {tests.harm.null:#.3g}"
        )
    elif verdict == SAFE and tests.safe.log_evalue() >= log_threshold:
        found = f"rate ratio <= {upper:.3g} with {level} confidence, below margin {margin:#.3g}"
    elif verdict == SAFE:
        found = f"the candidate's error rate is below {floor:.2%} with {level} confidence"
    else:
        bound = (
            "no bound yet"
            if lower == 0 and upper == math.inf
            else f"rate ratio between {lower:.3g} and {upper:.3g}"
        )
        found = (
            f"{bound}: neither above tolerance {tests.harm.null:#.3g} nor below margin "
            f"{margin:#.3g} (or {floor:.2%} outright) yet"
        )
    reason = f"{name}: {counts}; {found} -> {verdict}"
    return MetricLook(name, verdict, estimate, lower, upper, margin, harm, safe, threshold,
                      candidate_n, champion_n, reason)  # fmt: skip


def _total(stratum: Stratum) -> int:
    return max(stratum.candidate.requests + stratum.champion.requests, 1)
