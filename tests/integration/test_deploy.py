"""`mlsteps deploy` end to end on the docker target: real Docker Engine, real nginx, the real
judge, the session's test models (tests/deploy_models.py) and a load of about 60 requests/s
through the proxy the whole time. Each test has an endpoint of its own (its own state dir and
port) whose teardown leaves no container and no nginx.

The judge's margins are wide here (latency +50%, errors 3x, a 5% error floor) so a good
candidate is shown safe in seconds rather than minutes, and only a slowdown above 30% is harm:
two containers of one model on this busy 2-core machine can differ by 25% (measured), which
the default tolerance of 0 would roll back. The bad ones are far outside all of them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from steps.deploy.targets.docker import ENDPOINT_LABEL, DockerTarget
from tests import deploy_models
from tests.deploy_load import Load
from tests.services import describe, free_port, no_labelled_containers

pytestmark = [pytest.mark.services, pytest.mark.slow]

FAST = (
    "--look-every", "1s", "--min-bake", "3s", "--max-bake", "90s", "--min-requests", "20",
    "--latency-margin", "50%", "--latency-tolerance", "30%", "--error-margin", "3",
    "--error-floor", "5%",
)  # fmt: skip
# Connection-level failures a weight change or a rollback must never cause (a model's own 500
# is the candidate's harm, which the judge must see, not a failure of the rollout).
BROKEN = {"ConnectionError", "ReadTimeout", "ChunkedEncodingError", 502, 503, 504}


@dataclass
class Endpoint:
    name: str
    port: int
    state_dir: Path
    report_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def args(self, image: str, *more: str) -> list[str]:
        return [
            "deploy", "--image", image, "--endpoint", self.name,
            "--listen", f"127.0.0.1:{self.port}", "--state-dir", str(self.state_dir),
            "--report-dir", str(self.report_dir), *more,
        ]  # fmt: skip


def mlsteps(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "steps", "--json", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CI": "true", "MLSTEPS_CI": "local"},
    )


@dataclass
class Done:
    code: int
    outputs: dict[str, str]
    error: str
    err: str


def finish(process: subprocess.Popen[str], timeout: float = 240) -> Done:
    out, err = process.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    document = json.loads(lines[-1]) if lines else {}
    return Done(process.returncode, document.get("outputs") or {}, document.get("error") or "", err)


def deploy(endpoint: Endpoint, image: str, *more: str, cwd: Path) -> Done:
    return finish(mlsteps(*endpoint.args(image, *more), cwd=cwd))


def containers(client: Any, endpoint: Endpoint) -> list[Any]:
    return no_labelled_containers(client, f"{ENDPOINT_LABEL}={endpoint.name}", prefix=None)


def images_serving(client: Any, endpoint: Endpoint) -> list[str]:
    return sorted(
        client.containers.get(c.id).attrs["Config"]["Image"] for c in containers(client, endpoint)
    )


@pytest.fixture
def endpoint(
    tmp_path: Path, docker_client: Any, deploy_images: dict[str, deploy_models.DeployImage]
) -> Iterator[Endpoint]:
    """An endpoint serving the `good` model as its champion (a first deploy: no canary)."""
    made = Endpoint(
        f"it-{uuid.uuid4().hex[:8]}", free_port(), tmp_path / "state", tmp_path / "report"
    )
    first = deploy(made, deploy_images["good"].image, cwd=tmp_path)
    assert first.code == 0, first.err
    assert first.outputs["decision"] == "rolled-out"
    assert "first champion" in first.err
    yield made
    DockerTarget(made.name, made.state_dir).tear_down()
    left = containers(docker_client, made)
    assert left == [], describe(left)


def rows(count: int = 64) -> list[list[float]]:
    return [[i * 0.37 % 5, i * 0.11 % 3] for i in range(count)]


def body() -> bytes:
    return deploy_models.body(rows(8))


def test_a_good_candidate_goes_through_every_step_under_load(
    endpoint: Endpoint, docker_client: Any, deploy_images: Any, tmp_path: Path
) -> None:
    candidate = deploy_images["good2"].image
    with Load(endpoint.url, body, rate=60) as load:
        done = deploy(endpoint, candidate, "--steps", "10,50,100", *FAST, cwd=tmp_path)
    assert done.code == 0, done.err
    assert done.outputs["decision"] == "rolled-out"
    assert done.outputs["variant-weights"] == "champion=100"
    assert done.outputs["endpoint"] == endpoint.url
    assert load.failures() == [], load.failures()[:5]
    assert load.rate() >= 50
    # The candidate is the champion now, alone; the old champion's container is gone.
    assert images_serving(docker_client, endpoint) == [candidate]
    for step in ("step 1 of 3: candidate at 10%", "step 2 of 3: candidate at 50%"):
        assert step in done.err
    assert "deploy: step 1/3 10%" in done.err  # a progress line per look
    report = json.loads((endpoint.report_dir / "report.json").read_text())
    assert report["decision"] == "rolled-out"
    assert {look["weight"] for look in report["looks"]} == {10, 50}
    assert (endpoint.report_dir / "errors.png").read_bytes().startswith(b"\x89PNG")
    # The same deploy again changes nothing: it was decided.
    again = deploy(endpoint, candidate, "--steps", "10,50,100", *FAST, cwd=tmp_path)
    assert again.code == 0 and "decided already" in again.err
    assert images_serving(docker_client, endpoint) == [candidate]


@pytest.mark.parametrize(("model", "metric"), [("failing", "errors"), ("slow", "latency")])
def test_a_harmful_candidate_is_rolled_back_champion_first(
    endpoint: Endpoint,
    docker_client: Any,
    deploy_images: Any,
    tmp_path: Path,
    model: str,
    metric: str,
) -> None:
    with Load(endpoint.url, body, rate=60) as load:
        done = deploy(endpoint, deploy_images[model].image, "--steps", "25,100", *FAST,
                      cwd=tmp_path)  # fmt: skip
    assert done.code == 3, done.err
    assert done.outputs["decision"] == "rolled-back"
    assert done.outputs["variant-weights"] == "champion=100"
    assert f"{metric}:" in done.error and "harm" in done.error
    assert images_serving(docker_client, endpoint) == [deploy_images["good"].image]
    # No request failed because traffic moved; the failing model's own 500s are its harm.
    assert [o for o in load.outcomes if o.status in BROKEN] == []
    report = json.loads((endpoint.report_dir / "report.json").read_text())
    assert report["decision"] == "rolled-back"


def test_shadow_rejects_a_disagreeing_model_no_client_sees_its_answers(
    endpoint: Endpoint, docker_client: Any, deploy_images: Any, tmp_path: Path
) -> None:
    def varied() -> bytes:
        start = time.monotonic_ns() % 997
        return deploy_models.body([[(start + i) * 0.013, (start * i) % 7 * 0.1] for i in range(4)])

    with Load(endpoint.url, varied, rate=60) as load:
        done = deploy(endpoint, deploy_images["disagreeing"].image, "--strategy", "shadow",
                      *FAST, cwd=tmp_path)  # fmt: skip
    assert done.code == 3, done.err
    assert "disagreement" in done.error
    answered = [o for o in load.outcomes if o.status == 200]
    assert answered and load.failures() == []
    for outcome in answered:
        rows_sent = outcome.sent["dataframe_split"]["data"]
        assert outcome.predictions == [deploy_models.expected(x0, x1) for x0, x1 in rows_sent]
    assert images_serving(docker_client, endpoint) == [deploy_images["good"].image]


def wait_for_phase(endpoint: Endpoint, phase: str, step: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    path = endpoint.state_dir / "rollout.json"
    while time.monotonic() < deadline:
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            state = {}
        if state.get("phase") == phase and state.get("step", -1) >= step:
            return
        time.sleep(0.2)
    raise AssertionError(f"the rollout never reached {phase} step {step}")


def test_sigterm_mid_rollout_puts_all_traffic_on_the_champion_and_exits_143(
    endpoint: Endpoint, docker_client: Any, deploy_images: Any, tmp_path: Path
) -> None:
    with Load(endpoint.url, body, rate=60) as load:
        process = mlsteps(*endpoint.args(deploy_images["good2"].image, "--steps", "10,50,100",
                                         *FAST, "--min-bake", "60s"), cwd=tmp_path)  # fmt: skip
        wait_for_phase(endpoint, "stepping", 0)
        time.sleep(2)
        process.send_signal(signal.SIGTERM)
        done = finish(process, timeout=60)
    assert done.code == 143, done.err
    assert done.outputs.get("decision") == "rolled-back"
    assert images_serving(docker_client, endpoint) == [deploy_images["good"].image]
    assert [o for o in load.outcomes if o.status in BROKEN] == []


@pytest.mark.parametrize("checkpoint", [("stepping", 0), ("stepping", 1)])
def test_kill_9_then_the_same_deploy_again_ends_consistent(
    endpoint: Endpoint,
    docker_client: Any,
    deploy_images: Any,
    tmp_path: Path,
    checkpoint: tuple[str, int],
) -> None:
    candidate = deploy_images["good2"].image
    args = endpoint.args(candidate, "--steps", "10,50,100", *FAST)
    with Load(endpoint.url, body, rate=60) as load:
        process = mlsteps(*args, cwd=tmp_path)
        wait_for_phase(endpoint, *checkpoint)
        process.kill()
        process.communicate(timeout=30)
        again = finish(mlsteps(*args, cwd=tmp_path))
    assert again.code == 0, again.err
    assert "resuming the rollout" in again.err
    assert again.outputs["decision"] == "rolled-out"
    assert images_serving(docker_client, endpoint) == [candidate]
    assert [o for o in load.outcomes if o.status in BROKEN] == []


def test_the_report_goes_to_the_candidate_versions_run_and_a_wrong_version_moves_nothing(
    endpoint: Endpoint,
    docker_client: Any,
    deploy_images: Any,
    tmp_path: Path,
    mlflow_server: Any,
) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server.uri)
    name = f"deploy-{endpoint.name}"
    client.create_registered_model(name)
    run = client.create_run(client.get_experiment_by_name("Default").experiment_id)
    version = client.create_model_version(
        name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
    ).version
    tracking = ("--tracking-uri", mlflow_server.uri, "--name", name)
    # A version the registry does not have: exit 2 before any traffic moves.
    before = (endpoint.state_dir / "rollout.json").read_text()
    wrong = deploy(endpoint, deploy_images["failing"].image, *tracking, "--version", "99",
                   *FAST, cwd=tmp_path)  # fmt: skip
    assert wrong.code == 2, wrong.err
    assert "--version 99" in wrong.error and "Traceback" not in wrong.err
    assert images_serving(docker_client, endpoint) == [deploy_images["good"].image]
    assert (endpoint.state_dir / "rollout.json").read_text() == before

    with Load(endpoint.url, body, rate=60):
        done = deploy(endpoint, deploy_images["failing"].image, *tracking, "--version",
                      str(version), "--steps", "25,100", *FAST, cwd=tmp_path)  # fmt: skip
    assert done.code == 3, done.err
    files = {f.path for f in client.list_artifacts(run.info.run_id, "mlsteps/deploy")}
    assert {"mlsteps/deploy/report.json", "mlsteps/deploy/report.md"} <= files
    assert "mlsteps/deploy/errors.png" in files
    assert client.get_run(run.info.run_id).data.tags["mlsteps.deploy.decision"] == "rolled-back"
    assert client.get_model_version(name, version).tags["mlsteps.deploy.decision"] == "rolled-back"


def test_no_traffic_is_never_a_pass_and_hold_keeps_the_share_until_a_re_run(
    endpoint: Endpoint, docker_client: Any, deploy_images: Any, tmp_path: Path
) -> None:
    candidate = deploy_images["good2"].image
    short = (*FAST, "--max-bake", "4s", "--steps", "25,100")
    # No client at all: undecided at --max-bake, and the default rolls back.
    idle = deploy(endpoint, candidate, *short, cwd=tmp_path)
    assert idle.code == 3, idle.err
    assert idle.outputs["decision"] == "rolled-back"
    assert "undecided" in idle.error and "--on-inconclusive rollback" in idle.error
    assert images_serving(docker_client, endpoint) == [deploy_images["good"].image]
    # hold: the candidate keeps its share, exit 3; the same deploy again, with traffic, goes on.
    # The same deploy again only reports the recorded decision; --retry tries again.
    same = deploy(endpoint, candidate, *short, cwd=tmp_path)
    assert same.code == 3 and "decided already" in same.err and "--retry" in same.err
    held = deploy(endpoint, candidate, *short, "--on-inconclusive", "hold", "--retry", "true",
                  cwd=tmp_path)  # fmt: skip
    assert held.code == 3, held.err
    assert held.outputs["decision"] == "held"
    assert held.outputs["variant-weights"] == "champion=75,candidate=25"
    assert images_serving(docker_client, endpoint) == sorted(
        [deploy_images["good"].image, candidate]
    )
    with Load(endpoint.url, body, rate=60):
        again = deploy(endpoint, candidate, *FAST, "--steps", "25,100", "--on-inconclusive",
                       "hold", "--retry", "true", cwd=tmp_path)  # fmt: skip
    assert again.code == 0, again.err
    assert "resuming the rollout" in again.err and again.outputs["decision"] == "rolled-out"
    assert images_serving(docker_client, endpoint) == [candidate]


def test_a_second_rollout_is_judged_on_its_own_requests_only(
    endpoint: Endpoint, docker_client: Any, deploy_images: Any, tmp_path: Path
) -> None:
    """The access log keeps the lines of the last rollout, whose candidate serves as the
    champion now: none of them is evidence for the next candidate. Without a client, the next
    canary's first step cannot pass."""
    with Load(endpoint.url, body, rate=60):
        first = deploy(endpoint, deploy_images["good2"].image, "--steps", "25,100", *FAST,
                       cwd=tmp_path)  # fmt: skip
    assert first.code == 0, first.err
    idle = deploy(endpoint, deploy_images["good"].image, *FAST, "--max-bake", "4s", "--steps",
                  "25,100", cwd=tmp_path)  # fmt: skip
    assert idle.code == 3, idle.err
    assert idle.outputs["decision"] == "rolled-back"
    assert "undecided" in idle.error and "(0 candidate requests in the step)" in idle.error
    report = json.loads((endpoint.report_dir / "report.json").read_text())
    assert all(look["candidate_requests"] == 0 for look in report["looks"]), report["looks"]
    assert images_serving(docker_client, endpoint) == [deploy_images["good2"].image]


@pytest.mark.parametrize(
    ("phase", "decision", "serving"),
    [("starting", "rolled-out", "good2"), ("finishing", "rolled-out", "good2"),
     ("rolling-back", "rolled-back", "good")],
)  # fmt: skip
def test_a_controller_dead_at_a_checkpoint_is_finished_by_the_same_deploy(
    endpoint: Endpoint,
    docker_client: Any,
    deploy_images: Any,
    tmp_path: Path,
    phase: str,
    decision: str,
    serving: str,
) -> None:
    """The candidate at 25% and the state file as the controller writes it at each checkpoint
    (a kill -9 right after the write): the same deploy again ends consistent, with no second
    candidate and no failed client request."""
    candidate = deploy_images["good2"].image
    args = (*FAST, "--steps", "25,100", "--on-inconclusive", "hold")
    held = deploy(endpoint, candidate, *args, "--max-bake", "3s", cwd=tmp_path)
    assert held.code == 3 and held.outputs["decision"] == "held", held.err
    path = endpoint.state_dir / "rollout.json"
    state = json.loads(path.read_text())
    state.update(phase=phase, decision="", reason="killed -9 at this checkpoint")
    path.write_text(json.dumps(state))
    with Load(endpoint.url, body, rate=60) as load:
        again = deploy(endpoint, candidate, *args, cwd=tmp_path)
    assert again.code == (0 if decision == "rolled-out" else 3), again.err
    assert again.outputs["decision"] == decision
    assert images_serving(docker_client, endpoint) == [deploy_images[serving].image]
    assert [o for o in load.outcomes if o.status in BROKEN] == []
