"""The judge's API as the controller uses it: verdicts, no data, bad records, reasons, state."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from typing import Any

import pytest

from steps.deploy.judge import Judge, JudgeSettings, Look
from steps.deploy.observations import (
    CANDIDATE,
    CHAMPION,
    NO_ANSWER,
    Observations,
    Pair,
    Request,
    Summary,
)
from tests.judge_streams import Scenario, buckets


def _requests(start: float, variant: str, count: int, failed: int = 0, latency: float = 0.05,
              status: int = 200) -> list[Request]:  # fmt: skip
    """count requests spread over [start, start+1), the first `failed` of them 500s."""
    return [
        Request(start + i / count, variant, 500 if i < failed else status, latency)
        for i in range(count)
    ]


def _metric(look: Look, name: str) -> Any:
    return next(metric for metric in look.metrics if metric.name == name)


def _run(
    scenario: Scenario, seed: int, settings: JudgeSettings | None = None
) -> tuple[Judge, Look]:
    judge = Judge(settings or JudgeSettings())
    for step, _, observations in buckets(scenario, seed):
        judge.add(observations, step)
        look = judge.look()
        if look.verdict == "rollback":
            break
    return judge, look


# ----- no data is never a pass ----------------------------------------------------------------


def test_no_data_extends_with_verdict_no_data() -> None:
    look = Judge(JudgeSettings(metrics=("errors", "latency", "disagreement"))).look()
    assert look.verdict == "extend"
    assert [m.verdict for m in look.metrics] == ["no-data"] * 3
    assert all(m.estimate is None and m.lower is None for m in look.metrics)
    assert look.candidate_requests == look.champion_requests == 0
    assert "no requests to the candidate" in look.reason
    assert look.ruled_out() == "no size of regression is ruled out yet"


def test_champion_traffic_alone_is_no_data_and_extends() -> None:
    judge = Judge(JudgeSettings())
    for second in range(100):
        judge.add(Observations(requests=_requests(second, CHAMPION, 20)), 0)
    look = judge.look()
    assert look.verdict == "extend" and look.champion_requests == 2000
    assert {m.verdict for m in look.metrics} == {"no-data"}


def test_a_failed_metrics_source_is_never_a_pass() -> None:
    judge, look = _run(Scenario(100, step_seconds=300), seed=2)
    assert look.verdict == "continue"  # a good candidate, shown safe
    judge.add(Observations(source_error="nginx's log is unreadable: permission denied"), 2)
    look = judge.look()
    assert look.verdict == "extend"
    assert "nginx's log is unreadable" in look.reason and "no pass" in look.reason


# ----- records that cannot be read ------------------------------------------------------------


def test_nan_inf_and_negative_latencies_are_left_out_never_read_as_zero() -> None:
    judge = Judge(JudgeSettings(metrics=("latency",)))
    for second in range(30):
        bad = [math.nan, math.inf, -0.2][second % 3]
        judge.add(
            Observations(
                requests=_requests(second, CHAMPION, 10, latency=0.2)
                + _requests(second, CANDIDATE, 10, latency=bad)
            ),
            0,
        )
    look = judge.look()
    latency = _metric(look, "latency")
    # The candidate's unreadable latencies did not become 0 s (a huge "improvement"): there is
    # no candidate latency at all.
    assert latency.verdict == "no-data" and latency.candidate_n == 0
    assert "300 unreadable latencies left out" in latency.reason
    assert look.verdict == "extend" and look.candidate_requests == 300


def test_records_with_unknown_variant_or_bad_time_or_status_are_ignored() -> None:
    judge = Judge(JudgeSettings(metrics=("errors",)))
    judge.add(
        Observations(
            requests=[
                Request(1.0, "challenger", 500, 0.1),
                Request(math.nan, CANDIDATE, 500, 0.1),
                Request(2.0, CANDIDATE, "500", 0.1),  # type: ignore[arg-type]
                Request(2.0, CANDIDATE, -3, 0.1),
            ],
            summaries=[Summary(0.0, 10.0, CANDIDATE, requests=5, failed=9, client_errors=0)],
        ),
        0,
    )
    look = judge.look()
    assert look.candidate_requests == 0 and look.verdict == "extend"
    assert judge.to_state()["ignored"]["records"] == 5


def test_client_errors_are_counted_but_never_errors() -> None:
    judge = Judge(JudgeSettings(metrics=("errors",)))
    for second in range(0, 600, 1):
        judge.add(
            Observations(
                requests=_requests(second, CHAMPION, 9)
                + _requests(second, CANDIDATE, 1, status=404 if second % 2 else 200)
            ),
            0,
        )
    look = judge.look()
    errors = _metric(look, "errors")
    assert look.candidate_requests == 600 and errors.verdict != "harm"
    assert "candidate 0 of 600 (0.00%)" in errors.reason
    assert (
        judge.to_state()["open"][0][4][2] + sum(row[4][2] for row in judge.to_state()["judged"])
        == 300
    )


def test_a_candidate_answering_4xx_more_often_is_harm_by_client_errors() -> None:
    """MLflow's protocol answers an exception in predict with 400: a candidate that fails so
    is rolled back by client-errors, while a 4xx rate both arms share is no harm."""
    both = Judge(JudgeSettings(metrics=("errors", "client-errors")))
    worse = Judge(JudgeSettings(metrics=("errors", "client-errors")))
    for second in range(300):
        champion = _requests(second, CHAMPION, 9, status=400 if second % 10 == 0 else 200)
        shared = _requests(second, CANDIDATE, 1, status=400 if second % 10 == 5 else 200)
        failing = _requests(second, CANDIDATE, 1, status=400 if second % 3 == 0 else 200)
        both.add(Observations(requests=champion + shared), 0)
        worse.add(Observations(requests=champion + failing), 0)
    look = worse.look()
    client = _metric(look, "client-errors")
    assert look.verdict == "rollback" and client.verdict == "harm"
    assert "client-errors: candidate 100 of 300" in look.reason
    assert _metric(look, "errors").verdict != "harm"
    assert both.look().verdict != "rollback"
    assert _metric(both.look(), "client-errors").verdict != "harm"


def test_an_answer_that_never_came_is_an_error() -> None:
    judge = Judge(JudgeSettings(metrics=("errors",)))
    for second in range(200):
        candidate = [Request(second + 0.5, CANDIDATE, NO_ANSWER, 0.0)]
        judge.add(Observations(requests=_requests(second, CHAMPION, 5) + candidate), 0)
    look = judge.look()
    assert look.verdict == "rollback"
    assert "candidate 200 of 200 (100.00%)" in look.reason


# ----- verdicts and their reasons -------------------------------------------------------------


def test_a_bad_candidate_is_rolled_back_with_the_numbers_in_the_reason() -> None:
    judge = Judge(JudgeSettings())
    for second in range(120):
        judge.add(
            Observations(
                requests=_requests(second, CHAMPION, 19, failed=1 if second % 10 == 0 else 0)
                + _requests(second, CANDIDATE, 1, failed=1 if second % 3 == 0 else 0)
            ),
            0,
        )
    look = judge.look()
    assert look.verdict == "rollback"
    errors = _metric(look, "errors")
    assert errors.verdict == "harm" and errors.lower is not None and errors.lower > 1.0
    assert errors.harm_evalue >= errors.threshold == 40.0
    assert "candidate 40 of 120 (33.33%), champion 12 of 2280 (0.53%)" in errors.reason
    assert f"rate ratio >= {errors.lower:.3g} with 95% confidence" in errors.reason
    assert "above tolerance 1.00 -> harm" in errors.reason
    assert look.reason.startswith("roll back: errors:")


def test_doubled_latency_is_harm_with_bounds_in_the_reason() -> None:
    judge, look = _run(Scenario(10, latency_factor=1.3), seed=5)
    latency = _metric(look, "latency")
    assert look.verdict == "rollback" and latency.verdict == "harm"
    assert latency.lower > 0.0 and latency.estimate == pytest.approx(0.3, abs=0.12)
    assert f"slower by >= {latency.lower:+.1%}" in latency.reason
    assert "above tolerance +0.0% -> harm" in latency.reason


def test_a_good_candidate_continues_and_says_what_is_ruled_out() -> None:
    judge, look = _run(Scenario(100, step_seconds=300), seed=2)
    assert look.verdict == "continue"
    errors, latency = look.metrics
    assert errors.verdict == latency.verdict == "safe"
    assert errors.upper < 1.5 and latency.upper < 0.05
    assert f"change <= {latency.upper:+.1%} with 95% confidence, below margin +5.0%" in look.reason
    assert look.ruled_out() == (
        f"an error-rate ratio above {errors.upper:.3g} and a latency change above "
        f"{latency.upper:+.1%} are ruled out"
    )
    as_json = look.to_json()
    assert json.loads(json.dumps(as_json)) == as_json
    assert as_json["metrics"][0]["verdict"] == "safe" and as_json["ruled_out"] == look.ruled_out()


def test_no_errors_at_all_is_shown_safe_by_the_floor() -> None:
    judge = Judge(JudgeSettings(metrics=("errors",)))
    for second in range(0, 700):
        both = _requests(second, CHAMPION, 1) + _requests(second, CANDIDATE, 1)
        judge.add(Observations(requests=both), 0)
    errors = _metric(judge.look(), "errors")
    assert errors.verdict == "safe" and errors.estimate is None
    assert "error rate is below 1.00% with 95% confidence" in errors.reason


def test_disagreement_over_tolerance_is_harm_and_under_it_safe() -> None:
    settings = JudgeSettings(metrics=("disagreement",))
    bad, good = Judge(settings), Judge(settings)
    for i in range(2000):
        bad.add(Observations(pairs=[Pair(float(i), str(i), agree=i % 20 != 0)]), 0)
        good.add(Observations(pairs=[Pair(float(i), str(i), agree=True)]), 0)
    bad_look, good_look = bad.look(), good.look()
    assert bad_look.verdict == "rollback"
    assert "100 of 2000 answers differ (5.00%)" in bad_look.reason
    assert good_look.verdict == "continue" and good_look.metrics[0].upper < 0.01
    # not valid pairs: ignored, counted
    bad.add(Observations(pairs=[Pair(math.nan, "x", True), Pair(1.0, "y", "yes")]), 0)  # type: ignore[arg-type]
    assert bad.to_state()["ignored"]["pairs"] == 2


def test_summaries_are_judged_like_the_requests_they_count() -> None:
    scenario = Scenario(100, error_ratio=3.0)
    from_requests = Judge(JudgeSettings())
    from_summaries = Judge(JudgeSettings())
    for (step, _, requests), (_, _, summaries) in zip(
        buckets(scenario, 9), buckets(scenario, 9, summaries=True), strict=True
    ):
        from_requests.add(requests, step)
        from_summaries.add(summaries, step)
    a, b = from_requests.look(), from_summaries.look()
    assert a.verdict == b.verdict == "rollback"
    assert a.candidate_requests == b.candidate_requests
    for x, y in zip(a.metrics, b.metrics, strict=True):
        assert x.harm_evalue == pytest.approx(y.harm_evalue, rel=1e-6)
        assert x.estimate == pytest.approx(y.estimate, rel=1e-6)


def test_a_bucket_never_spans_two_steps_and_late_records_form_their_own() -> None:
    judge = Judge(JudgeSettings(bucket_seconds=10.0))
    judge.add(Observations(requests=_requests(1.0, CHAMPION, 5)), 0)
    judge.add(Observations(requests=_requests(2.0, CHAMPION, 5)), 1)  # same bucket, next step
    judge.look()
    judge.add(Observations(requests=_requests(3.0, CANDIDATE, 2)), 0)  # late, for step 0
    state = judge.to_state()
    assert [row[:3] for row in state["judged"]] == [[0, 0, 0]]
    assert sorted(row[:3] for row in state["open"]) == [[0, 0, 1], [1, 0, 0]]


# ----- settings and state ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"error_tolerance": 2.0}, "error_tolerance"),
        ({"latency_margin": -0.1}, "latency_tolerance"),
        ({"disagreement_tolerance": 1.0}, "disagreement_tolerance"),
        ({"bucket_seconds": math.nan}, "bucket_seconds"),
        ({"metrics": ("errors", "p99")}, "metrics"),
        ({"metrics": ()}, "metrics"),
        ({"error_rate_floor": 0.0}, "error_rate_floor"),
    ],
)
def test_settings_no_test_can_run_with_are_refused(change: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        Judge(JudgeSettings(**change))


def _mid_run_judge() -> Judge:
    judge = Judge(JudgeSettings(metrics=("errors", "latency", "disagreement")))
    for step, _, observations in buckets(Scenario(10, error_ratio=1.5), seed=4):
        observations.pairs.append(Pair(observations.requests[0].time, "r", agree=step != 1))
        judge.add(observations, step)
        if step == 2:
            break
    judge.look()
    judge.add(Observations(requests=_requests(1e9, CANDIDATE, 3)), 2)  # an open bucket
    return judge


def test_state_round_trips_through_json_to_the_same_look() -> None:
    judge = _mid_run_judge()
    state = json.loads(json.dumps(judge.to_state()))
    resumed = Judge.from_state(judge.settings, state)
    assert resumed.to_state() == judge.to_state()
    assert resumed.look().to_json() == judge.look().to_json()
    # and both go on alike
    more = next(buckets(Scenario(10), seed=1))[2]
    judge.add(more, 2)
    resumed.add(more, 2)
    assert resumed.look().to_json() == judge.look().to_json()


def _broken(state: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    broken = copy.deepcopy(state)
    target = broken
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return broken


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("version",), 2, "version"),
        (("bucket_seconds",), 60.0, "buckets of 60.0 s"),
        (("judged",), KeyError, "keys"),
        (("judged",), {"a": 1}, "judged must be a list"),
        (("judged", 0), [0, 0, 0], r"\[step, bucket, generation"),
        (("judged", 0, 0), -1, "must be >= 0"),
        (("judged", 0, 1), 1.5, "whole number"),
        (("judged", 0, 3, 0), -4, "requests must be a count"),
        (("judged", 0, 3, 4), math.nan, "finite"),
        (("judged", 0, 3, 1), 10**9, "do not add up"),
        (("judged", 0, 3), [1, 2], "list of 8 numbers"),
        (("newest",), "late", "newest"),
        (("newest",), None, "no newest"),
        (("ignored",), {"records": 1}, "ignored must count"),
        (("ignored", "pairs"), -1, ">= 0"),
        (("source_error",), 3, "text"),
        (("disagreement", 0), -5, "do not add up"),
        (("disagreement",), [], "list of"),
    ],
)
def test_a_malformed_state_is_a_value_error_naming_what(
    path: tuple[Any, ...], value: Any, message: str
) -> None:
    judge = _mid_run_judge()
    state = judge.to_state()
    with pytest.raises(ValueError, match=message):
        Judge.from_state(judge.settings, _broken(state, path, value))


def test_a_duplicate_bucket_or_a_state_that_is_not_a_mapping_is_refused() -> None:
    judge = _mid_run_judge()
    state = judge.to_state()
    state["open"].append(state["judged"][0])
    with pytest.raises(ValueError, match="both judged and open"):
        Judge.from_state(judge.settings, state)
    state = judge.to_state()
    state["judged"].append(state["judged"][0])
    with pytest.raises(ValueError, match="twice"):
        Judge.from_state(judge.settings, state)
    with pytest.raises(ValueError, match="mapping"):
        Judge.from_state(judge.settings, [])  # type: ignore[arg-type]


def test_the_judge_imports_fast_and_alone() -> None:
    """Standard library only: importing it loads no numpy, and no random number generator in
    any production path (the controller's --help and plan stay light)."""
    code = (
        "import sys, time; t = time.perf_counter(); import steps.deploy.judge; "
        "print(time.perf_counter() - t, 'numpy' in sys.modules, 'random' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, numpy, random = out.stdout.split()
    assert numpy == random == "False" and float(seconds) < 0.5


def test_a_summary_with_an_unreadable_latency_counts_its_requests_but_no_latency() -> None:
    judge = Judge(JudgeSettings(metrics=("errors", "latency")))
    judge.add(
        Observations(
            summaries=[
                Summary(0.0, 10.0, CHAMPION, 100, 1, 2, log_latency_mean=-3.0, log_latency_var=0.1),
                Summary(0.0, 10.0, CANDIDATE, 10, 0, 0, log_latency_mean=math.nan),
                Summary(
                    10.0, 10.0, CANDIDATE, 10, 0, 0, log_latency_mean=-3.0, log_latency_var=-1.0
                ),
            ]
        ),
        0,
    )
    look = judge.look()
    latency = _metric(look, "latency")
    assert look.candidate_requests == 20 and look.champion_requests == 100
    assert latency.verdict == "no-data" and "20 unreadable latencies left out" in latency.reason
