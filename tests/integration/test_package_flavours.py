"""Every model flavour package covers, end to end on a real Docker Engine: packaged FROM
python:3.11-slim, smoke-tested, then served, and its answers on rows the model never saw equal
to pyfunc's own prediction on this machine.

The models are tests/flavour_models.py's: each written by its flavour's own save_model with
the input example a user gives. Two of them failed before issue 16: LightGBM, whose
lib_lightgbm.so needs libgomp.so.1, the OpenMP runtime a slim base lacks; and a model logged
from code, whose requirements name neither pandas nor numpy, which mlflow.pyfunc imports.
The system libraries' failure paths run on bases made here from python:3.11-slim: one whose
apt knows no package, one without apt-get.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from steps.package.smoke import same_predictions
from tests.flavour_models import FLAVOURS, Flavour
from tests.integration.test_package import _assert_clean, outputs_of, package, serve
from tests.integration.test_train import mlsteps
from tests.services import _build_context

pytestmark = pytest.mark.services

NO_APT_SOURCES = "mlsteps-test-base:no-apt-sources"
NO_APT = "mlsteps-test-base:no-apt-get"


@pytest.fixture(scope="module")
def flavours(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Flavour]:
    root = tmp_path_factory.mktemp("flavours")
    return {name: save(root / name) for name, save in FLAVOURS.items()}


@pytest.fixture(autouse=True)
def _base(python_slim_image: str) -> None:
    """Every build here starts FROM the local python:3.11-slim."""


@pytest.fixture(autouse=True)
def _tracking_uri_stays_in_the_test(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def served_predictions(url: str, rows: Any) -> Any:
    body = json.dumps({"dataframe_split": json.loads(rows.to_json(orient="split"))})
    answer = requests.post(
        f"{url}/invocations", data=body, headers={"Content-Type": "application/json"}, timeout=60
    )
    assert answer.status_code == 200, answer.text[:2000]
    return answer.json()["predictions"]


def pyfunc_predictions(model_dir: Path, rows: Any) -> Any:
    """The model's own prediction here, in the JSON the scoring server writes of it."""
    import mlflow.pyfunc
    from mlflow.pyfunc.scoring_server import predictions_to_json

    predictions = mlflow.pyfunc.load_model(str(model_dir)).predict(rows)
    buffer = io.StringIO()
    predictions_to_json(predictions, buffer)
    return json.loads(buffer.getvalue())["predictions"]


@pytest.fixture()
def images(docker_client: Any) -> Iterator[list[str]]:
    """Image tags a test made; removed after it (the dependencies images stay cached)."""
    made: list[str] = []
    yield made
    for tag in made:
        with contextlib.suppress(Exception):  # already gone
            docker_client.images.remove(tag)


@pytest.mark.parametrize("name", list(FLAVOURS))
def test_flavour_is_packaged_served_and_answers_as_pyfunc_does(
    name: str, flavours: dict[str, Flavour], docker_client: Any, images: list[str],
    tmp_path: Path,
) -> None:  # fmt: skip
    flavour = flavours[name]
    done = package("--model-uri", str(flavour.model_dir), "--repository", f"it-flavour-{name}",
                   cwd=tmp_path)  # fmt: skip
    out = outputs_of(done)
    images.append(out["image"])
    if (flavour.model_dir / "serving_input_example.json").exists():
        assert "predictions equal the model's own" in done.stderr
    container, url = serve(docker_client, out["image"])
    try:
        served = served_predictions(url, flavour.unseen)
    finally:
        container.remove(force=True)
    expected = pyfunc_predictions(flavour.model_dir, flavour.unseen)
    assert len(expected) == len(flavour.unseen) == 40
    assert same_predictions(served, expected), (served[:5], expected[:5])
    _assert_clean(docker_client, tmp_path)


def shell(docker_client: Any, image: str, script: str) -> list[str]:
    """The words a shell script prints in the image (its exit code ignored)."""
    out = docker_client.containers.run(
        image, ["-c", f"{{ {script}; }} 2>/dev/null; true"], entrypoint=["sh"], user="root",
        remove=True,
    )  # fmt: skip
    return list(out.decode().split())


def test_lightgbm_gets_the_openmp_runtime_in_its_dependencies_layer(
    flavours: dict[str, Flavour], docker_client: Any, images: list[str], tmp_path: Path
) -> None:
    """The server died at the smoke test with `libgomp.so.1: cannot open shared object file`:
    the build now finds that lib_lightgbm.so needs it and installs libgomp1."""
    installed = "dpkg -s libgomp1 | grep -c '^Status: install ok installed'"
    assert shell(docker_client, "python:3.11-slim", installed) == ["0"]  # the premise
    done = package("--model-uri", str(flavours["lightgbm"].model_dir), "--repository",
                   "it-flavour-lightgbm", "--no-cache", "true", cwd=tmp_path)  # fmt: skip
    out = outputs_of(done)
    images.append(out["image"])
    assert "mlsteps: installed the system package libgomp1 (libgomp.so.1 for lightgbm)" in (
        done.stderr
    )
    assert "predictions equal the model's own" in done.stderr
    # Installed, and apt's package lists are not left in the layer.
    lists = "ls -A /var/lib/apt/lists | wc -l"
    assert shell(docker_client, out["image"], f"{installed}; {lists}") == ["1", "0"]
    _assert_clean(docker_client, tmp_path)


def test_a_model_from_code_gets_pandas_its_requirements_do_not_name(
    flavours: dict[str, Flavour], tmp_path: Path
) -> None:
    """Its requirements are mlflow and cloudpickle only (the premise); the image's are those
    plus numpy and pandas. The matrix above serves it."""
    model_dir = flavours["model-from-code"].model_dir
    assert (model_dir / "requirements.txt").read_text().split() == [
        line for line in (model_dir / "requirements.txt").read_text().split()
        if line.startswith(("mlflow==", "cloudpickle=="))
    ]  # fmt: skip
    done = mlsteps("--dry-run", "--json", "package", "--model-uri", str(model_dir),
                   "--system-package", "libgomp1", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    deps = next(a for a in json.loads(done.stdout)["plan"] if a["kind"] == "image.dependencies")
    assert deps["system_packages"] == ["libgomp1"]
    assert "and the system packages libgomp1 (--system-package)" in done.stderr
    assert [r.split("==")[0] for r in deps["requirements"]] == [
        "mlflow-skinny", "cloudpickle", "uvicorn>=0.20,<1", "numpy", "pandas"
    ]  # fmt: skip


@pytest.fixture(scope="module")
def broken_bases(docker_client: Any, python_slim_image: str) -> None:
    """python:3.11-slim whose apt knows no package, and one with no apt-get at all."""
    for tag, step in (
        (NO_APT_SOURCES, "rm -rf /etc/apt/sources.list /etc/apt/sources.list.d/* "
                         "/var/lib/apt/lists/*"),
        (NO_APT, "rm -f /usr/bin/apt-get"),
    ):  # fmt: skip
        dockerfile = f"FROM {python_slim_image}\nRUN {step}\n"
        docker_client.images.build(
            fileobj=_build_context({"Dockerfile": dockerfile.encode()}), custom_context=True,
            tag=tag, rm=True, forcerm=True,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("base", "says"),
    [
        (NO_APT_SOURCES, "the shared library libgomp.so.1, needed by the Python package lightgbm "
         "(lib/python3.11/site-packages/lightgbm/lib/lib_lightgbm.so), is not in the base image "
         "and no package found here provides it. Give --system-package with the Debian package "
         "that holds it, or --base-image with an image that has it."),
        (NO_APT, "the base image has no apt-get, so the libraries libgomp.so.1 (for lightgbm) "
         "cannot be installed. Give --base-image with an image that has them."),
    ],
)  # fmt: skip
def test_a_library_no_package_provides_fails_the_build_naming_it(
    base: str, says: str, broken_bases: None, flavours: dict[str, Flavour], docker_client: Any,
    tmp_path: Path,
) -> None:  # fmt: skip
    """At build time, never first at the smoke test: exit 1 naming the library, the Python
    package that needs it and the options; no image, container or temporary file left."""
    repository = "it-flavour-no-library"
    done = package("--model-uri", str(flavours["lightgbm"].model_dir), "--base-image", base,
                   "--repository", repository, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]
    error = json.loads(done.stdout)["error"]
    assert error == f"the dependencies image did not build on {base}: {says}"
    assert "smoke test" not in done.stderr and "Traceback" not in done.stderr
    assert not docker_client.images.list(name=repository)
    _assert_clean(docker_client, tmp_path)


def test_system_packages_asked_for_are_installed_and_an_unknown_one_is_named(
    flavours: dict[str, Flavour], docker_client: Any, images: list[str], tmp_path: Path
) -> None:
    model = str(flavours["model-from-code"].model_dir)
    done = package("--model-uri", model, "--repository", "it-flavour-unknown-package",
                   "--system-package", "mlsteps-no-such-package", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]
    assert json.loads(done.stdout)["error"] == (
        "the dependencies image did not build on python:3.11-slim: --system-package "
        "mlsteps-no-such-package: no such package in the base image's package lists. Check the "
        "name (apt-cache search on a machine of the same distribution)."
    )
    assert not docker_client.images.list(name="it-flavour-unknown-package")
    _assert_clean(docker_client, tmp_path)

    env = {"MLSTEPS_PACKAGE_SYSTEM_PACKAGE": "libgomp1\nzlib1g"}  # one per line, as GitHub's
    # --no-cache: built here even when an earlier run left the same dependencies image.
    done = package("--model-uri", model, "--repository", "it-flavour-system-package",
                   "--no-cache", "true", cwd=tmp_path, env=env)  # fmt: skip
    out = outputs_of(done)
    images.append(out["image"])
    assert "mlsteps: installed the system package libgomp1 (--system-package)" in done.stderr
    installed = "dpkg -s libgomp1 | grep -c '^Status: install ok installed'"
    assert shell(docker_client, out["image"], installed) == ["1"]
    _assert_clean(docker_client, tmp_path)
