"""deploy's options, plan, state file and report (steps/deploy/options.py, plan.py, state.py,
report.py): pure logic, no service. The rollouts themselves are in
tests/integration/test_deploy*.py."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

from steps.core.errors import ConfigError, StepFailed
from steps.core.runtime import Runtime
from steps.deploy import report
from steps.deploy.options import DeployConfig, load_config, parse_steps
from steps.deploy.plan import bounds, build_plan
from steps.deploy.state import RolloutState, StateFile, rollout_key
from tests.unit.run_cli import run

IMAGE = "registry.example/churn@sha256:" + "ab" * 32


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./mlsteps.yaml unless a test writes one


def config(env: dict[str, str] | None = None, **flags: Any) -> DeployConfig:
    given = {"image": IMAGE, "name": "churn"}
    given.update({k.replace("_", "-"): v for k, v in flags.items()})
    given = {k: v for k, v in given.items() if v is not None}
    runtime = Runtime(environ={"XDG_CACHE_HOME": "/cache", **(env or {})})
    return load_config(runtime, given)


def refused(**kwargs: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        config(**kwargs)
    return caught.value.message


def test_defaults() -> None:
    found = config()
    assert found.endpoint == "churn" and found.target == "docker"
    assert [s.weight for s in found.schedule] == [5, 25, 50, 100]
    assert not found.mirrors and found.listen == 8800
    assert found.state_dir == "/cache/mlsteps/endpoints/churn"
    assert (found.min_bake, found.max_bake, found.look_every) == (60.0, 600.0, 10.0)
    assert found.on_inconclusive == "rollback"  # never a silent promotion


@pytest.mark.parametrize(
    ("strategy", "weights", "mirrors"),
    [
        ("canary", [5, 25, 50, 100], [False] * 4),
        ("linear", list(range(10, 101, 10)), [False] * 10),
        ("blue-green", [0, 100], [True, False]),
        ("shadow", [0], [True]),
    ],
)
def test_each_strategy_has_its_schedule(
    strategy: str, weights: list[int], mirrors: list[bool]
) -> None:
    found = config(strategy=strategy)
    assert [s.weight for s in found.schedule] == weights
    assert [s.mirror for s in found.schedule] == mirrors
    assert [s.judged for s in found.schedule] == [w < 100 for w in weights]


def test_steps_are_parsed_and_checked() -> None:
    assert parse_steps("1, 10%,100") == (1, 10, 100)
    for bad in ("", "5,3,100", "0,100", "5,50", "5,5,100", "101", "a,100", "-5,100", "5;100"):
        with pytest.raises(ValueError, match="ending with 100"):
            parse_steps(bad)


def test_bad_combinations_are_refused_naming_the_fix() -> None:
    assert "--steps" in refused(strategy="shadow", steps="5,100")
    assert "--max-bake" in refused(min_bake="2m", max_bake="1m")
    assert "--look-every" in refused(look_every="2m", max_bake="1m")
    assert "--image" in refused(image=None)
    message = refused(name="churn model")  # a registered name no endpoint can take
    assert "--endpoint" in message and "churn model" in message
    assert "--endpoint" in refused(name=None)


def test_the_cli_refuses_bad_values_with_exit_2(tmp_path: Path) -> None:
    for flag, value in (
        ("--steps", "50,25,100"),
        ("--endpoint", "a;b"),
        ("--endpoint", "x\n}"),
        ("--listen", "10.0.0.1:8800"),
        ("--listen", "0.0.0.0:8800"),
        ("--listen", "127.0.0.1:80"),
        ("--listen", "70000"),
        ("--alpha", "0"),
        ("--alpha", "nan"),
        ("--error-margin", "1"),
        ("--image", "x y"),
        ("--image", "img$(id)"),
    ):
        ran = run(["deploy", "--image", IMAGE, "--endpoint", "m", flag, value], cwd=tmp_path)
        assert ran.code == 2, (flag, value, ran.err)
        assert flag in ran.err and "Traceback" not in ran.err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_dry_run_shows_the_schedule_and_its_worst_case(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": os.environ["PATH"]}
    ran = run(
        ["--json", "deploy", "--dry-run", "--image", IMAGE, "--endpoint", "churn",
         "--max-bake", "5m", "--min-bake", "30s"],
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert ran.code == 0, ran.err
    plan = json.loads(ran.out.splitlines()[-1])["plan"]
    assert plan[0]["kind"] == "rollout.schedule"
    assert (plan[0]["min_seconds"], plan[0]["max_seconds"]) == (90.0, 3 * 300 + 6 * 30)
    assert [a["weight"] for a in plan if a["kind"] == "traffic.step"] == [5, 25, 50, 100]
    assert not (tmp_path / "cache").exists() and not (tmp_path / "mlsteps-deploy").exists()


def test_plan_lines_say_what_each_step_does() -> None:
    lines = "\n".join(build_plan(config(strategy="shadow")).lines())
    assert "mirrored copy of every request" in lines and "never served a client" in lines
    assert "disagreement" in lines
    low, high = bounds(config(strategy="shadow", target="sagemaker"))
    assert low == 60 and high > 600  # SageMaker's updates take minutes


def test_state_round_trips_and_a_damaged_one_is_refused(tmp_path: Path) -> None:
    files = StateFile(str(tmp_path / "ep"))
    assert files.read() is None
    state = RolloutState(key=rollout_key(config()), phase="stepping", step=2, cursor={"a": 1})
    files.write(state)
    assert files.read() == state
    assert [p.name for p in (tmp_path / "ep").iterdir()] == ["rollout.json"]  # no temp left
    for damaged in ("{", "[]", '{"key": "k", "phase": "flying"}', '{"key": "k", "step": -1}',
                    '{"key": "k", "step": true}', '{"key": 3}'):  # fmt: skip
        (tmp_path / "ep" / "rollout.json").write_text(damaged)
        with pytest.raises(StepFailed, match="damaged"):
            files.read()


def test_the_key_changes_with_the_rollout_not_with_the_judge() -> None:
    base = rollout_key(config())
    assert rollout_key(config(max_bake="20m", alpha="0.01")) == base
    assert rollout_key(config(steps="10,100")) != base
    assert rollout_key(config(image=IMAGE.replace("ab", "cd"))) != base


def _hold(directory: str, ready: Any, release: Any) -> None:
    with StateFile(directory).locked():
        ready.set()
        release.wait(10)


def test_a_second_deploy_to_the_endpoint_is_refused(tmp_path: Path) -> None:
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold, args=(str(tmp_path), ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        with (
            pytest.raises(StepFailed, match=f"process {holder.pid}"),
            StateFile(str(tmp_path)).locked(),
        ):
            pass
    finally:
        release.set()
        holder.join(10)
    with StateFile(str(tmp_path)).locked():  # released when its holder ended
        pass


LOOK = {
    "time": 1000.0,
    "step": 0,
    "weight": 5,
    "mirror": False,
    "verdict": "extend",
    "metrics": [
        {"name": "errors", "verdict": "unsure", "estimate": 1.1, "lower": 0.4, "upper": 3.2,
         "margin": 1.5, "candidate_n": 50, "champion_n": 950, "reason": "errors: 1 of 50"},
    ],
}  # fmt: skip


def test_report_is_written_with_a_chart_per_metric(tmp_path: Path) -> None:
    state = RolloutState(key="k", phase="done", decision="rolled-back", reason="harm")
    state.looks = [LOOK, {**LOOK, "time": 1060.0, "step": 1, "weight": 25}]
    warnings: list[str] = []
    md = report.write(config(report_dir=str(tmp_path / "r")), state, warnings.append)
    text = Path(md).read_text()
    assert "rolled-back" in text and "| errors | unsure | 1.1 | [0.4, 3.2] | 1.5 |" in text
    assert json.loads((tmp_path / "r" / "report.json").read_text())["looks"][1]["weight"] == 25
    assert (tmp_path / "r" / "errors.png").read_bytes().startswith(b"\x89PNG")
    assert warnings == []


def test_report_without_looks_says_so(tmp_path: Path) -> None:
    state = RolloutState(key="k", phase="done", decision="rolled-out", reason="first deploy")
    md = report.write(config(report_dir=str(tmp_path / "r")), state, print)
    assert "first deploy" in Path(md).read_text()
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["report.json", "report.md"]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("image", "[::1]:5000/churn:1"),
        ("image", "churn@sha512:" + "ab" * 64),
        ("champion-image", "churn@sha256:" + "AB" * 32),
    ],
)
def test_an_image_the_docker_target_cannot_run_is_bad_input_before_anything_starts(
    option: str, value: str
) -> None:
    """The option's parser takes these (other steps accept them); the docker target refused
    them mid-rollout: exit 1, "unexpected error", a rolled-back decision left in the state."""
    message = refused(**{option.replace("-", "_"): value})
    assert f"--{option} {value!r}" in message
    assert "MLSTEPS_DEPLOY_" + option.upper().replace("-", "_") in message
    assert config(target="sagemaker", **{option.replace("-", "_"): value})  # its own rules


def test_a_schedule_with_no_judged_step_is_refused() -> None:
    """--steps 100 alone switched all traffic to the candidate with nothing judged, and the
    report said "every judged step passed": a silent promotion."""
    with pytest.raises(ValueError, match="at least one step below 100"):
        parse_steps("100")
    assert "--steps" in refused(steps="100")


def test_a_state_file_past_the_schedule_is_refused_before_traffic_moves(tmp_path: Path) -> None:
    """A rollout.json whose step is past the schedule skipped every judged step and switched
    all traffic to the candidate."""
    from steps.deploy.run import DeployRun

    found = config(state_dir=str(tmp_path / "state"), steps="5,100")
    StateFile(found.state_dir).write(RolloutState(rollout_key(found), "stepping", step=7))
    with pytest.raises(StepFailed, match="is damaged .step 8 of a 2-step schedule"):
        DeployRun(found, Runtime(environ={}), build_plan(found)).run()
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == [
        "rollout.json",
        "rollout.lock",
    ]
