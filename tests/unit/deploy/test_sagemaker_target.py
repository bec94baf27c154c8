"""The sagemaker target's answers to what moto cannot show (tests/integration/
test_deploy_sagemaker.py runs the same paths against moto): CloudWatch's latency quartiles,
an endpoint that stays Updating, one that fails, and an update SageMaker rolls back. AWS's
answers are given by botocore's Stubber, which checks each request's parameters and each
answer's shape against the service model; nothing leaves the process.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from botocore.stub import ANY

from steps.core.errors import StepFailed
from steps.deploy.observations import CANDIDATE, CHAMPION
from steps.deploy.targets import sagemaker_metrics
from steps.deploy.targets.sagemaker import SageMakerTarget
from steps.deploy.targets.sagemaker_metrics import Z75, fit, lognormal

T0 = 1_800_000_000.0  # a whole minute


def stubbed(service: str) -> tuple[Any, Any]:
    import boto3
    from botocore.stub import Stubber

    client = boto3.client(
        service, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    )
    return client, Stubber(client)


# ----- the lognormal fit -------------------------------------------------------------------------


def test_lognormal_recovers_mu_and_sigma_from_the_quartiles() -> None:
    mu, s = -3.0, 0.5
    p25, p50, p75 = (math.exp(mu + z * s) for z in (-Z75, 0.0, Z75))
    got_mu, got_var = lognormal(p25, p50, p75, None)
    assert got_mu == pytest.approx(mu) and got_var == pytest.approx(s * s)


def test_lognormal_takes_sigma_from_the_mean_when_the_quartiles_coincide() -> None:
    mu, s = math.log(0.02), 0.3
    mean = math.exp(mu + s * s / 2)
    assert lognormal(0.02, 0.02, 0.02, mean) == pytest.approx((mu, s * s))
    assert lognormal(0.02, 0.02, 0.02, 0.019) == pytest.approx((mu, 0.0))
    assert lognormal(0.02, 0.02, 0.02, None) == pytest.approx((mu, 0.0))


def test_fit_reads_microseconds_and_gives_no_latency_without_all_three_quartiles() -> None:
    point = {
        "Average": 25000.0,
        "ExtendedStatistics": {"p25": 15000.0, "p50": 20000.0, "p75": 30000.0},
    }
    got = fit(point)
    assert got["log_latency_mean"] == pytest.approx(math.log(0.02))
    assert got["log_latency_var"] == pytest.approx((math.log(0.03 / 0.015) / (2 * Z75)) ** 2)
    for broken in (
        None,
        {"Average": 25000.0},  # moto's answer: no percentiles
        {"Average": 25000.0, "ExtendedStatistics": {"p25": 15000.0, "p50": 20000.0}},
        {"ExtendedStatistics": {"p25": 0.0, "p50": 20000.0, "p75": 30000.0}},
    ):
        assert fit(broken) == {"log_latency_mean": None, "log_latency_var": None}


# ----- CloudWatch's answer with quartiles --------------------------------------------------------


def test_a_look_turns_cloudwatchs_per_variant_answers_into_summaries_with_latency() -> None:
    client, stub = stubbed("cloudwatch")
    stamp = datetime.fromtimestamp(T0, timezone.utc)
    start, end = stamp, datetime.fromtimestamp(T0 + 120, timezone.utc)
    answers = {
        "Invocations": {"Sum": 200.0},
        "Invocation5XXErrors": {"Sum": 3.0},
        "Invocation4XXErrors": {"Sum": 1.0},
    }
    for variant in ("blue", "green"):
        dims = [
            {"Name": "EndpointName", "Value": "ep"},
            {"Name": "VariantName", "Value": variant},
        ]
        common = {
            "Namespace": "AWS/SageMaker", "Dimensions": dims, "StartTime": start,
            "EndTime": end, "Period": 60,
        }  # fmt: skip
        for metric, value in answers.items():
            stub.add_response(
                "get_metric_statistics",
                {"Label": metric, "Datapoints": [{"Timestamp": stamp, **value}]},
                {**common, "MetricName": metric, "Statistics": ["Sum"]},
            )
        stub.add_response(
            "get_metric_statistics",
            {
                "Label": "ModelLatency",
                "Datapoints": [
                    {
                        "Timestamp": stamp,
                        "Average": 25000.0,
                        "ExtendedStatistics": {"p25": 15000.0, "p50": 20000.0, "p75": 30000.0},
                    }
                ],
            },
            {
                **common,
                "MetricName": "ModelLatency",
                "Statistics": ["Average"],
                "ExtendedStatistics": ["p25", "p50", "p75"],
            },
        )
    with stub:
        seen, cursor = sagemaker_metrics.read(
            lambda service: client, "ep", {"blue": CHAMPION, "green": CANDIDATE},
            {"until": T0}, delay=60.0, now=T0 + 185,
        )  # fmt: skip
        stub.assert_no_pending_responses()
    assert cursor == {"until": T0 + 120}  # the minute that ended 5 s ago is read later
    assert [
        (s.variant, s.start, s.requests, s.failed, s.client_errors) for s in seen.summaries
    ] == [
        (CANDIDATE, T0, 200, 3, 1),
        (CHAMPION, T0, 200, 3, 1),
    ]
    assert seen.summaries[0].log_latency_mean == pytest.approx(math.log(0.02))
    assert seen.summaries[0].log_latency_var == pytest.approx((math.log(2.0) / (2 * Z75)) ** 2)


def test_a_cloudwatch_refusal_is_the_looks_source_error_and_the_cursor_stays() -> None:
    client, stub = stubbed("cloudwatch")
    stub.add_client_error("get_metric_statistics", "AccessDenied", "not allowed", 403)
    with stub:
        seen, cursor = sagemaker_metrics.read(
            lambda service: client, "ep", {"blue": CHAMPION}, {"until": T0}, delay=0.0,
            now=T0 + 600,
        )  # fmt: skip
    assert cursor == {"until": T0} and seen.summaries == []
    assert seen.source_error == (
        "CloudWatch refused reading Invocations of variant blue of endpoint ep: AccessDenied "
        "not allowed."
    )


# ----- endpoints that do not settle --------------------------------------------------------------


@pytest.fixture()
def target() -> Iterator[tuple[SageMakerTarget, Any]]:
    made = SageMakerTarget("ep", role="r", wait_seconds=0.0, poll_seconds=0.0)
    client, stub = stubbed("sagemaker")
    made.sm._clients["sagemaker"] = client
    with stub:
        yield made, stub
        stub.assert_no_pending_responses()


def endpoint(stub: Any, status: str, config: str = "ep-c1", **more: Any) -> None:
    """DescribeEndpoint's and DescribeEndpointConfig's answers (the config has the candidate's
    variant too when `more` gives the endpoint's ProductionVariants with it)."""
    variants = [{"VariantName": "champion", "CurrentWeight": 1.0}]
    stub.add_response(
        "describe_endpoint",
        {
            "EndpointName": "ep",
            "EndpointArn": "arn:aws:sagemaker:us-east-1:1:endpoint/ep",
            "EndpointConfigName": config,
            "EndpointStatus": status,
            "ProductionVariants": variants,
            "CreationTime": datetime(2026, 1, 1),
            "LastModifiedTime": datetime(2026, 1, 1),
            **more,
        },  # fmt: skip
        {"EndpointName": "ep"},
    )
    names = [v["VariantName"] for v in more.get("ProductionVariants", variants)]
    config_answer(stub, config, variants=names)


def config_answer(
    stub: Any, config: str, expected: dict[str, Any] | None = None, variants: Any = ("champion",)
) -> None:
    stub.add_response(
        "describe_endpoint_config",
        {
            "EndpointConfigName": config,
            "EndpointConfigArn": f"arn:aws:sagemaker:us-east-1:1:endpoint-config/{config}",
            "ProductionVariants": [
                {
                    "VariantName": name,
                    "ModelName": "m1" if name == "champion" else "m2",
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1,
                    "InitialVariantWeight": 1.0,
                }
                for name in variants
            ],
            "CreationTime": datetime(2026, 1, 1),
        },
        {"EndpointConfigName": config} if expected is None else expected,
    )


def test_an_endpoint_still_updating_after_the_wait_is_a_clear_failure(target: Any) -> None:
    made, stub = target
    endpoint(stub, "Updating")
    with pytest.raises(StepFailed) as raised:
        made.set_weights(10)
    assert raised.value.message == (
        "SageMaker endpoint ep is still Updating after 0 s while moving traffic. SageMaker may "
        "still finish: check it (aws sagemaker describe-endpoint --endpoint-name ep) and run "
        "deploy again (it resumes), or allow the target a longer wait."
    )


def test_a_failed_endpoint_is_a_failure_with_sagemakers_reason(target: Any) -> None:
    made, stub = target
    endpoint(stub, "Failed")
    stub.add_response(
        "describe_endpoint",
        {
            "EndpointName": "ep",
            "EndpointArn": "arn:aws:sagemaker:us-east-1:1:endpoint/ep",
            "EndpointStatus": "Failed",
            "FailureReason": "the container did not pass its ping",
            "CreationTime": datetime(2026, 1, 1),
            "LastModifiedTime": datetime(2026, 1, 1),
        },  # fmt: skip
        {"EndpointName": "ep"},
    )
    with pytest.raises(
        StepFailed,
        match="is Failed while starting the candidate: the container did not pass its ping",
    ):
        made.start_candidate("m2", capture=False)


def test_an_update_sagemaker_rolled_back_is_a_failure_and_the_endpoint_serves_as_before(
    target: Any,
) -> None:
    """SageMaker rolls an UpdateEndpoint back by itself when the new variant is not healthy:
    the endpoint ends InService on its old config, which the target reads as the failure."""
    made, stub = target
    endpoint(stub, "InService")  # start_candidate: settled
    stub.add_response(
        "describe_model",
        {
            "ModelName": "m2",
            "ModelArn": "arn:aws:sagemaker:us-east-1:1:model/m2",
            "CreationTime": datetime(2026, 1, 1),
        },
        {"ModelName": "m2"},
    )
    stub.add_client_error(
        "describe_endpoint_config", "ValidationException", "Could not find endpoint configuration"
    )
    stub.add_response(
        "create_endpoint_config",
        {"EndpointConfigArn": "arn:aws:sagemaker:us-east-1:1:endpoint-config/new"},
    )
    # Read eventually: not found right after it was made, found on the second read.
    stub.add_client_error(
        "describe_endpoint_config", "ValidationException", "Could not find endpoint configuration"
    )
    config_answer(stub, "new", {"EndpointConfigName": ANY})
    endpoint(stub, "InService")  # _apply: state
    endpoint(stub, "InService")  # _apply: settled before the update
    stub.add_response(
        "update_endpoint", {"EndpointArn": "arn:aws:sagemaker:us-east-1:1:endpoint/ep"}
    )
    endpoint(stub, "InService")  # after it: still the old config
    with pytest.raises(StepFailed) as raised:
        made.start_candidate("m2", capture=False)
    assert raised.value.message.startswith(
        "SageMaker rolled endpoint ep back to config ep-c1 while adding candidate m2: the new "
        "variant did not become healthy."
    )


def test_weights_someone_else_changed_during_the_move_are_a_failure(target: Any) -> None:
    made, stub = target
    endpoint(stub, "InService", ProductionVariants=[
        {"VariantName": "champion", "CurrentWeight": 100.0},
        {"VariantName": "candidate", "CurrentWeight": 0.0},
    ])  # fmt: skip
    arn = "arn:aws:sagemaker:us-east-1:1:endpoint/ep"
    stub.add_response("update_endpoint_weights_and_capacities", {"EndpointArn": arn}, {
        "EndpointName": "ep",
        "DesiredWeightsAndCapacities": [
            {"VariantName": "champion", "DesiredWeight": 90.0},
            {"VariantName": "candidate", "DesiredWeight": 10.0},
        ],
    })  # fmt: skip
    endpoint(stub, "InService", ProductionVariants=[
        {"VariantName": "champion", "CurrentWeight": 100.0},
        {"VariantName": "candidate", "CurrentWeight": 0.0},
    ])  # fmt: skip
    with pytest.raises(
        StepFailed, match="is InService with weights .* after moving 10% of traffic"
    ):
        made.set_weights(10)


def test_the_first_look_starts_at_its_own_minute_and_asks_nothing_yet() -> None:
    client, stub = stubbed("cloudwatch")
    with stub:  # no answer queued: any call would fail the test
        seen, cursor = sagemaker_metrics.read(
            lambda service: client, "ep", {"blue": CHAMPION}, {}, delay=180.0, now=T0 + 30
        )
    assert cursor == {"until": T0} and seen.summaries == [] and seen.source_error == ""
