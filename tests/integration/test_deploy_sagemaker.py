"""deploy's sagemaker target against moto's SageMaker and CloudWatch (an AWS emulator, the
closest to SageMaker endpoints that runs here).

moto 5 has no UpdateEndpoint and drops an endpoint config's ShadowProductionVariants: the moto
server of this module adds both (MOTO_ENDPOINT_UPDATES, about twenty lines on moto's own
endpoint objects: the endpoint switches to the named config, the config keeps its shadow
variants), and nothing else. SageMaker publishes a variant's metrics; moto publishes none: the
tests write the per-variant metrics SageMaker would (namespace AWS/SageMaker, dimensions
EndpointName and VariantName, one datapoint a minute) into moto's CloudWatch, and the target
reads them as it reads AWS's. moto computes no percentiles, so here latency is no data
(tests/unit/deploy/test_sagemaker_target.py reads quartiles from a stubbed answer).

Every call the target makes here is recorded and its parameters checked against botocore's
service model, more strictly than botocore does before sending (patterns, maxima, enums).
"""

from __future__ import annotations

import math
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import regex  # type: ignore[import-untyped]

from steps.core.errors import ConfigError, StepFailed
from steps.deploy.observations import CANDIDATE, CHAMPION, Summary
from steps.deploy.targets.sagemaker import SageMakerTarget
from tests.services import MotoServer, Server, free_port, http_ok

pytestmark = pytest.mark.services

ROLE = "arn:aws:iam::123456789012:role/sagemaker-execution"
MOTO_ENDPOINT_UPDATES = """
import sys

from moto.core.responses import ActionResult
from moto.sagemaker import responses
from moto.sagemaker.exceptions import ValidationError


def update_endpoint(self):
    backend = self.sagemaker_backend
    name = self._get_param("EndpointName")
    endpoint = backend.endpoints.get(name)
    if endpoint is None:
        raise ValidationError(message=f"Could not find endpoint '{name}'.")
    config_name = self._get_param("EndpointConfigName")
    config = backend.describe_endpoint_config(config_name)
    endpoint.endpoint_config_name = config_name
    endpoint.production_variants = endpoint._process_production_variants(
        config["ProductionVariants"]
    )
    return ActionResult({"EndpointArn": endpoint.arn})


create_endpoint_config = responses.SageMakerResponse.create_endpoint_config


def create_endpoint_config_with_shadow(self):
    made = create_endpoint_config(self)
    shadow = self._get_param("ShadowProductionVariants")
    if shadow:
        name = self._get_param("EndpointConfigName")
        self.sagemaker_backend.endpoint_configs[name].shadow_production_variants = shadow
    return made


responses.SageMakerResponse.update_endpoint = update_endpoint
responses.SageMakerResponse.create_endpoint_config = create_endpoint_config_with_shadow

from moto.server import main

main(sys.argv[1:])
"""


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    root = tmp_path_factory.mktemp("moto-endpoints")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = Server.start(
        "moto_server (with UpdateEndpoint)",
        [sys.executable, "-c", MOTO_ENDPOINT_UPDATES, "-H", "127.0.0.1", "-p", str(port)],
        root / "moto.log",
        cwd=root,
        env={"MOTO_ACCOUNT_ID": "123456789012"},
    )
    server.wait_until(lambda: http_ok(f"{url}/moto-api/data.json"), 60)
    yield MotoServer(url=url, account_id="123456789012", server=server)
    server.stop()


class Calls:
    """Every call the target's clients make: operation model and parameters."""

    def __init__(self) -> None:
        self.made: list[tuple[Any, dict[str, Any]]] = []

    def record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.made.append((model, dict(params)))

    def names(self) -> list[str]:
        return [model.name for model, _ in self.made]


def recording(target: SageMakerTarget, calls: Calls) -> SageMakerTarget:
    for service in ("sagemaker", "cloudwatch"):
        client = target.sm.client(service)
        client.meta.events.register(f"provide-client-params.{service}", calls.record)
    return target


@pytest.fixture()
def aws(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    """boto3's environment pointed at this module's moto; a boto3 session for the test's own
    calls (the metrics SageMaker would publish, and what the endpoint is)."""
    import boto3

    for key, value in moto.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return boto3.session.Session(region_name=moto.region)


@pytest.fixture()
def calls() -> Calls:
    return Calls()


def new_target(calls: Calls, **options: Any) -> SageMakerTarget:
    name = f"it-deploy-{uuid.uuid4().hex[:8]}"
    options = {
        "role": ROLE,
        "wait_seconds": 5.0,
        "poll_seconds": 0.1,
        "metrics_delay": 0.0,
        **options,
    }
    return recording(SageMakerTarget(name, **options), calls)


def image(tag: str) -> str:
    return f"123456789012.dkr.ecr.us-east-1.amazonaws.com/churn:{tag}"


def minute_ago(minutes: int) -> float:
    return math.floor(time.time() / 60) * 60 - 60 * minutes


def publish(
    aws: Any,
    endpoint: str,
    variant: str,
    at: float,
    *,
    requests: int,
    errors: int,
    latency_us: float | None = 20000.0,
    four: int = 0,
) -> None:
    """One minute of a variant's metrics as SageMaker publishes them."""
    dims = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]
    stamp = datetime.fromtimestamp(at, timezone.utc)
    data: list[dict[str, Any]] = [
        {
            "MetricName": name,
            "Dimensions": dims,
            "Timestamp": stamp,
            "Value": float(value),
            "Unit": "None",
        }
        for name, value in (
            ("Invocations", requests),
            ("Invocation5XXErrors", errors),
            ("Invocation4XXErrors", four),
        )
    ]
    if latency_us is not None:
        data.append(
            {
                "MetricName": "ModelLatency",
                "Dimensions": dims,
                "Timestamp": stamp,
                "StatisticValues": {
                    "SampleCount": float(requests),
                    "Sum": requests * latency_us,
                    "Minimum": latency_us / 2,
                    "Maximum": latency_us * 3,
                },
                "Unit": "Microseconds",
            }
        )
    aws.client("cloudwatch").put_metric_data(Namespace="AWS/SageMaker", MetricData=data)


def described(aws: Any, endpoint: str) -> tuple[dict[str, Any], dict[str, Any]]:
    client = aws.client("sagemaker")
    found = client.describe_endpoint(EndpointName=endpoint)
    return found, client.describe_endpoint_config(EndpointConfigName=found["EndpointConfigName"])


def weights(aws: Any, endpoint: str) -> dict[str, float]:
    found, _ = described(aws, endpoint)
    return {v["VariantName"]: v.get("CurrentWeight", 0.0) for v in found["ProductionVariants"]}


def configs(aws: Any, endpoint: str) -> list[str]:
    found = aws.client("sagemaker").list_endpoint_configs(NameContains=endpoint)["EndpointConfigs"]
    return sorted(
        c["EndpointConfigName"] for c in found if c["EndpointConfigName"].startswith(endpoint)
    )


def models(aws: Any, endpoint: str) -> list[str]:
    found = aws.client("sagemaker").list_models(NameContains=endpoint)["Models"]
    return sorted(
        m["ModelName"] for m in found if m["ModelName"].startswith(endpoint)
    )  # moto: no NameContains


# ----- rollouts ----------------------------------------------------------------------------------


def test_a_good_canary_goes_to_100_and_the_candidate_becomes_the_champion_on_moto(
    aws: Any, calls: Calls
) -> None:
    target = new_target(calls)
    name = target.endpoint
    assert target.current() is None
    first = target.ensure_champion(image("v1"))
    assert first.candidate == "" and first.candidate_weight == 0 and not first.mirror
    assert (
        first.url
        == f"https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/{name}/invocations"
    )
    (champion_model,) = models(aws, name)
    assert first.champion == champion_model
    assert aws.client("sagemaker").describe_model(ModelName=champion_model)["PrimaryContainer"][
        "Image"
    ] == image("v1")
    # Again (a resumed run): the endpoint is left as it is, nothing made twice.
    assert target.ensure_champion(image("v1")) == first
    assert len(configs(aws, name)) == 1 and len(models(aws, name)) == 1

    target.start_candidate(image("v2"), capture=False)
    target.start_candidate(image("v2"), capture=False)  # resumed: nothing new
    _, config = described(aws, name)
    assert [v["VariantName"] for v in config["ProductionVariants"]] == ["champion", "candidate"]
    assert [v["InitialVariantWeight"] for v in config["ProductionVariants"]] == [1.0, 0.0]
    assert (
        config["ProductionVariants"][0]["InstanceType"]
        == config["ProductionVariants"][1]["InstanceType"]
    )
    assert len(configs(aws, name)) == 1  # the champion-only config, replaced, is deleted
    candidate_model = [m for m in models(aws, name) if m != champion_model][0]
    assert target.current() == type(first)(first.url, champion_model, candidate_model, 0, False)

    t0 = minute_ago(8)
    cursor: dict[str, object] = {"until": t0}
    for step, percent in enumerate((5, 25, 50)):
        target.set_weights(percent)
        assert weights(aws, name) == {"champion": 100 - percent, "candidate": percent}
        assert target.current().candidate_weight == percent  # type: ignore[union-attr]
        at = t0 + 60 * step
        publish(aws, name, "champion", at, requests=600 - 6 * percent, errors=1)
        publish(aws, name, "candidate", at, requests=6 * percent, errors=0, four=2)
    seen, cursor = target.observe(cursor)
    assert seen.source_error == "" and seen.requests == [] and seen.pairs == []
    assert cursor == {"until": minute_ago(0)}
    assert seen.summaries == [
        Summary(t0 + 60 * step, 60, variant, requests, failed, four, None, None)
        for step, percent in enumerate((5, 25, 50))
        for variant, requests, failed, four in (
            (CANDIDATE, 6 * percent, 0, 2),
            (CHAMPION, 600 - 6 * percent, 1, 0),
        )
    ]
    again, same = target.observe(cursor)  # each minute is read once
    assert again.summaries == [] and same == cursor

    done = target.finish()
    assert (done.champion, done.candidate, done.candidate_weight) == (candidate_model, "", 0)
    found, config = described(aws, name)
    assert [(v["VariantName"], v["ModelName"]) for v in config["ProductionVariants"]] == [
        ("champion", candidate_model)
    ]
    assert found["EndpointStatus"] == "InService"
    assert models(aws, name) == [
        candidate_model
    ]  # the old champion's model, made by mlsteps, is gone
    assert len(configs(aws, name)) == 1
    assert target.finish() == done  # resumed after it finished: nothing moves
    # The weights reached 100% on the candidate before the config without the old champion.
    moves = [
        p
        for m, p in calls.made
        if m.name in ("UpdateEndpointWeightsAndCapacities", "UpdateEndpoint")
    ]
    assert moves[-2]["DesiredWeightsAndCapacities"] == [
        {"VariantName": "champion", "DesiredWeight": 0.0},
        {"VariantName": "candidate", "DesiredWeight": 100.0},
    ]
    assert "EndpointConfigName" in moves[-1]


def test_a_candidate_failing_10_percent_shows_its_5xx_and_rolls_back_champion_first_on_moto(
    aws: Any, calls: Calls
) -> None:
    target = new_target(calls)
    name = target.endpoint
    target.ensure_champion(image("v1"))
    (champion_model,) = models(aws, name)
    target.start_candidate(image("v3"), capture=True)
    target.set_weights(25)
    t0 = minute_ago(5)
    for i in range(3):
        publish(aws, name, "champion", t0 + 60 * i, requests=300, errors=0)
        publish(aws, name, "candidate", t0 + 60 * i, requests=100, errors=10)
    seen, _ = target.observe({"until": t0})
    failed = {(s.variant, s.start): (s.requests, s.failed) for s in seen.summaries}
    assert failed == {
        **{(CANDIDATE, t0 + 60 * i): (100, 10) for i in range(3)},
        **{(CHAMPION, t0 + 60 * i): (300, 0) for i in range(3)},
    }

    before = len(calls.made)
    back = target.remove_candidate()
    assert (back.champion, back.candidate, back.candidate_weight, back.mirror) == (
        champion_model,
        "",
        0,
        False,
    )
    moves = [
        (m.name, p)
        for m, p in calls.made[before:]
        if m.name in ("UpdateEndpointWeightsAndCapacities", "UpdateEndpoint")
    ]
    assert [m for m, _ in moves] == [
        "UpdateEndpointWeightsAndCapacities",
        "UpdateEndpoint",
    ]  # weights first
    assert moves[0][1]["DesiredWeightsAndCapacities"] == [
        {"VariantName": "champion", "DesiredWeight": 100.0},
        {"VariantName": "candidate", "DesiredWeight": 0.0},
    ]
    _, config = described(aws, name)
    assert [(v["VariantName"], v["ModelName"]) for v in config["ProductionVariants"]] == [
        ("champion", champion_model)
    ]
    assert models(aws, name) == [champion_model] and len(configs(aws, name)) == 1
    assert target.remove_candidate() == back  # idempotent
    assert target.current() == back


def test_minutes_without_metrics_are_no_data_never_zeros_on_moto(aws: Any, calls: Calls) -> None:
    target = new_target(calls)
    name = target.endpoint
    target.ensure_champion(image("v1"))
    target.start_candidate(image("v4"), capture=False)
    target.set_weights(50)
    t0 = minute_ago(6)
    nothing, cursor = target.observe({"until": t0})
    assert (
        nothing.summaries == []
        and nothing.source_error == ""
        and cursor == {"until": minute_ago(0)}
    )

    publish(aws, name, "champion", t0, requests=50, errors=0)  # the candidate: silent
    dims = [{"Name": "EndpointName", "Value": name}, {"Name": "VariantName", "Value": "candidate"}]
    aws.client("cloudwatch").put_metric_data(  # requests, but no 5xx count: failures unknown
        Namespace="AWS/SageMaker",
        MetricData=[
            {
                "MetricName": "Invocations",
                "Dimensions": dims,
                "Timestamp": datetime.fromtimestamp(t0 + 60, timezone.utc),
                "Value": 40.0,
            }
        ],
    )
    publish(aws, name, "candidate", t0 + 120, requests=0, errors=0)  # a minute with no requests
    seen, _ = target.observe({"until": t0})
    assert [(s.variant, s.start, s.requests) for s in seen.summaries] == [(CHAMPION, t0, 50)]


def test_shadow_is_a_shadow_variant_and_back_on_moto(aws: Any, calls: Calls) -> None:
    target = new_target(calls)
    name = target.endpoint
    target.ensure_champion(image("v1"))
    target.start_candidate(image("v5"), capture=False)
    target.set_weights(0, mirror=True)
    _, config = described(aws, name)
    assert [v["VariantName"] for v in config["ProductionVariants"]] == ["champion"]
    assert [
        (v["VariantName"], v["InitialVariantWeight"]) for v in config["ShadowProductionVariants"]
    ] == [("candidate", 1.0)]
    now = target.current()
    assert now is not None and now.mirror and now.candidate_weight == 0 and now.candidate
    target.set_weights(0, mirror=True)  # again: nothing moves
    assert len(configs(aws, name)) == 1
    target.set_weights(25)  # out of the shadow: a production variant at 25%
    _, config = described(aws, name)
    assert "ShadowProductionVariants" not in config
    assert [
        (v["VariantName"], v["InitialVariantWeight"]) for v in config["ProductionVariants"]
    ] == [("champion", 75.0), ("candidate", 25.0)]
    target.set_weights(0, mirror=True)
    back = target.remove_candidate()
    _, config = described(aws, name)
    assert back.candidate == "" and not back.mirror and "ShadowProductionVariants" not in config
    # A shadow serves nobody: no weight change before its config goes.
    assert calls.names().count("UpdateEndpointWeightsAndCapacities") == 0


@pytest.mark.parametrize("when", ["before-call", "after-call"])
def test_a_connection_lost_around_update_endpoint_then_a_rerun_makes_nothing_twice_on_moto(
    when: str, aws: Any, calls: Calls
) -> None:
    """Fault injection (moto cannot drop one call's connection): UpdateEndpoint's connection
    drops before the call is sent, or after moto applied it and before the answer came back.
    start_candidate fails as a step failure; run again (as a resumed deploy does), the endpoint
    ends on the one two-variant config, and no config or model is made twice."""
    from botocore.exceptions import ConnectionClosedError

    target = new_target(calls)
    name = target.endpoint
    target.ensure_champion(image("v1"))
    dropped: list[str] = []

    def drop(**_: Any) -> None:
        if not dropped:
            dropped.append(when)
            raise ConnectionClosedError(endpoint_url="http://sagemaker.test")

    client = target.sm.client("sagemaker")
    client.meta.events.register(f"{when}.sagemaker.UpdateEndpoint", drop)
    with pytest.raises(StepFailed, match="cannot reach SageMaker .updating endpoint"):
        target.start_candidate(image("v2"), capture=False)
    assert dropped == [when]
    target.start_candidate(image("v2"), capture=False)
    _, config = described(aws, name)
    assert [v["VariantName"] for v in config["ProductionVariants"]] == ["champion", "candidate"]
    assert configs(aws, name) == [config["EndpointConfigName"]] and len(models(aws, name)) == 2
    assert calls.names().count("CreateEndpointConfig") == 2  # the champion's, the candidate's
    assert calls.names().count("CreateModel") == 2
    assert calls.names().count("UpdateEndpoint") == (2 if when == "before-call" else 1)


# ----- failures ----------------------------------------------------------------------------------


def test_a_missing_endpoint_and_no_champion_is_exit_2_and_nothing_is_made_on_moto(
    aws: Any, calls: Calls
) -> None:
    target = new_target(calls)
    with pytest.raises(ConfigError) as raised:
        target.ensure_champion(None)
    assert (
        f"SageMaker endpoint {target.endpoint} does not exist and no champion is given"
        in raised.value.message
    )
    assert models(aws, target.endpoint) == [] and configs(aws, target.endpoint) == []
    assert target.remove_candidate().champion == ""  # a rollback of nothing is no error
    with pytest.raises(StepFailed, match="disappeared while moving traffic.*Run deploy again"):
        target.set_weights(10)


def test_an_endpoint_without_the_champion_variant_is_exit_2_naming_it_on_moto(
    aws: Any, calls: Calls
) -> None:
    target = new_target(calls)
    name = target.endpoint
    client = aws.client("sagemaker")
    client.create_model(
        ModelName=f"{name}-own", PrimaryContainer={"Image": image("v0")}, ExecutionRoleArn=ROLE
    )
    variant = {
        "VariantName": "blue",
        "ModelName": f"{name}-own",
        "InstanceType": "ml.m5.large",
        "InitialInstanceCount": 1,
        "InitialVariantWeight": 1.0,
    }
    client.create_endpoint_config(EndpointConfigName=f"{name}-own", ProductionVariants=[variant])
    client.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-own")
    for act in (
        lambda: target.ensure_champion(image("v1")),
        lambda: target.start_candidate(image("v2"), capture=False),
    ):
        with pytest.raises(ConfigError) as raised:
            act()
        assert "has no production variant named 'champion' (it has: blue)" in raised.value.message
    assert configs(aws, name) == [f"{name}-own"] and models(aws, name) == [f"{name}-own"]
    # With the variant named, the user's own config and model serve as champion and stay.
    own = new_target(calls, champion_variant="blue")
    own.endpoint = own.sm.name = name
    own.start_candidate(image("v2"), capture=False)
    own.remove_candidate()
    assert f"{name}-own" in configs(aws, name) and f"{name}-own" in models(aws, name)


def test_bad_candidates_are_exit_2_with_the_fix_on_moto(aws: Any, calls: Calls) -> None:
    target = new_target(calls)
    target.ensure_champion(image("v1"))
    with pytest.raises(ConfigError, match="no SageMaker model named no-such-model in this account"):
        target.start_candidate("no-such-model", capture=False)
    with pytest.raises(ConfigError, match="neither an image .* nor a SageMaker model name"):
        target.start_candidate("bad name;rm", capture=False)
    roleless = new_target(calls, role="")
    roleless.endpoint = roleless.sm.name = target.endpoint
    with pytest.raises(ConfigError, match="needs an execution role"):
        roleless.start_candidate(image("v9"), capture=False)
    assert len(models(aws, target.endpoint)) == 1
    _, config = described(aws, target.endpoint)
    assert [v["VariantName"] for v in config["ProductionVariants"]] == ["champion"]
    with pytest.raises(ConfigError, match="not a SageMaker name"):
        SageMakerTarget("bad_name")
    with pytest.raises(ConfigError, match="both named 'x'"):
        SageMakerTarget("ok", champion_variant="x", candidate_variant="x")


def test_moto_down_is_a_step_failure_and_an_inconclusive_look_on_moto(
    calls: Calls, monkeypatch: pytest.MonkeyPatch, aws: Any
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    target = new_target(calls)
    with pytest.raises(StepFailed) as raised:
        target.current()
    assert raised.value.message.startswith(
        f"cannot reach SageMaker (reading endpoint {target.endpoint})"
    )
    assert "AWS_ENDPOINT_URL(_SAGEMAKER)" in raised.value.message
    cursor = {"until": minute_ago(3)}
    seen, after = target.observe(cursor)
    assert after == cursor  # read again at the next look
    assert seen.summaries == [] and seen.source_error.startswith(
        "cannot reach CloudWatch (reading Invocations of variant champion"
    )
    assert "testing" not in seen.source_error  # moto's keys


# ----- every call's parameters against botocore's service model ----------------------------------


def violations(value: Any, shape: Any, where: str) -> list[str]:
    """What botocore's ParamValidator leaves out: string patterns and maximum lengths, enums,
    numbers' maxima, lists' maximum lengths."""
    meta = shape.metadata
    found: list[str] = []
    if shape.type_name == "structure":
        for key, item in value.items():
            found += violations(item, shape.members[key], f"{where}.{key}")
    elif shape.type_name == "list":
        if "max" in meta and len(value) > meta["max"]:
            found.append(f"{where}: {len(value)} items > {meta['max']}")
        for i, item in enumerate(value):
            found += violations(item, shape.member, f"{where}[{i}]")
    elif shape.type_name == "string":
        if "max" in meta and len(value) > meta["max"]:
            found.append(f"{where}: {len(value)} characters > {meta['max']}")
        # AWS's patterns use classes such as \p{L}, which `re` lacks and `regex` (installed
        # with moto[server], through cfn-lint) has.
        if "pattern" in meta and not regex.fullmatch(meta["pattern"], value):
            found.append(f"{where}: {value!r} does not match {meta['pattern']}")
        if shape.enum and value not in shape.enum:
            found.append(f"{where}: {value!r} not in {shape.enum}")
    elif (
        shape.type_name in ("integer", "long", "float", "double")
        and "max" in meta
        and value > meta["max"]
    ):
        found.append(f"{where}: {value} > {meta['max']}")
    return found


def test_every_call_the_target_makes_fits_botocores_service_model_on_moto(
    aws: Any, calls: Calls
) -> None:
    """A whole rollout, a shadow, a rollback and the looks, recorded; each call's parameters
    validated by botocore's ParamValidator and checked for what it leaves out."""
    from botocore.validate import ParamValidator

    target = new_target(calls)
    target.ensure_champion(image("v1"))
    target.start_candidate(image("v2"), capture=False)
    target.set_weights(0, mirror=True)
    target.set_weights(10)
    target.observe({"until": minute_ago(2)})
    target.remove_candidate()
    target.start_candidate(image("v3"), capture=False)
    target.set_weights(100)
    target.finish()

    made = {model.name for model, _ in calls.made}
    assert made == {
        "DescribeEndpoint", "DescribeEndpointConfig", "CreateEndpointConfig", "CreateEndpoint",
        "UpdateEndpoint", "UpdateEndpointWeightsAndCapacities", "DeleteEndpointConfig",
        "DescribeModel", "CreateModel", "DeleteModel", "ListEndpointConfigs", "ListModels",
        "GetMetricStatistics",
    }  # fmt: skip
    for model, params in calls.made:
        report = ParamValidator().validate(params, model.input_shape)
        assert not report.has_errors(), f"{model.name}: {report.generate_report()}"
        assert violations(params, model.input_shape, model.name) == []


def test_the_strict_check_finds_what_botocore_lets_pass() -> None:
    """violations() above can fail: a name over 63 characters and a bad pattern, which
    botocore's own validation does not check."""
    import botocore.session
    from botocore.validate import ParamValidator

    model = (
        botocore.session.get_session()
        .get_service_model("sagemaker")
        .operation_model("CreateEndpoint")
    )
    params = {"EndpointName": "x" * 64, "EndpointConfigName": "bad_name"}
    assert not ParamValidator().validate(params, model.input_shape).has_errors()
    found = violations(params, model.input_shape, "CreateEndpoint")
    assert (
        len(found) == 3
        and "64 characters > 63" in found[0]
        and "'bad_name' does not match" in found[-1]
    )
