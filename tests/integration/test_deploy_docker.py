"""deploy's docker target against a real Docker Engine and a real nginx: two package images
(the session's iris model, and a model that always answers class 2) behind the proxy, weights
moved under a load of more than 50 requests/s, shadowing, an endpoint found again after a
restart, and the failures that must leave nothing running."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from steps.core.errors import ConfigError, StepFailed
from steps.deploy.observations import CANDIDATE, CHAMPION, Request
from steps.deploy.targets.base import Endpoint
from steps.deploy.targets.docker import ENDPOINT_LABEL, DockerTarget
from tests.deploy_load import Load
from tests.integration.test_package import outputs_of, package
from tests.services import describe, no_labelled_containers

pytestmark = pytest.mark.services

COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
# A setosa: the champion (logistic regression) answers class 0; the candidate always 2.
BODY = {"dataframe_split": {"columns": COLUMNS, "data": [[5.1, 3.5, 1.4, 0.2]]}}
SENT = json.dumps(BODY).encode()
CHAMPION_ANSWER, CANDIDATE_ANSWER = [0], [2]


@pytest.fixture(scope="module")
def candidate_image(iris_image: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A second serving image whose answers differ (same requirements as the session's iris
    image, so only its model layer is built)."""
    import mlflow
    from sklearn.datasets import load_iris
    from sklearn.dummy import DummyClassifier

    x, y = load_iris(return_X_y=True, as_frame=True)
    root = tmp_path_factory.mktemp("constant")
    model = DummyClassifier(strategy="constant", constant=2).fit(x, y)
    mlflow.sklearn.save_model(model, str(root / "model"), input_example=x.head(3))
    done = package(
        "--model-uri", str(root / "model"), "--repository", "it-deploy-candidate",
        "--smoke-test", "false", cwd=root,
    )  # fmt: skip
    return outputs_of(done)["image"]


def endpoint_containers(client: Any, name: str) -> list[Any]:
    return no_labelled_containers(client, f"{ENDPOINT_LABEL}={name}", prefix=None)


@pytest.fixture
def target(docker_client: Any, tmp_path: Path) -> Iterator[DockerTarget]:
    """An endpoint of this test's own; its teardown leaves no container and no nginx."""
    made = DockerTarget(f"it-{uuid.uuid4().hex[:8]}", tmp_path / "endpoint", read_timeout=10)
    yield made
    made.tear_down()
    left = endpoint_containers(docker_client, made.endpoint)
    assert left == [], describe(left)
    assert made.nginx.master() is None


def predict(url: str, session: Any = requests) -> Any:
    answer = session.post(f"{url}/invocations", json=BODY, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["predictions"]


def served(requests_: list[Request]) -> list[Request]:
    return [r for r in requests_ if not r.mirrored]


def test_weights_move_and_roll_back_under_load_without_a_failed_request(
    docker_client: Any, target: DockerTarget, iris_image: str, candidate_image: str
) -> None:
    from docker.errors import NotFound

    endpoint = target.ensure_champion(iris_image)
    assert (endpoint.champion, endpoint.candidate, endpoint.down) == (iris_image, "", "")
    target.start_candidate(candidate_image, capture=False)
    candidate_id = target._load()["candidate"]["container"]  # type: ignore[index]
    _, cursor = target.observe({})
    splits = {}
    with Load(endpoint.url, lambda: SENT) as load:
        time.sleep(1)
        for weight in (5, 25, 50, 100):
            target.set_weights(weight)
            _, cursor = target.observe(cursor)  # from here on: the new weights
            time.sleep(2.5)
            seen, cursor = target.observe(cursor)
            assert not seen.source_error
            on = served(seen.requests)
            assert len(on) > 100
            splits[weight] = sum(r.variant == CANDIDATE for r in on) / len(on)
        back = target.remove_candidate()  # the rollback: all to the champion, then removal
        _, cursor = target.observe(cursor)
        time.sleep(1.5)
        after, cursor = target.observe(cursor)
    assert load.failures() == [], load.failures()[:5]
    assert load.rate() >= 50, f"{load.rate():.0f} requests/s"
    for weight, share in splits.items():
        assert abs(share - weight / 100) < 0.06, splits
    assert {r.variant for r in served(after.requests)} == {CHAMPION}
    assert (back.candidate, back.candidate_weight, back.down) == ("", 0, "")
    with pytest.raises(NotFound):
        docker_client.containers.get(candidate_id)
    answers = {str(o.predictions) for o in load.outcomes}
    assert answers == {str(CHAMPION_ANSWER), str(CANDIDATE_ANSWER)}
    assert target.remove_candidate() == back  # idempotent

    # A full rollout: the candidate becomes the champion, the old champion goes.
    old_champion = target._load()["champion"]["container"]  # type: ignore[index]
    target.start_candidate(candidate_image, capture=False)
    with Load(endpoint.url, lambda: SENT) as load:
        target.set_weights(50)
        time.sleep(1)
        done = target.finish()
        time.sleep(1)
    assert load.failures() == [], load.failures()[:5]
    assert (done.champion, done.candidate, done.down) == (candidate_image, "", "")
    assert load.outcomes[-1].predictions == CANDIDATE_ANSWER
    assert predict(endpoint.url) == CANDIDATE_ANSWER
    with pytest.raises(NotFound):
        docker_client.containers.get(old_champion)
    assert len(endpoint_containers(docker_client, target.endpoint)) == 1
    assert target.finish() == done  # idempotent


def test_a_candidate_that_dies_under_load_fails_no_client_and_the_judge_sees_it(
    docker_client: Any, target: DockerTarget, iris_image: str, candidate_image: str
) -> None:
    """nginx retries a connection-level failure on the champion: no client sees it, but the
    log keeps the failed try, against the candidate."""
    endpoint = target.ensure_champion(iris_image)
    target.start_candidate(candidate_image, capture=False)
    target.set_weights(50)
    state = target._load()
    assert state is not None
    _, cursor = target.observe({})
    with Load(endpoint.url, lambda: SENT) as load:
        time.sleep(1)
        docker_client.containers.get(state["candidate"]["container"]).kill()
        time.sleep(2)
    time.sleep(0.3)
    seen, _ = target.observe(cursor)
    assert load.failures() == [], load.failures()[:5]
    assert load.rate() >= 50, f"{load.rate():.0f} requests/s"
    failed = [r for r in seen.requests if r.failed]
    assert failed and {r.variant for r in failed} == {CANDIDATE}
    answered = {r.request_id for r in seen.requests if r.variant == CHAMPION and r.status == 200}
    assert {r.request_id for r in failed} <= answered  # each failed try was served by the other
    now = target.current()
    assert now is not None and now.down == CANDIDATE
    assert target.remove_candidate().down == ""


def test_shadow_both_variants_see_the_request_the_client_only_the_champion(
    docker_client: Any, target: DockerTarget, iris_image: str, candidate_image: str
) -> None:
    endpoint = target.ensure_champion(iris_image)
    target.start_candidate(candidate_image, capture=True)
    target.set_weights(0, mirror=True)
    assert target.current() == Endpoint(endpoint.url, iris_image, candidate_image, 0, True, "")
    _, cursor = target.observe({})
    with requests.Session() as session:
        answers = [predict(endpoint.url, session) for _ in range(40)]
    assert all(a == CHAMPION_ANSWER for a in answers)
    time.sleep(0.5)
    seen, _ = target.observe(cursor)
    client = [r for r in seen.requests if not r.mirrored]
    mirrored = [r for r in seen.requests if r.mirrored]
    assert {r.variant for r in client} == {CHAMPION} and len(client) == 40
    assert {r.variant for r in mirrored} == {CANDIDATE}
    assert {r.request_id for r in mirrored} == {r.request_id for r in client}
    assert all(len(r.request_id) == 32 and r.status == 200 for r in seen.requests)
    # Pairs come from data capture once the server writes it (wired by the lead): none yet.
    assert seen.pairs == []
    # Capture: each variant has its own host directory and the variables the server reads.
    state = target._load()
    assert state is not None
    for role in (CHAMPION, CANDIDATE):
        attrs = docker_client.containers.get(state[role]["container"]).attrs
        env = dict(item.split("=", 1) for item in attrs["Config"]["Env"])
        assert env["MLSTEPS_CAPTURE_DIR"] == "/opt/ml/capture"
        assert env["MLSTEPS_VARIANT"] == role
        mount = next(m for m in attrs["Mounts"] if m["Destination"] == "/opt/ml/capture")
        assert Path(mount["Source"]).parent == target.root / "capture" and mount["RW"]
    assert len(endpoint_containers(docker_client, target.endpoint)) == 2  # the old champion went
    target.remove_candidate()
    assert target.current() == Endpoint(endpoint.url, iris_image, "", 0, False, "")


def test_a_later_target_finds_the_endpoint_and_restarts_what_died(
    docker_client: Any, target: DockerTarget, iris_image: str
) -> None:
    endpoint = target.ensure_champion(iris_image)
    later = DockerTarget(target.endpoint, target.root)
    assert later.current() == endpoint
    assert predict(endpoint.url) == CHAMPION_ANSWER
    assert later.ensure_champion(None) == endpoint  # serving: left as it is

    for whole in (False, True):
        master = later.nginx.master()
        assert master is not None
        if whole:
            os.killpg(master, signal.SIGKILL)  # nginx and its workers die
        else:  # the master alone: its orphaned workers still hold the port
            workers = later.nginx.workers()
            os.kill(master, signal.SIGKILL)
            time.sleep(0.5)
            assert later.nginx.orphans() == workers
        time.sleep(0.5)
        down = later.current()
        assert down is not None and down.down == "proxy"
        assert later.ensure_champion(None) == endpoint
        assert predict(endpoint.url) == CHAMPION_ANSWER
        assert later.nginx.orphans() == set()

    state = later._load()
    assert state is not None
    docker_client.containers.get(state["champion"]["container"]).kill()
    down = later.current()
    assert down is not None and down.down == CHAMPION
    assert later.ensure_champion(None) == endpoint
    assert predict(endpoint.url) == CHAMPION_ANSWER
    assert len(endpoint_containers(docker_client, target.endpoint)) == 1


def test_no_endpoint_and_no_champion_is_bad_input(target: DockerTarget) -> None:
    assert target.current() is None
    with pytest.raises(ConfigError, match="nothing serves it yet"):
        target.ensure_champion(None)
    with pytest.raises(StepFailed, match="not up"):
        target.start_candidate("iris:1", capture=False)
    assert target.remove_candidate().champion == ""  # safe with nothing started
    seen, cursor = target.observe({})
    assert seen.source_error and cursor == {}


def test_an_image_that_cannot_be_had_is_named_by_its_role(
    docker_client: Any, target: DockerTarget, iris_image: str
) -> None:
    # A registry that does not answer (loopback, nothing listening): pulling fails.
    nowhere = "127.0.0.1:9/it-no-such-image:1"
    said = f"image {re.escape(nowhere)}: not on this engine"
    with pytest.raises(StepFailed, match=f"the champion {said}"):
        target.ensure_champion(nowhere)
    assert target.current() is None and target.nginx.master() is None
    endpoint = target.ensure_champion(iris_image)
    with pytest.raises(StepFailed, match=f"the candidate {said}"):
        target.start_candidate(nowhere, capture=False)
    assert target.current() == endpoint
    assert len(endpoint_containers(docker_client, target.endpoint)) == 1


def test_a_port_in_use_names_listen_and_leaves_nothing_running(
    docker_client: Any, tmp_path: Path, iris_image: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        made = DockerTarget(f"it-{uuid.uuid4().hex[:8]}", tmp_path, listen=port)
        with pytest.raises(ConfigError, match=f"--listen {port}"):
            made.ensure_champion(iris_image)
    assert endpoint_containers(docker_client, made.endpoint) == []
    assert made.nginx.master() is None and made.current() is None


def test_nginx_missing_fails_clearly_and_leaves_nothing_running(
    docker_client: Any, tmp_path: Path, iris_image: str
) -> None:
    made = DockerTarget(f"it-{uuid.uuid4().hex[:8]}", tmp_path, nginx=str(tmp_path / "nginx"))
    with pytest.raises(StepFailed, match="nginx is not installed"):
        made.ensure_champion(iris_image)
    assert endpoint_containers(docker_client, made.endpoint) == []
    assert made.current() is None


def test_a_candidate_that_never_answers_is_removed(
    docker_client: Any, target: DockerTarget, iris_image: str, base_image: str
) -> None:
    """An image with no model server: its container exits, start_candidate says so and leaves
    the endpoint as it was (the champion alone)."""
    endpoint = target.ensure_champion(iris_image)
    with pytest.raises(StepFailed, match="did not (answer /ping|start)"):
        target.start_candidate(base_image, capture=False)
    assert target.current() == endpoint
    assert len(endpoint_containers(docker_client, target.endpoint)) == 1
