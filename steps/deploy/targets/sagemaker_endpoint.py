"""A SageMaker endpoint as the sagemaker target drives it (sagemaker.py): its state read from
DescribeEndpoint and DescribeEndpointConfig, waits for InService (bounded), models made from
images, and configs made, switched to and deleted, each call's failure in the user's terms
(steps/services/sagemaker.py). Names mlsteps gives are a hash of what they hold, so a call
repeated after a crash finds what the first one made; only those are ever deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from steps.core.errors import ConfigError, StepFailed
from steps.services.sagemaker import is_sagemaker_name

PERMISSIONS = (
    "sagemaker:DescribeEndpoint, DescribeEndpointConfig, CreateEndpointConfig, "
    "DeleteEndpointConfig, ListEndpointConfigs, CreateEndpoint, UpdateEndpoint, "
    "UpdateEndpointWeightsAndCapacities, DescribeModel, CreateModel, DeleteModel, ListModels, "
    "iam:PassRole on the execution role, and "
    "cloudwatch:GetMetricStatistics"
)
WITHOUT = "use --target docker to deploy without AWS"
SETTLED = "InService"
# Statuses an endpoint does not leave by itself: waiting on them is pointless.
BROKEN = ("Failed", "OutOfService", "UpdateRollbackFailed")


@dataclass(frozen=True)
class State:
    """What the endpoint is now, as DescribeEndpoint and DescribeEndpointConfig tell it."""

    status: str
    config: str  # the endpoint config's name
    production: dict[str, dict[str, Any]]  # variant name → its ProductionVariant in the config
    shadow: dict[str, dict[str, Any]]  # variant name → its ShadowProductionVariants entry
    weights: dict[str, float] = field(default_factory=dict)  # variant → weight now serving


class SageMakerEndpoint:
    """One endpoint's AWS calls."""

    def __init__(
        self,
        name: str,
        *,
        role: str,
        instance_type: str,
        instance_count: int,
        wait_seconds: float,
        poll_seconds: float,
    ) -> None:
        self.name = name
        self.role = role
        self.instance_type = instance_type
        self.instance_count = instance_count
        self.wait_seconds = wait_seconds
        self.poll_seconds = poll_seconds
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            from steps.services import aws

            self._clients[service] = aws.client(
                service,
                read_timeout=30,
                attempts=3,
                no_region=f"SageMaker endpoint {self.name}: no AWS region is set. Set "
                "AWS_REGION (or AWS_DEFAULT_REGION, or a region in the AWS profile) to the "
                "endpoint's region.",
            )
        return self._clients[service]

    def call(self, doing: str, operation: str, *, absent: bool = False, **kwargs: Any) -> Any:
        from steps.services.sagemaker import call

        return call(
            self.client("sagemaker"), doing, operation, absent=absent,
            permissions=PERMISSIONS, without=WITHOUT, **kwargs,
        )  # fmt: skip

    def state(self) -> State | None:
        from steps.services.sagemaker import Absent

        try:
            found = self.call(
                f"reading endpoint {self.name}", "describe_endpoint", absent=True,
                EndpointName=self.name,
            )  # fmt: skip
        except Absent:
            return None
        name = str(found.get("EndpointConfigName", ""))
        config = self.call(
            f"reading endpoint config {name} of endpoint {self.name}",
            "describe_endpoint_config",
            EndpointConfigName=name,
        )
        production = {v["VariantName"]: v for v in config.get("ProductionVariants", [])}
        # Where the endpoint reports no weight (a variant just made), its config's is serving.
        weights = {n: float(v.get("InitialVariantWeight", 1.0)) for n, v in production.items()}
        for variant in found.get("ProductionVariants", []):
            weight = variant.get("CurrentWeight", variant.get("DesiredWeight"))
            if weight is not None and variant.get("VariantName") in weights:
                weights[variant["VariantName"]] = float(weight)
        return State(
            status=str(found.get("EndpointStatus", "")),
            config=name,
            production=production,
            shadow={v["VariantName"]: v for v in config.get("ShadowProductionVariants", [])},
            weights=weights,
        )

    def settled(self, doing: str) -> State:
        """The endpoint once it is InService, waiting at most wait_seconds."""
        deadline = time.monotonic() + self.wait_seconds
        while True:
            state = self.state()
            if state is None:
                raise StepFailed(
                    f"SageMaker endpoint {self.name} disappeared while {doing}: it was "
                    "deleted outside mlsteps. Run deploy again to make it anew."
                )
            if state.status == SETTLED:
                return state
            if state.status in BROKEN:
                reason = self.call(
                    f"reading endpoint {self.name}", "describe_endpoint",
                    EndpointName=self.name,
                ).get("FailureReason", "no reason given")  # fmt: skip
                raise StepFailed(
                    f"SageMaker endpoint {self.name} is {state.status} while {doing}: "
                    f"{reason}. Look at the endpoint's CloudWatch logs, fix the cause, and "
                    "delete the endpoint or update it to a working config before deploying again."
                )
            if time.monotonic() >= deadline:
                raise StepFailed(
                    f"SageMaker endpoint {self.name} is still {state.status} after "
                    f"{self.wait_seconds:.0f} s while {doing}. SageMaker may still finish: check "
                    f"it (aws sagemaker describe-endpoint --endpoint-name {self.name}) and run "
                    "deploy again (it resumes), or allow the target a longer wait."
                )
            time.sleep(self.poll_seconds)

    # ----- models and configs ------------------------------------------------------------------

    def model(self, ref: str) -> str:
        """The SageMaker model serving `ref`: an image (anything with a '/') or a model name."""
        from steps.services.sagemaker import Absent

        if "/" not in ref:
            if not is_sagemaker_name(ref):
                raise ConfigError(
                    f"{ref!r} is neither an image (registry/repository:tag) nor a SageMaker "
                    "model name. Give the image `mlsteps package` pushed, or a model's name."
                )
            try:
                self.call(f"reading model {ref}", "describe_model", absent=True, ModelName=ref)
            except Absent:
                raise ConfigError(
                    f"no SageMaker model named {ref} in this account and region. Give the "
                    "image `mlsteps package` pushed (a model is made from it), or create the "
                    "model first, or check AWS_REGION and the account of the credentials."
                ) from None
            return ref
        name = self.ours(ref, "m")
        try:
            found = self.call(
                f"reading model {name}", "describe_model", absent=True, ModelName=name
            )
        except Absent:
            found = None
        if found is not None:
            image = found.get("PrimaryContainer", {}).get("Image")
            if image != ref:  # a name taken by another image: never serve that one
                raise StepFailed(
                    f"SageMaker model {name} exists and serves image {image}, not {ref}. "
                    "Delete that model (aws sagemaker delete-model) and deploy again."
                )
            return name
        if not self.role:
            raise ConfigError(
                f"a SageMaker model is made from image {ref} and needs an execution role: give "
                "the role's ARN (one SageMaker may assume, with read access to the image's ECR "
                "repository), or give an existing model's name instead of the image."
            )
        self.call(
            f"creating model {name} from image {ref}",
            "create_model",
            invalid="SageMaker serves images from ECR with an execution role it may assume: "
            "check the image and the role.",
            ModelName=name,
            PrimaryContainer={"Image": ref},
            ExecutionRoleArn=self.role,
            Tags=[{"Key": "mlsteps:image", "Value": ref[:256]}],
        )
        return name

    def ours(self, name: str, kind: str) -> str:
        """The name mlsteps gives a model ("m") or an endpoint config ("c") made of `name`."""
        return f"{self.name[:46]}-{kind}{hashlib.sha256(name.encode()).hexdigest()[:14]}"

    def made_by_us(self, name: str, kind: str) -> bool:
        """Only what mlsteps made is deleted: a model or config of the user's stays."""
        return (
            re.fullmatch(re.escape(f"{self.name[:46]}-{kind}") + "[0-9a-f]{14}", name) is not None
        )

    def variant(
        self, like: Mapping[str, Any] | None, name: str, model: str, weight: float
    ) -> dict[str, Any]:
        """A ProductionVariant: `like`'s instances (the champion's), or the target's own."""
        spec: dict[str, Any] = dict(like) if like else {
            "InstanceType": self.instance_type,
            "InitialInstanceCount": self.instance_count,
        }  # fmt: skip
        spec.update(VariantName=name, ModelName=model, InitialVariantWeight=weight)
        return spec

    def apply(
        self,
        production: list[dict[str, Any]],
        shadow: list[dict[str, Any]],
        doing: str,
    ) -> State:
        """The endpoint serving a config of these variants: made (or found, after a crash),
        the endpoint updated to it and InService on it; the config it replaced deleted."""
        from steps.services.sagemaker import Absent

        content = {"production": production, "shadow": shadow}
        name = self.ours(json.dumps(content, sort_keys=True), "c")
        config: dict[str, Any] = {"EndpointConfigName": name, "ProductionVariants": production}
        if shadow:
            config["ShadowProductionVariants"] = shadow
        try:
            self.call(
                f"reading endpoint config {name}", "describe_endpoint_config", absent=True,
                EndpointConfigName=name,
            )  # fmt: skip
        except Absent:
            self.call(
                f"creating endpoint config {name} ({doing})", "create_endpoint_config", **config
            )
            self._readable(name)
        state = self.state()
        if state is None:
            self.call(
                f"creating endpoint {self.name} ({doing})",
                "create_endpoint",
                EndpointName=self.name,
                EndpointConfigName=name,
            )
            return self.settled(doing)
        state = self.settled(doing)  # SageMaker refuses to update an endpoint that is updating
        old = state.config
        if old != name:
            self.call(
                f"updating endpoint {self.name} to config {name} ({doing})",
                "update_endpoint",
                EndpointName=self.name,
                EndpointConfigName=name,
                RetainAllVariantProperties=False,
            )
            state = self.settled(doing)
            if state.config != name:
                raise StepFailed(
                    f"SageMaker rolled endpoint {self.name} back to config {state.config} "
                    f"while {doing}: the new variant did not become healthy. Look at its "
                    "CloudWatch logs (/aws/sagemaker/Endpoints/"
                    f"{self.name}); the endpoint serves as before."
                )
        self.sweep(state)
        return state

    def _readable(self, config: str, tries: int = 10) -> None:
        """Wait until a config just made can be read: SageMaker reads configs eventually
        consistently, and CreateEndpoint or UpdateEndpoint right after CreateEndpointConfig may
        not find it (AWS's advice: DescribeEndpointConfig first)."""
        from steps.services.sagemaker import Absent

        for _ in range(tries):
            try:
                self.call(
                    f"reading endpoint config {config}", "describe_endpoint_config", absent=True,
                    EndpointConfigName=config,
                )  # fmt: skip
                return
            except Absent:
                time.sleep(min(self.poll_seconds, 1.0))
        raise StepFailed(
            f"SageMaker does not find endpoint config {config}, made moments ago. Run deploy "
            "again: it finds the config when SageMaker does."
        )

    def sweep(self, state: State) -> None:
        """Delete the endpoint configs and models mlsteps made for this endpoint that it no
        longer serves: those a switch replaced, and those a crash or a lost answer left behind.
        What the user made stays. A failed delete leaves a record that costs nothing (a config
        or model is no instance): the next sweep tries again."""
        serving = {v.get("ModelName") for v in [*state.production.values(), *state.shadow.values()]}
        for kind, operation, listed, key in (
            ("c", "list_endpoint_configs", "EndpointConfigs", "EndpointConfigName"),
            ("m", "list_models", "Models", "ModelName"),
        ):
            found: list[str] = []
            with contextlib.suppress(StepFailed, ConfigError):
                token: dict[str, Any] = {}
                while True:
                    page = self.call(
                        f"listing the {listed} of endpoint {self.name}", operation,
                        NameContains=f"{self.name[:46]}-{kind}", **token,
                    )  # fmt: skip
                    found += [str(item.get(key, "")) for item in page.get(listed, [])]
                    if not page.get("NextToken"):
                        break
                    token = {"NextToken": str(page["NextToken"])}
            for name in found:
                if not self.made_by_us(name, kind) or name in (state.config, *serving):
                    continue
                delete = "delete_endpoint_config" if kind == "c" else "delete_model"
                named: dict[str, Any] = {key: name}
                with contextlib.suppress(StepFailed, ConfigError):
                    self.call(f"deleting {name}", delete, **named)
