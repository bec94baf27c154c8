"""`.ci/setup` is safe to re-run: on a machine it already set up, it changes nothing."""

from __future__ import annotations

import subprocess

import pytest

from tests import services

pytestmark = pytest.mark.services

SETUP = services.REPO / ".ci" / "setup"


def _setup(*stages: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SETUP), *stages],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_setup_again_keeps_the_engine_and_the_base_image(docker_client, base_image: str) -> None:
    before = docker_client.images.get(base_image).id
    result = _setup("docker", "base-image")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "setup: docker engine answering on /var/run/docker.sock",
        f"setup: base image {base_image} present",
        "setup: done",
    ]
    assert docker_client.images.get(base_image).id == before


def test_setup_rejects_an_unknown_stage() -> None:
    result = _setup("no-such-stage")
    assert result.returncode == 2
    assert "unknown stage 'no-such-stage'" in result.stdout
