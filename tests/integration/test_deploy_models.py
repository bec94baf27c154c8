"""deploy's test models (tests/deploy_models.py) do in their images what they say they do:
the other deploy tests count on it."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from tests import deploy_models
from tests.integration.test_package import serve

pytestmark = pytest.mark.services

ROWS = [(n / 8, (n % 7) / 3) for n in range(300)]


def post(url: str, rows: list[tuple[float, float]]) -> tuple[int, Any, float]:
    started = time.monotonic()
    answer = requests.post(
        f"{url}/invocations", data=deploy_models.body(rows), timeout=30,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    return answer.status_code, answer.json(), time.monotonic() - started


def test_each_test_model_behaves_as_documented(
    docker_client: Any, deploy_images: dict[str, deploy_models.DeployImage]
) -> None:
    assert set(deploy_images) == {"good", "good2", "failing", "slow", "disagreeing"}
    assert len({made.image for made in deploy_images.values()}) == 5
    expected = [deploy_models.expected(*row) for row in ROWS]
    different = [deploy_models.disagrees(*row) for row in ROWS]
    assert 0.12 < sum(different) / len(ROWS) < 0.28  # the premise: about a fifth

    answers: dict[str, list[tuple[int, Any, float]]] = {}
    for name, made in deploy_images.items():
        container, url = serve(docker_client, made.image)
        try:
            post(url, ROWS[:1])  # warm: the first call loads what the model imports
            answers[name] = [post(url, [row]) for row in ROWS[:200]]
            answers[name].append(post(url, ROWS))  # all rows in one request
        finally:
            container.remove(force=True)

    for name in ("good", "good2", "slow"):
        assert [a[0] for a in answers[name]] == [200] * 201, name
        assert [a[1]["predictions"][0] for a in answers[name][:200]] == expected[:200], name
        assert answers[name][200][1]["predictions"] == expected, name
    failed = [a for a in answers["failing"] if a[0] != 200]
    assert all(a[0] == 500 for a in failed)  # a server error, never the client's (4xx)
    assert 5 <= len(failed) <= 40  # 10% of 201 calls: 20 expected
    served = [a for a in answers["failing"][:200] if a[0] == 200]
    assert all(a[1]["predictions"][0] in expected for a in served)
    disagreeing = answers["disagreeing"][200][1]["predictions"]
    assert [got != want for got, want in zip(disagreeing, expected, strict=True)] == different
    moved = [g - w for g, w in zip(disagreeing, expected, strict=True) if g != w]
    assert all(abs(step - 1.0) < 1e-9 for step in moved)

    def median(name: str) -> float:
        times = sorted(a[2] for a in answers[name][:200])
        return times[100]

    assert median("slow") >= deploy_models.DELAY_SECONDS
    assert median("slow") - median("good") > 0.02
