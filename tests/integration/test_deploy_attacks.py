"""Attacks on `mlsteps deploy` through the real controller (real Docker Engine, real nginx, the
session's test models): awkward inputs, signals and judgements the happy-path tests in
test_deploy.py do not reach. Each endpoint is the `endpoint` fixture's (its own state dir and
port; its teardown leaves no container and no nginx)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.deploy_load import Load
from tests.integration.test_deploy import (  # noqa: F401 (endpoint: the fixture)
    BROKEN,
    FAST,
    Endpoint,
    body,
    deploy,
    endpoint,
    finish,
    images_serving,
    mlsteps,
    wait_for_phase,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]

QUICK = ("--look-every", "1s", "--min-bake", "2s", "--max-bake", "4s", "--steps", "10,100")


def test_no_traffic_with_on_inconclusive_hold_holds_then_a_rerun_decides(
    endpoint: Endpoint,  # noqa: F811 (the fixture)
    docker_client: Any,
    deploy_images: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No request at all is inconclusive, never a pass; `hold` leaves the candidate at its
    share with exit 3 (it was caught as a failure: rolled back, exit 1, decision rolled-back)
    and the same deploy re-run bakes it again and decides. Secrets in the environment (none is
    needed) reach no file deploy writes and no output."""
    secrets = ("AKIAH6SECRETKEYID", "h6-secret-access-key-value", "h6-token-value")
    for name, value in zip(("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN"),
                           secrets, strict=True):  # fmt: skip
        monkeypatch.setenv(name, value)
    candidate = deploy_images["good2"].image
    held = deploy(endpoint, candidate, *QUICK, "--on-inconclusive", "hold", cwd=tmp_path)
    assert held.code == 3, held.err
    assert "held the candidate at its share" in held.error
    assert "rolled back" not in held.err
    assert held.outputs["decision"] == "held"
    assert held.outputs["variant-weights"] == "champion=90,candidate=10"
    assert images_serving(docker_client, endpoint) == sorted(
        [deploy_images["good"].image, candidate]
    )
    state = json.loads((endpoint.state_dir / "rollout.json").read_text())
    assert (state["phase"], state["decision"]) == ("stepping", "held")

    again = deploy(endpoint, candidate, *QUICK, "--on-inconclusive", "rollback", cwd=tmp_path)
    assert again.code == 3, again.err
    assert "resuming the rollout" in again.err
    assert again.outputs["decision"] == "rolled-back"
    assert "0 candidate requests" in again.error
    assert images_serving(docker_client, endpoint) == [deploy_images["good"].image]
    written = [p for d in (endpoint.state_dir, endpoint.report_dir) for p in d.rglob("*")]
    texts = [p.read_bytes() for p in written if p.is_file()]
    texts += [(done.err + json.dumps(done.outputs)).encode() for done in (held, again)]
    assert len(texts) > 8
    assert [s for s in secrets for text in texts if s.encode() in text] == []


def test_a_new_rollout_does_not_judge_an_earlier_candidates_requests(
    endpoint: Endpoint,  # noqa: F811 (the fixture)
    docker_client: Any,
    deploy_images: Any,
    tmp_path: Path,
) -> None:
    """The access log outlives rollouts and names the role, not the image: a new rollout read
    it from its start and judged the failing candidate before it as its own (a good candidate
    given no traffic at all was rolled back for "harm", errors it never made)."""
    with Load(endpoint.url, body, rate=60):
        failing = deploy(endpoint, deploy_images["failing"].image, "--steps", "50,100", *FAST,
                         cwd=tmp_path)  # fmt: skip
    assert failing.code == 3 and "errors: candidate" in failing.error, failing.err
    good = deploy(endpoint, deploy_images["good2"].image, *QUICK, cwd=tmp_path)
    assert good.code == 3, good.err
    assert "0 candidate requests" in good.error  # undecided with no traffic, not harm
    assert "harm" not in good.err
    assert images_serving(docker_client, endpoint) == [deploy_images["good"].image]


def test_sigterm_during_a_rollback_still_puts_all_traffic_on_the_champion(
    endpoint: Endpoint,  # noqa: F811 (the fixture)
    docker_client: Any,
    deploy_images: Any,
    tmp_path: Path,
) -> None:
    """CI cancels a job while its deploy rolls a harmful candidate back: the rollback was not
    shielded, so the signal stopped it with the failing candidate still at its share (exit
    143, the state left "rolling-back" until someone re-ran the deploy)."""
    state = endpoint.state_dir / "rollout.json"
    with Load(endpoint.url, body, rate=60) as load:
        process = mlsteps(*endpoint.args(deploy_images["failing"].image, "--steps", "50,100",
                                         *FAST), cwd=tmp_path)  # fmt: skip
        wait_for_phase(endpoint, "stepping", 0)
        deadline = time.monotonic() + 120
        while json.loads(state.read_text())["phase"] == "stepping" and time.monotonic() < deadline:
            time.sleep(0.005)
        process.send_signal(signal.SIGTERM)
        done = finish(process, timeout=120)
    assert done.code == 143, done.err
    assert "rolling back: roll back: errors" in done.err
    assert done.outputs.get("decision") == "rolled-back"
    assert json.loads(state.read_text())["phase"] == "done"
    assert images_serving(docker_client, endpoint) == [deploy_images["good"].image]
    assert "weight=100;" in (endpoint.state_dir / "nginx.conf").read_text()
    assert [o for o in load.outcomes if o.status in BROKEN] == []


def test_a_candidate_that_dies_mid_rollout_is_rolled_back_at_the_next_look(
    endpoint: Endpoint,  # noqa: F811 (the fixture)
    docker_client: Any,
    deploy_images: Any,
    tmp_path: Path,
) -> None:
    """nginx sends a dead candidate's share to the champion: no client fails, the judge sees
    a couple of failed tries and stays undecided, and the rollout waited for --max-bake (90 s
    here, 10 min by default) before rolling back "undecided"."""
    with Load(endpoint.url, body, rate=60) as load:
        process = mlsteps(*endpoint.args(deploy_images["good2"].image, "--steps", "30,100",
                                         *FAST, "--min-bake", "60s"), cwd=tmp_path)  # fmt: skip
        wait_for_phase(endpoint, "stepping", 0)
        time.sleep(3)
        state = json.loads((endpoint.state_dir / "state.json").read_text())
        docker_client.containers.get(state["candidate"]["container"]).kill()
        killed = time.monotonic()
        done = finish(process, timeout=120)
    assert done.code == 3, done.err
    assert "stopped running" in done.error
    assert time.monotonic() - killed < 30
    assert images_serving(docker_client, endpoint) == [deploy_images["good"].image]
    assert [o for o in load.outcomes if o.status in BROKEN] == []


def test_a_damaged_judge_state_stops_the_re_run_clearly_leaving_the_candidate_held(
    endpoint: Endpoint,  # noqa: F811 (the fixture)
    docker_client: Any,
    deploy_images: Any,
    tmp_path: Path,
) -> None:
    candidate = deploy_images["good2"].image
    held = deploy(endpoint, candidate, *QUICK, "--on-inconclusive", "hold", cwd=tmp_path)
    assert held.code == 3 and held.outputs["decision"] == "held", held.err
    path = endpoint.state_dir / "rollout.json"
    state = json.loads(path.read_text())
    state["judge"]["judged"] = [["not", "a", "stratum"]]
    path.write_text(json.dumps(state))
    again = deploy(endpoint, candidate, *QUICK, "--on-inconclusive", "hold", cwd=tmp_path)
    assert again.code == 1, again.err
    assert "is damaged (the judge's part" in again.error and "Traceback" not in again.err
    # Nothing moved: the held candidate keeps its share until a person looks.
    assert images_serving(docker_client, endpoint) == sorted(
        [deploy_images["good"].image, candidate]
    )
