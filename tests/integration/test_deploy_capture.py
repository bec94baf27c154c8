"""Data capture as deploy uses it, end to end: two model servers (deploy's `good` and
`disagreeing`, on this machine's Python) given the same request ids by the client as nginx
gives them, their capture read back with steps/deploy/capture.py and joined into Pairs."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import requests

from steps.deploy.capture import CaptureReader, pairs
from steps.serve.server import sampled
from tests import deploy_models
from tests.integration.test_serve_capture import start_server

pytestmark = pytest.mark.services


def test_both_variants_capture_the_same_requests_and_their_disagreements_are_found(
    tmp_path: Path,
) -> None:
    capture = tmp_path / "capture"
    capture.mkdir()
    rows = [(n / 8, (n % 7) / 3) for n in range(200)]
    servers = {}
    try:
        for variant, name in (("champion", "good"), ("candidate", "disagreeing")):
            (tmp_path / variant).mkdir()
            model = deploy_models.save(name, tmp_path / variant)
            servers[variant] = start_server(
                model, tmp_path, MLSTEPS_CAPTURE_DIR=str(capture), MLSTEPS_VARIANT=variant,
                MLSTEPS_CAPTURE_SAMPLE="0.5",
            )  # fmt: skip
        for n, row in enumerate(rows):
            for _, url in servers.values():
                answer = requests.post(
                    f"{url}/invocations", data=deploy_models.body([row]), timeout=30,
                    headers={"Content-Type": "application/json", "X-Request-ID": f"{n:032x}"},
                )  # fmt: skip
                assert answer.status_code == 200
    finally:
        for server, _ in servers.values():
            server.send_signal(signal.SIGTERM)
            server.communicate(timeout=30)

    champion = CaptureReader(capture, "champion").read()
    candidate = CaptureReader(capture, "candidate").read()
    assert len(champion) == len(candidate) == 200  # every request has its line
    picked = {f"{n:032x}" for n in range(200) if sampled(f"{n:032x}", 0.5)}
    assert {r.request_id for r in champion if r.output} == picked
    assert {r.request_id for r in candidate if r.output} == picked  # the same requests

    joined = pairs(champion, candidate, tolerance=1e-6)
    assert {p.request_id for p in joined} == picked
    differ = {f"{n:032x}" for n, row in enumerate(rows) if deploy_models.disagrees(*row)}
    assert {p.request_id for p in joined if not p.agree} == differ & picked
    assert 5 < len(differ & picked) < 40  # the premise: about a fifth of about 100
    for pair in joined:
        n = int(pair.request_id, 16)
        assert pair.champion_value == deploy_models.expected(*rows[n])
        assert pair.candidate_value is not None
        assert abs(pair.candidate_value - pair.champion_value) == pytest.approx(
            0.0 if pair.agree else 1.0
        )
