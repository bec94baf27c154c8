"""What a target tells the judge: one record per request per variant, and the pairs of answers
to the same request that shadowing (or double scoring) gives.

Every target (steps/deploy/targets/) turns its own source into these: the docker target reads
nginx's access log (one line per request per upstream tried) and the model servers' data
capture; SageMaker's reads CloudWatch's per-variant metrics or data capture. The judge
(steps/deploy/judge/) only ever sees these records, so it is the same whatever serves the model.
Light: standard library only (the plan and --dry-run import this module).
"""

from __future__ import annotations

from dataclasses import dataclass, field

CHAMPION = "champion"
CANDIDATE = "candidate"
VARIANTS = (CHAMPION, CANDIDATE)

# A request that got no HTTP answer from the variant (connection refused or reset, timeout):
# its status is NO_ANSWER, and it counts as an error like a 5xx.
NO_ANSWER = 0


@dataclass(frozen=True)
class Request:
    """One request as one variant handled it."""

    time: float  # when it finished, epoch seconds
    variant: str  # CHAMPION or CANDIDATE
    status: int  # the variant's HTTP status, NO_ANSWER when it gave none
    latency: float  # seconds the variant took (upstream response time), >= 0
    request_id: str = ""  # the proxy's id, the key into data capture
    # A mirrored copy (shadow): the client never saw this answer. Mirrored requests count for
    # the judge's metrics like served ones; they only never reach a client.
    mirrored: bool = False

    @property
    def failed(self) -> bool:
        """An error for the judge: a 5xx or no answer. A 4xx is the client's fault, not the
        model's: counted apart, never as a failure of the variant."""
        return self.status == NO_ANSWER or self.status >= 500


@dataclass(frozen=True)
class Pair:
    """The champion's and the candidate's answers to the same request (shadow or double
    scoring), compared by the disagreement metric."""

    time: float
    request_id: str
    agree: bool  # the two predictions are the same within the deploy's tolerance
    # The predictions themselves, for output drift (PSI of the candidate's against the
    # champion's); None when capture sampled the request out or the output is not a number.
    champion_value: float | None = None
    candidate_value: float | None = None


@dataclass(frozen=True)
class Summary:
    """A variant's requests over one period as a metrics service aggregates them (SageMaker's
    CloudWatch metrics), for targets that cannot see single requests. The judge stratifies
    these like the buckets it forms from Requests."""

    start: float  # the period's start, epoch seconds
    seconds: float  # its length
    variant: str
    requests: int  # answered or not
    failed: int  # 5xx and no answer (see Request.failed)
    client_errors: int  # 4xx
    # Mean and variance of log(latency in seconds) over the period's requests; None when the
    # source gives no latency for the period (then latency is judged on the other periods).
    log_latency_mean: float | None = None
    log_latency_var: float | None = None


@dataclass
class Observations:
    """What one look read from the target since the previous look."""

    requests: list[Request] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    summaries: list[Summary] = field(default_factory=list)
    # Set when the metrics source did not answer (nginx log unreadable, CloudWatch error):
    # the look is inconclusive, never a pass. The text says what failed, for the report.
    source_error: str = ""
