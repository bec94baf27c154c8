"""Simulated canary traffic for the deploy judge's tests and benchmark: seeded request streams
(or per-bucket summaries, as CloudWatch gives them) with the stresses a real rollout meets.

A stream is a traffic schedule (the candidate's share and length of each step), requests
arriving as a Poisson process, each going to the candidate with the step's share; errors
Bernoulli and latency lognormal. A *common* error spike or latency drift hits both arms alike
(an A/A run must not roll back on it); the candidate's own error ratio and latency factor make
an A/B run.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from steps.deploy.observations import CANDIDATE, CHAMPION, Observations, Request, Summary

BUCKET = 10.0


@dataclass(frozen=True)
class Scenario:
    rps: float
    shares: tuple[float, ...] = (0.05, 0.25, 0.50)
    step_seconds: float = 180.0
    error_rate: float = 0.01
    latency_median: float = 0.050  # seconds
    latency_sigma: float = 0.4  # of log-latency
    # A spike in both arms: the error rate times spike_factor from spike_start for spike_seconds.
    spike_factor: float = 1.0
    spike_start: float = 60.0
    spike_seconds: float = 60.0
    drift: float = 0.0  # both arms' latency rises linearly by this fraction over the run
    error_ratio: float = 1.0  # the candidate's error rate over the champion's
    latency_factor: float = 1.0  # the candidate's latency over the champion's

    @property
    def seconds(self) -> float:
        return self.step_seconds * len(self.shares)


def _rate(scenario: Scenario, times: np.ndarray) -> np.ndarray:
    spiking = (times >= scenario.spike_start) & (
        times < scenario.spike_start + scenario.spike_seconds
    )
    return scenario.error_rate * np.where(spiking, scenario.spike_factor, 1.0)


def _log_median(scenario: Scenario, times: np.ndarray) -> np.ndarray:
    return math.log(scenario.latency_median) + np.log1p(scenario.drift * times / scenario.seconds)


@dataclass(frozen=True)
class Bucket:
    step: int
    begin: float
    times: np.ndarray
    canary: np.ndarray  # bool: the request went to the candidate
    failed: np.ndarray  # bool: a 500
    log_latency: np.ndarray
    canary_so_far: int  # canary requests up to the end of this bucket


def bucket_arrays(scenario: Scenario, seed: int) -> Iterator[Bucket]:
    """The requests of each 10-s bucket in turn, as arrays."""
    rng = np.random.default_rng(seed)
    canary_so_far = 0
    start = 0.0
    for step, share in enumerate(scenario.shares):
        for offset in np.arange(0.0, scenario.step_seconds, BUCKET):
            begin = start + offset
            count = rng.poisson(scenario.rps * BUCKET)
            times = np.sort(begin + rng.random(count) * BUCKET)
            canary = rng.random(count) < share
            rate = _rate(scenario, times) * np.where(canary, scenario.error_ratio, 1.0)
            failed = rng.random(count) < np.minimum(rate, 1.0)
            log_latency = (
                _log_median(scenario, times)
                + np.where(canary, math.log(scenario.latency_factor), 0.0)
                + scenario.latency_sigma * rng.standard_normal(count)
            )
            canary_so_far += int(canary.sum())
            yield Bucket(step, begin, times, canary, failed, log_latency, canary_so_far)
        start += scenario.step_seconds


def observations(bucket: Bucket, summaries: bool = False) -> Observations:
    """What a target would hand the judge for the bucket: single requests, or with
    summaries=True one Summary per arm (as CloudWatch gives them)."""
    if summaries:
        return Observations(
            summaries=_summaries(bucket.begin, bucket.canary, bucket.failed, bucket.log_latency)
        )
    return Observations(
        requests=[
            Request(t, CANDIDATE if c else CHAMPION, 500 if f else 200, math.exp(x))
            for t, c, f, x in zip(
                bucket.times.tolist(),
                bucket.canary.tolist(),
                bucket.failed.tolist(),
                bucket.log_latency.tolist(),
                strict=True,
            )
        ]
    )


def buckets(
    scenario: Scenario, seed: int, summaries: bool = False
) -> Iterator[tuple[int, int, Observations]]:
    """(step, canary requests so far, the bucket's observations) for each bucket in turn."""
    for bucket in bucket_arrays(scenario, seed):
        yield bucket.step, bucket.canary_so_far, observations(bucket, summaries)


def _summaries(
    begin: float, canary: np.ndarray, failed: np.ndarray, log_latency: np.ndarray
) -> list[Summary]:
    rows = []
    for variant, mask in ((CANDIDATE, canary), (CHAMPION, ~canary)):
        answered = log_latency[mask & ~failed]
        rows.append(
            Summary(
                start=begin,
                seconds=BUCKET,
                variant=variant,
                requests=int(mask.sum()),
                failed=int((mask & failed).sum()),
                client_errors=0,
                log_latency_mean=float(answered.mean()) if answered.size else None,
                log_latency_var=float(answered.var(ddof=1)) if answered.size > 1 else None,
            )
        )
    return rows
