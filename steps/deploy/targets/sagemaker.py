"""Target `sagemaker`: one SageMaker endpoint with two production variants, the champion's and
the candidate's, traffic split between them by variant weights.

- Weights move with UpdateEndpointWeightsAndCapacities (DesiredWeight = percent; SageMaker
  weights are relative, so champion 100 - p and candidate p), which changes routing without
  new instances; the call returns at once and the endpoint is Updating until the new weights
  serve, so every change waits for InService again, bounded.
- The candidate joins (and leaves) by a new endpoint config and UpdateEndpoint, with
  RetainAllVariantProperties false so that the config's weights are the ones that serve.
  SageMaker keeps the old config serving until the new one is InService, and rolls an update
  back by itself when the new variant fails its health check: the endpoint is then InService
  on the old config, which is read as the update's failure.
- Shadow is the candidate as the config's ShadowProductionVariants entry: SageMaker sends it
  a copy of the production variant's requests and returns only the production answers.
- The candidate is a SageMaker model: an image from `mlsteps package` (its model is inside the
  image, so no ModelDataUrl is needed) becomes a model named after the endpoint and the image's
  hash (CreateModel with the target's execution role), or an existing model is named as it is.
  An image is what package's outputs give, and a model name lets a model made elsewhere (with
  model data in S3, a VPC, ...) be deployed as its owner configured it.
- The endpoint stays between deploys: current() reads DescribeEndpoint and
  DescribeEndpointConfig; configs are named from a hash of their content, so a call repeated
  after a crash finds the config it made and nothing is made twice.

Data capture is not configured (start_candidate's `capture` is accepted and not acted on):
observe() reads CloudWatch's per-variant metrics (sagemaker_metrics.py). boto3 is imported
inside the calls (steps/services/aws.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from steps.core.errors import ConfigError, StepFailed
from steps.deploy.observations import CANDIDATE, CHAMPION, Observations
from steps.deploy.targets.base import Endpoint, Target
from steps.deploy.targets.sagemaker_endpoint import SageMakerEndpoint, State
from steps.services.sagemaker import is_sagemaker_name

if TYPE_CHECKING:
    from steps.deploy.options import DeployConfig


class SageMakerTarget(Target):
    name = "sagemaker"

    def __init__(
        self,
        endpoint: str,
        *,
        role: str = "",
        instance_type: str = "ml.m5.large",
        instance_count: int = 1,
        champion_variant: str = "champion",
        candidate_variant: str = "candidate",
        wait_seconds: float = 1800.0,
        poll_seconds: float = 15.0,
        metrics_delay: float = 180.0,
    ) -> None:
        """endpoint: the endpoint's name; role: the execution role ARN that CreateModel gives
        models made from images; instance_type/count: the first champion's (a candidate runs
        on what the champion runs on); wait_seconds: how long an endpoint may take to be
        InService after a change; metrics_delay: how long after a minute ends its CloudWatch
        metrics are read (SageMaker publishes them a minute or two late)."""
        for option, value in (
            ("the endpoint name", endpoint),
            ("the champion's variant name", champion_variant),
            ("the candidate's variant name", candidate_variant),
        ):
            if not is_sagemaker_name(value):
                raise ConfigError(
                    f"{option} {value!r} is not a SageMaker name: 1 to 63 letters, digits and "
                    "hyphens, starting and ending with a letter or digit. Give one of that form."
                )
        if champion_variant == candidate_variant:
            raise ConfigError(
                f"the champion's and the candidate's variants are both named {champion_variant!r}: "
                "give them different names."
            )
        self.endpoint = endpoint
        self.champion_variant = champion_variant
        self.candidate_variant = candidate_variant
        self.metrics_delay = metrics_delay
        self.sm = SageMakerEndpoint(
            endpoint,
            role=role,
            instance_type=instance_type,
            instance_count=instance_count,
            wait_seconds=wait_seconds,
            poll_seconds=poll_seconds,
        )

    @classmethod
    def from_config(cls, config: DeployConfig, say: Callable[[str], None]) -> SageMakerTarget:
        return cls(
            config.endpoint,
            role=config.sagemaker_role_arn or "",
            instance_type=config.sagemaker_instance_type,
            instance_count=config.sagemaker_instance_count,
        )

    def _champion_spec(self, state: State) -> dict[str, Any]:
        spec = state.production.get(self.champion_variant)
        if spec is None:
            have = ", ".join(sorted(state.production)) or "none"
            raise ConfigError(
                f"SageMaker endpoint {self.endpoint} has no production variant named "
                f"{self.champion_variant!r} (it has: {have}). Give the name its champion's "
                "variant has as the champion's variant name, or deploy to another endpoint."
            )
        return spec

    def _candidate(self, state: State) -> tuple[dict[str, Any] | None, bool]:
        """The candidate's variant and whether it is the shadow one."""
        if self.candidate_variant in state.shadow:
            return state.shadow[self.candidate_variant], True
        return state.production.get(self.candidate_variant), False

    # ----- the interface -----------------------------------------------------------------------

    def _endpoint(self, state: State | None) -> Endpoint:
        url = f"sagemaker:{self.endpoint}"
        region = getattr(self.sm.client("sagemaker").meta, "region_name", "")
        if region:
            url = f"https://runtime.sagemaker.{region}.amazonaws.com/endpoints/{self.endpoint}/invocations"
        if state is None:
            return Endpoint(url=url, champion="", candidate="", candidate_weight=0, mirror=False)
        champion = state.production.get(self.champion_variant, {})
        candidate, mirror = self._candidate(state)
        weight = 0
        if candidate is not None and not mirror:
            on = state.weights.get(self.candidate_variant, 0.0)
            total = on + state.weights.get(self.champion_variant, 0.0)
            weight = round(100 * on / total) if total > 0 else 0
        return Endpoint(
            url=url,
            champion=str(champion.get("ModelName", "")),
            candidate=str(candidate.get("ModelName", "")) if candidate else "",
            candidate_weight=weight,
            mirror=mirror,
        )

    def current(self) -> Endpoint | None:
        state = self.sm.state()
        return None if state is None else self._endpoint(state)

    def ensure_champion(self, champion: str | None) -> Endpoint:
        state = self.sm.state()
        if state is None:
            if champion is None:
                raise ConfigError(
                    f"SageMaker endpoint {self.endpoint} does not exist and no champion is "
                    "given: the first deploy needs the champion's image or model to start the "
                    "endpoint with, so the candidate has something to be compared with."
                )
            model = self.sm.model(champion)
            state = self.sm.apply(
                [self.sm.variant(None, self.champion_variant, model, 1.0)],
                [],
                "starting the champion",
            )
        else:
            state = self.sm.settled("waiting for the endpoint")
        self._champion_spec(state)
        return self._endpoint(state)

    def start_candidate(self, candidate: str, *, capture: bool) -> None:
        state = self.sm.settled("starting the candidate")
        champion = self._champion_spec(state)
        model = self.sm.model(candidate)
        present, _ = self._candidate(state)
        if present is not None:
            if present.get("ModelName") == model:  # started before a crash
                self.sm.sweep(state)  # what the crash left behind
                return
            raise ConfigError(
                f"SageMaker endpoint {self.endpoint} already has a candidate variant "
                f"{self.candidate_variant!r} serving model {present.get('ModelName')}, not "
                f"{model}: another deploy is under way or was interrupted. Finish or roll it "
                "back first (run that deploy again), then deploy this candidate."
            )
        self.sm.apply(
            [
                self.sm.variant(champion, self.champion_variant, champion["ModelName"], 1.0),
                self.sm.variant(champion, self.candidate_variant, model, 0.0),
            ],
            [],
            f"adding candidate {model}",
        )

    def set_weights(self, candidate_weight: int, *, mirror: bool = False) -> None:
        if not 0 <= candidate_weight <= 100 or (mirror and candidate_weight):
            raise ValueError(f"weight {candidate_weight} (mirror {mirror})")
        state = self.sm.settled("moving traffic")
        champion = self._champion_spec(state)
        candidate, shadowed = self._candidate(state)
        if candidate is None:
            raise StepFailed(
                f"SageMaker endpoint {self.endpoint} has no candidate variant "
                f"{self.candidate_variant!r} to move traffic to: it was removed outside this "
                "deploy. Run deploy again to start the candidate anew."
            )
        model = candidate["ModelName"]
        if mirror != shadowed or (shadowed and candidate_weight):
            # Production ↔ shadow is a change of config. A shadow variant needs the endpoint's
            # one production variant; its weight relative to that one is the share mirrored.
            if mirror:
                production = [
                    self.sm.variant(champion, self.champion_variant, champion["ModelName"], 1.0)
                ]
                shadow = [self.sm.variant(champion, self.candidate_variant, model, 1.0)]
            else:
                production = [
                    self.sm.variant(
                        champion,
                        self.champion_variant,
                        champion["ModelName"],
                        float(100 - candidate_weight),
                    ),
                    self.sm.variant(
                        champion, self.candidate_variant, model, float(candidate_weight)
                    ),
                ]
                shadow = []
            self.sm.apply(
                production, shadow, f"{'mirroring to' if mirror else 'serving'} the candidate"
            )
            return
        if mirror:
            return
        want = {
            self.champion_variant: 100 - candidate_weight,
            self.candidate_variant: candidate_weight,
        }
        if all(math.isclose(state.weights.get(n, -1.0), w) for n, w in want.items()):
            return
        doing = f"moving {candidate_weight}% of traffic to the candidate"
        self.sm.call(
            doing,
            "update_endpoint_weights_and_capacities",
            EndpointName=self.endpoint,
            DesiredWeightsAndCapacities=[
                {"VariantName": n, "DesiredWeight": float(w)} for n, w in want.items()
            ],
        )
        state = self.sm.settled(doing)
        now = {n: state.weights.get(n) for n in want}
        if any(now[n] is None or not math.isclose(now[n] or 0.0, w) for n, w in want.items()):
            raise StepFailed(
                f"SageMaker endpoint {self.endpoint} is InService with weights {now} after "
                f"{doing}, not {want}: something else changed them. Run deploy again."
            )

    def observe(self, since: Mapping[str, object]) -> tuple[Observations, dict[str, object]]:
        from steps.deploy.targets.sagemaker_metrics import read

        return read(
            self.sm.client, self.endpoint,
            {self.champion_variant: CHAMPION, self.candidate_variant: CANDIDATE},
            since, delay=self.metrics_delay,
        )  # fmt: skip

    def finish(self) -> Endpoint:
        state = self.sm.settled("finishing the rollout")
        candidate, _ = self._candidate(state)
        if candidate is None:  # finished before a crash: the champion serves the new model
            self.sm.sweep(state)
            return self._endpoint(state)
        self.set_weights(100)
        champion = self._champion_spec(state)
        # The candidate's model under the champion's name, so the next deploy finds it there.
        state = self.sm.apply(
            [self.sm.variant(champion, self.champion_variant, candidate["ModelName"], 1.0)],
            [],
            "making the candidate the champion",
        )
        return self._endpoint(state)

    def remove_candidate(self) -> Endpoint:
        state = self.sm.state()
        if state is None:
            return self._endpoint(None)
        state = self.sm.settled("rolling back")
        candidate, shadowed = self._candidate(state)
        if candidate is None:
            self.sm.sweep(state)
            return self._endpoint(state)
        if not shadowed:
            self.set_weights(0)  # all traffic to the champion before the candidate goes
        champion = self._champion_spec(state)
        state = self.sm.apply(
            [self.sm.variant(champion, self.champion_variant, champion["ModelName"], 1.0)],
            [],
            "removing the candidate",
        )
        return self._endpoint(state)
