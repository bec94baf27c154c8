"""`.ci/setup` is safe to re-run: on a machine it already set up, it changes nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

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


# ----- the venv stage's installer: uv, else pip with a line saying why ------------------------
# Run on a tiny project of the same shape (pyproject.toml with a dev extra, .ci/constraints.txt
# pinning uv) so that each case installs in seconds, not the whole dev venv.

TINY_PYPROJECT = """[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "setup-probe"
version = "1.0"
dependencies = []

[project.optional-dependencies]
dev = ["six"]

[tool.setuptools]
py-modules = []
"""


def _uv_pin() -> str:
    text = (services.REPO / ".ci" / "constraints.txt").read_text()
    return next(line for line in text.splitlines() if line.startswith("uv=="))


@pytest.fixture
def tiny_project(tmp_path):
    (tmp_path / ".ci").mkdir()
    (tmp_path / ".ci" / "setup").write_bytes(SETUP.read_bytes())
    (tmp_path / ".ci" / "constraints.txt").write_text(f"{_uv_pin()}\nsix==1.17.0\n")
    (tmp_path / "pyproject.toml").write_text(TINY_PYPROJECT)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    return tmp_path


def _venv_stage(project, extra_path: str = "") -> subprocess.CompletedProcess[str]:
    import os

    # The machine's PATH without any uv on it (the project venv's bin is not on PATH in CI,
    # but a developer's shell may have one).
    path = ":".join(
        part for part in os.environ["PATH"].split(":") if not (Path(part) / "uv").exists()
    )
    return subprocess.run(
        ["bash", str(project / ".ci" / "setup"), "venv"],
        cwd=project,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PATH": f"{extra_path}:{path}" if extra_path else path},
    )


def _installed(project) -> str:
    return subprocess.run(
        [str(project / ".venv" / "bin" / "python"), "-c", "import six; print(six.__version__)"],
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_the_venv_stage_fetches_uv_once_and_installs_with_it(tiny_project) -> None:
    result = _venv_stage(tiny_project)
    assert result.returncode == 0, result.stdout + result.stderr
    version = _uv_pin().removeprefix("uv==")
    assert f"setup: installing mlsteps[dev] into .venv with uv {version}" in result.stdout
    assert "pip instead" not in result.stdout
    assert _installed(tiny_project) == "1.17.0"
    # uv lives in .ci/tools (ignored by git), at the pinned version; pip is in the venv for
    # whoever runs `.venv/bin/python -m pip`.
    assert (tiny_project / ".ci/tools/uv/.version").read_text().strip() == version
    assert (tiny_project / ".venv/bin/pip").exists()
    assert not (tiny_project / ".ci/tools/uv.tmp").exists()


def test_a_uv_that_fails_leaves_the_install_to_pip_with_one_line(tiny_project) -> None:
    broken = tiny_project / "bin" / "uv"
    broken.write_text("#!/bin/sh\n[ \"$1\" = --version ] && echo 'uv 0.0.0' && exit 0\nexit 1\n")
    broken.chmod(0o755)
    result = _venv_stage(tiny_project, extra_path=str(broken.parent))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if "pip instead" in line]
    assert lines == [
        f"setup: uv could not install it (see {tiny_project}/.ci/logs/uv-install.log): installing "
        "mlsteps[dev] into .venv with pip instead (a few minutes)"
    ]
    assert _installed(tiny_project) == "1.17.0"


def test_uv_that_cannot_be_had_leaves_the_install_to_pip_with_one_line(tiny_project) -> None:
    # A pin no index holds: pip cannot fetch that uv, and the venv still gets made.
    constraints = tiny_project / ".ci" / "constraints.txt"
    constraints.write_text("uv==0.0.0.dev999\nsix==1.17.0\n")
    result = _venv_stage(tiny_project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        f"setup: uv could not be had (see {tiny_project}/.ci/logs/uv-bootstrap.log): installing "
        "mlsteps[dev] into .venv with pip instead (a few minutes)"
    ) in result.stdout
    assert _installed(tiny_project) == "1.17.0"
    assert not (tiny_project / ".ci/tools/uv").exists()
    assert not (tiny_project / ".ci/tools/uv.tmp").exists()
