"""The one interface every deploy target implements: start, set weights, observe, tear down.

The controller (steps/deploy/run.py) drives a rollout only through this interface, so a new
place to serve models (Kubernetes, a later issue) is one more module here, not a fork of the
controller. A target is constructed from the resolved DeployConfig; it must be safe to call
again after a crash (every method idempotent: the controller resumes from its state file and
repeats the step it was in).

Weights are integer percentages of the candidate's share of served traffic, 0..100; the
champion gets the rest. Shadow: the candidate gets a mirrored copy of every request and serves
nobody (weight 0, mirror on).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

from steps.deploy.observations import Observations


@dataclass(frozen=True)
class Endpoint:
    """What serves now: for the report, the outputs and the next deploy."""

    url: str  # where clients send requests (the proxy, the SageMaker endpoint's invoke URL)
    champion: str  # the champion's image (docker) or model name (SageMaker); "" when none
    candidate: str  # the candidate's, "" when none is deployed
    candidate_weight: int  # percent of served traffic on the candidate
    mirror: bool  # the candidate gets a copy of every request (shadow)
    # What of the endpoint is not running (e.g. "proxy", "champion"), "" when all of it is:
    # current() reports a dead part, ensure_champion() restarts it.
    down: str = ""


class Target(ABC):
    """One place models are served from, behind one endpoint."""

    name: str  # the --target value

    @abstractmethod
    def current(self) -> Endpoint | None:
        """What the endpoint serves now, or None when there is no endpoint yet. Reads only."""

    @abstractmethod
    def ensure_champion(self, champion: str | None) -> Endpoint:
        """Make sure the endpoint is up and serves the champion at 100%.

        An endpoint already serving is left as it is (the champion of the last rollout). With
        no endpoint, ``champion`` (an image, a model) is started as the first champion; None
        with no endpoint raises ConfigError (nothing to compare the candidate with).
        """

    @abstractmethod
    def start_candidate(self, candidate: str, *, capture: bool) -> None:
        """Start the candidate beside the champion at weight 0 and wait until it answers its
        health check. ``capture`` turns on data capture (requests, sampled inputs and
        predictions) in both variants."""

    @abstractmethod
    def set_weights(self, candidate_weight: int, *, mirror: bool = False) -> None:
        """Route ``candidate_weight`` percent of requests to the candidate (and mirror every
        request to it when ``mirror``), without failing a request in flight. Returns once
        new requests follow the new weights."""

    @abstractmethod
    def observe(self, since: Mapping[str, object]) -> tuple[Observations, dict[str, object]]:
        """What the variants did since the cursor ``since`` (the dict the previous call
        returned; {} for the start of the rollout). Returns the observations and the next
        cursor, which the controller stores in its state file so a resumed rollout reads each
        request once. A source that does not answer gives Observations(source_error=...),
        never an exception and never an empty pass."""

    @abstractmethod
    def finish(self) -> Endpoint:
        """The candidate (at 100%) becomes the champion: the old champion is removed once no
        request is in flight on it."""

    @abstractmethod
    def remove_candidate(self) -> Endpoint:
        """Rollback: all traffic to the champion first (weight 0, no mirror), then the
        candidate removed once no request is in flight on it. Idempotent; safe when the
        candidate was never started."""
