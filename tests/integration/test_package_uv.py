"""The dependencies image's installer against the real engine: uv fetched for the step that
fills the venv and nowhere in the image, pip with one line where the base configures pip in a
way uv does not read or uv cannot be had, and a base's own index never bypassed for the public
one.

Each build here passes --no-cache true: the engine keeps layer caches between runs, and a
cached install step prints no installer line.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.flavour_models import FLAVOURS
from tests.integration.test_package import _assert_clean, outputs_of, package
from tests.services import _build_context

pytestmark = pytest.mark.services

UV_LINE = "mlsteps: installed the requirements with uv "
PIP_LINE = "mlsteps: installing the requirements with pip, not uv: "
# The installed distributions, read in the image the way pip and uv would.
DISTRIBUTIONS = (
    "import importlib.metadata as m, json; print(json.dumps(sorted("
    "(d.metadata['Name'].lower().replace('_', '-'), d.version) for d in m.distributions())))"
)


def run_in(docker_client: Any, image: str, *argv: str) -> str:
    out: bytes = docker_client.containers.run(
        image, list(argv), entrypoint=[], user="root", remove=True
    )
    return out.decode()


def distributions(docker_client: Any, image: str) -> list[list[str]]:
    found: list[list[str]] = json.loads(
        run_in(docker_client, image, "/opt/venv/bin/python", "-c", DISTRIBUTIONS)
    )
    return found


@pytest.fixture(scope="module")
def iris_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return FLAVOURS["sklearn"](tmp_path_factory.mktemp("uv") / "model").model_dir


@pytest.fixture()
def derived_base(docker_client: Any, python_slim_image: str) -> Iterator[Any]:
    """Make a base image FROM python:3.11-slim with the given Dockerfile lines; removed after."""
    made: list[str] = []

    def make(tag: str, *lines: str) -> str:
        dockerfile = f"FROM {python_slim_image}\n" + "\n".join(lines) + "\n"
        docker_client.images.build(
            fileobj=_build_context({"Dockerfile": dockerfile.encode()}), custom_context=True,
            tag=tag, rm=True, forcerm=True,
        )  # fmt: skip
        made.append(tag)
        return tag

    yield make
    for tag in made:
        docker_client.images.remove(tag, force=True)


def test_uv_fills_the_venv_and_leaves_nothing_and_pip_the_same_where_the_base_configures_it(
    docker_client: Any, iris_model: Path, tmp_path: Path, derived_base: Any
) -> None:
    done = package(
        "--model-uri", str(iris_model), "--repository", "it-uv", "--no-cache", "true",
        cwd=tmp_path,
    )  # fmt: skip
    image = outputs_of(done)["image"]
    assert done.stderr.count(UV_LINE) == 1 and PIP_LINE not in done.stderr
    assert "mlsteps: fetched uv for this step in " in done.stderr
    assert "predictions equal the model's own" in done.stderr  # the smoke test
    # No uv in the image: no file of it in any layer (it was fetched and removed in the one
    # step that fills the venv, so no layer ever held it), and no layer copied one in.
    found = run_in(
        docker_client, image, "sh", "-c",
        "find / -xdev \\( -name uv -o -name 'uv-*' -o -name mlsteps-uv \\) -print",
    )  # fmt: skip
    assert found == ""
    history = [str(h.get("CreatedBy", "")) for h in docker_client.images.get(image).history()]
    assert [h for h in history if "COPY" in h and "uv" in h.replace("uvicorn", "")] == []
    layers = docker_client.api.inspect_image(image)["RootFS"]["Layers"]
    saved = b"".join(docker_client.images.get(image).save(named=True))
    assert b"mlsteps-uv/bin/uv" not in saved and len(layers) > 1
    with_uv = distributions(docker_client, image)
    pins = [line for line in (iris_model / "requirements.txt").read_text().split() if "==" in line]
    for name, version in (pin.split("==") for pin in pins):  # the model's pins, met
        assert [name.replace("mlflow", "mlflow-skinny"), version] in with_uv

    # A base that configures pip in a file: pip installs, with one line saying why, and the
    # same distributions at the same versions.
    base = derived_base(
        "it-uv-base-pipconf:1",
        "RUN printf '[global]\\ncert = /etc/ssl/certs/ca-certificates.crt\\n' >/etc/pip.conf",
    )
    done = package(
        "--model-uri", str(iris_model), "--repository", "it-uv-pip", "--no-cache", "true",
        "--base-image", base, cwd=tmp_path,
    )  # fmt: skip
    with_pip = outputs_of(done)["image"]
    said = [line.strip() for line in done.stderr.splitlines() if line.startswith("  mlsteps: in")]
    assert said[0] == (
        PIP_LINE + "the base configures pip in /etc/pip.conf, which uv does not read"
    ), said
    assert said[1].startswith("mlsteps: installed the requirements with pip in ") and len(said) == 2
    assert "predictions equal the model's own" in done.stderr
    assert distributions(docker_client, with_pip) == with_uv
    for tag in (image, with_pip):
        docker_client.images.remove(tag)
    _assert_clean(docker_client, tmp_path)


def test_a_bases_own_index_is_never_bypassed_for_the_public_one(
    docker_client: Any, iris_model: Path, tmp_path: Path, derived_base: Any
) -> None:
    """PIP_INDEX_URL in a base names its (internal) index: uv is fetched from it and told it
    (tests/unit/services/test_installer.py shows how), and where that index has nothing (here:
    nothing answers) the build fails as pip's would, never taking uv or the packages from the
    default index."""
    base = derived_base("it-uv-base-index:1", "ENV PIP_INDEX_URL=http://127.0.0.1:9/simple")
    done = package(
        "--model-uri", str(iris_model), "--repository", "it-uv-index", "--no-cache", "true",
        "--base-image", base, "--smoke-test", "false", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]
    assert UV_LINE not in done.stderr
    # The build's own lines (the error's copy of the build output is indented further).
    said = [line for line in done.stderr.splitlines() if line.startswith("  " + PIP_LINE)]
    assert len(said) == 1 and "the base's pip could not fetch uv" in said[0], said
    error = json.loads(done.stdout)["error"]
    assert "could not be installed" in error, error
    # pip found no version of a pin the default index holds (the smoke tests install it from
    # there): it asked the base's index only.
    after = done.stderr.split(said[0])[1]
    assert "mlflow-skinny==" in after and "(from versions: none)" in after, after[-3000:]
    assert not docker_client.images.list(name="it-uv-index")
    _assert_clean(docker_client, tmp_path)


def test_where_uv_cannot_be_had_pip_installs_with_one_line_in_the_real_base(
    docker_client: Any, python_slim_image: str, tmp_path: Path
) -> None:
    """No network: the base's pip cannot fetch uv. pip then installs (here a wheel on disk,
    the one thing it can reach), with the one line saying why, and nothing of uv is left; the
    installer script run as the build runs it, on the real base."""
    import subprocess
    import sys

    from steps.services.images import install_requirements

    shutil.copy(install_requirements.__file__, tmp_path / "install_requirements.py")
    (tmp_path / "install-settings.json").write_text(
        json.dumps({"index_url": None, "extra_index_urls": [], "cert": None})
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "six==1.17.0",
         "-d", str(tmp_path)],
        check=True,
    )  # fmt: skip
    wheel = next(tmp_path.glob("six-*.whl")).name
    (tmp_path / "requirements.txt").write_text(f"/opt/mlsteps/{wheel}\n")
    script = (
        "python3 -I /opt/mlsteps/install_requirements.py && test ! -e /tmp/mlsteps-uv "
        "&& /opt/venv/bin/python -c 'import six'"
    )
    out = docker_client.containers.run(
        python_slim_image, ["sh", "-c", script], network_mode="none",
        volumes={str(tmp_path): {"bind": "/opt/mlsteps", "mode": "rw"}}, user="root",
        remove=True,
    ).decode()  # fmt: skip
    said = [line for line in out.splitlines() if line.startswith("mlsteps:")]
    assert len(said) == 2, out
    assert said[0].startswith(PIP_LINE + "the base's pip could not fetch uv ("), said
    assert said[1].startswith("mlsteps: installed the requirements with pip in "), said
