"""What a SageMaker endpoint's variants did, from the metrics SageMaker publishes to CloudWatch
(namespace AWS/SageMaker, dimensions EndpointName and VariantName), one Summary per variant per
minute: Invocations, Invocation5XXErrors, Invocation4XXErrors and ModelLatency.

A minute with no Invocations datapoint (or none of Invocation5XXErrors, without which its
failures are unknown) is no data: it gives no Summary, never zeros that would read as a pass.
Only whole minutes that ended `delay` seconds ago are read (SageMaker publishes a minute or two
late); the cursor is the end of the last minute read, so a resumed rollout reads each minute
once. A CloudWatch error is the look's source_error and leaves the cursor where it was.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from steps.core.errors import MlstepsError
from steps.deploy.observations import Observations, Summary

NAMESPACE = "AWS/SageMaker"
PERIOD = 60  # seconds: SageMaker's endpoint metrics are per minute
MOST = 1440  # GetMetricStatistics answers at most 1,440 datapoints per call
COUNTS = ("Invocations", "Invocation5XXErrors", "Invocation4XXErrors")
QUARTILES = ("p25", "p50", "p75")
Z75 = 0.6744897501960817  # the standard normal's 75th percentile
PERMISSIONS = "cloudwatch:GetMetricStatistics"
WITHOUT = "use --target docker to deploy without AWS"


def lognormal(p25: float, p50: float, p75: float, mean: float | None) -> tuple[float, float]:
    """Mean and variance of log(latency) for a lognormal with these quartiles (and mean),
    latencies in seconds. log L ~ N(mu, s^2) puts its median at exp(mu) and its quartiles at
    exp(mu -/+ Z75 s): mu = log p50 and s = (log p75 - log p25) / (2 Z75). Quartiles that
    coincide (few requests, or CloudWatch's coarse percentiles) leave s to the arithmetic mean,
    exp(mu + s^2/2): s^2 = 2 (log mean - mu), 0 when the mean is at or under the median."""
    mu = math.log(p50)
    s = (math.log(p75) - math.log(p25)) / (2 * Z75)
    if s > 0:
        return mu, s * s
    if mean is not None and mean > p50:
        return mu, 2 * (math.log(mean) - mu)
    return mu, 0.0


def minute(stamp: Any) -> float:
    """The start of the minute a datapoint's timestamp falls in, epoch seconds."""
    seconds = stamp.timestamp() if isinstance(stamp, datetime) else float(stamp)
    return math.floor(seconds / PERIOD) * PERIOD


def read(
    client: Callable[[str], Any],
    endpoint: str,
    variants: Mapping[str, str],
    since: Mapping[str, object],
    *,
    delay: float,
    now: float | None = None,
) -> tuple[Observations, dict[str, object]]:
    """The Summaries of `variants` (SageMaker variant name → CHAMPION or CANDIDATE) for the
    whole minutes after the cursor `since` ({"until": epoch seconds}; {} is now's minute)."""
    from steps.services.sagemaker import call

    now = time.time() if now is None else now
    until = since.get("until")
    start = float(until) if isinstance(until, (int, float)) else minute(now)
    end = min(minute(now - delay), start + MOST * PERIOD)
    if end <= start:
        return Observations(), {"until": start}

    def series(variant: str, metric: str, **statistics: Any) -> list[dict[str, Any]]:
        answer = call(
            client("cloudwatch"),
            f"reading {metric} of variant {variant} of endpoint {endpoint}",
            "get_metric_statistics",
            service="CloudWatch",
            permissions=PERMISSIONS,
            without=WITHOUT,
            Namespace=NAMESPACE,
            MetricName=metric,
            Dimensions=[
                {"Name": "EndpointName", "Value": endpoint},
                {"Name": "VariantName", "Value": variant},
            ],
            StartTime=datetime.fromtimestamp(start, timezone.utc),
            EndTime=datetime.fromtimestamp(end, timezone.utc),
            Period=PERIOD,
            **statistics,
        )
        points: list[dict[str, Any]] = answer.get("Datapoints", [])
        return points

    summaries: list[Summary] = []
    try:
        for variant, role in variants.items():
            counts: dict[str, dict[float, float]] = {}
            for metric in COUNTS:
                counts[metric] = {}
                for point in series(variant, metric, Statistics=["Sum"]):
                    at = minute(point["Timestamp"])
                    counts[metric][at] = counts[metric].get(at, 0.0) + float(point["Sum"])
            latency = {
                minute(p["Timestamp"]): p
                for p in series(
                    variant,
                    "ModelLatency",
                    Statistics=["Average"],
                    ExtendedStatistics=list(QUARTILES),
                )
            }
            for at, invocations in sorted(counts["Invocations"].items()):
                if at not in counts["Invocation5XXErrors"] or invocations <= 0:
                    continue  # no requests, or their failures unknown: no data
                failed = counts["Invocation5XXErrors"][at]
                # SageMaker publishes no 4xx datapoint with none: a 4xx never counts as the
                # model's failure, so a missing one changes no verdict.
                client_errors = counts["Invocation4XXErrors"].get(at, 0.0)
                summaries.append(
                    Summary(
                        start=at,
                        seconds=PERIOD,
                        variant=role,
                        # Invocations counts every request; never fewer than those that failed.
                        requests=int(max(invocations, failed + client_errors)),
                        failed=int(failed),
                        client_errors=int(client_errors),
                        **fit(latency.get(at)),
                    )
                )
    except MlstepsError as exc:
        return Observations(source_error=exc.message), dict(since)
    summaries.sort(key=lambda s: (s.start, s.variant))
    return Observations(summaries=summaries), {"until": end}


def fit(point: Mapping[str, Any] | None) -> dict[str, float | None]:
    """Summary's latency fields from a ModelLatency datapoint (microseconds), None without its
    three quartiles (moto gives none)."""
    quartiles = (point or {}).get("ExtendedStatistics", {})
    values = [quartiles.get(q) for q in QUARTILES]
    if point is None or any(v is None or not v > 0 for v in values):
        return {"log_latency_mean": None, "log_latency_var": None}
    average = point.get("Average")
    p25, p50, p75 = (float(v) / 1e6 for v in values)
    mean = float(average) / 1e6 if isinstance(average, (int, float)) and average > 0 else None
    mu, var = lognormal(p25, p50, p75, mean)
    return {"log_latency_mean": mu, "log_latency_var": var}
