"""The fixtures' real parts do what the other tests rely on them for."""

from __future__ import annotations

import io
import tarfile
import uuid
from pathlib import Path

import pytest
import requests

from tests import services

pytestmark = pytest.mark.services


def test_missing_part_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no frobnicator"):
        services.missing("no frobnicator")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match=r"no frobnicator; run `bash \.ci/setup`"):
        services.missing("no frobnicator")


def test_base_image_has_python_venv_pip_and_ca_bundle(docker_client, base_image: str) -> None:
    script = (
        "python3 -m venv /tmp/v && /tmp/v/bin/python -m pip --version"
        " && test -s /etc/ssl/certs/ca-certificates.crt && echo bundle-ok"
    )
    out = docker_client.containers.run(base_image, ["sh", "-c", script], remove=True).decode()
    assert "pip " in out and "python 3." in out
    assert out.strip().endswith("bundle-ok")


def _tiny_image_context(marker: str) -> io.BytesIO:
    """A build context for an image of one small file, unique per call so a push uploads."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in {
            "Dockerfile": b"FROM scratch\nCOPY marker /marker\n",
            "marker": marker.encode(),
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    return context


def test_registry_accepts_a_push_and_serves_it_by_digest(docker_client, registry: str) -> None:
    marker = uuid.uuid4().hex
    repository = f"{registry}/mlsteps-test/tiny"
    image, _ = docker_client.images.build(
        fileobj=_tiny_image_context(marker),
        custom_context=True,
        tag=f"{repository}:{marker}",
        rm=True,
    )
    try:
        digest = None
        for event in docker_client.images.push(repository, tag=marker, stream=True, decode=True):
            assert "error" not in event, event
            digest = (event.get("aux") or {}).get("Digest", digest)
        assert digest and digest.startswith("sha256:")

        base = f"http://{registry}/v2/mlsteps-test/tiny"
        tags = requests.get(f"{base}/tags/list", timeout=10).json()["tags"]
        assert marker in tags
        accept = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
        by_tag = requests.head(f"{base}/manifests/{marker}", headers=accept, timeout=10)
        assert by_tag.headers["Docker-Content-Digest"] == digest
        by_digest = requests.get(f"{base}/manifests/{digest}", headers=accept, timeout=10)
        assert by_digest.status_code == 200
        assert by_digest.json()["config"]["digest"] == image.id
    finally:
        docker_client.images.remove(image.id, force=True)


def test_registry_server_stops_and_frees_its_port(tmp_path: Path) -> None:
    reg = services.start_registry(tmp_path)
    assert services.http_ok(f"http://{reg.address}/v2/")
    reg.server.stop()
    assert reg.server.process.poll() is not None
    assert not services.http_ok(f"http://{reg.address}/v2/")


def test_mlflow_server_creates_an_experiment_over_rest(mlflow_server) -> None:
    api = f"{mlflow_server.uri}/api/2.0/mlflow"
    name = f"services-{uuid.uuid4().hex[:8]}"
    created = requests.post(f"{api}/experiments/create", json={"name": name}, timeout=10)
    created.raise_for_status()
    experiment_id = created.json()["experiment_id"]

    found = requests.get(
        f"{api}/experiments/get-by-name", params={"experiment_name": name}, timeout=10
    ).json()["experiment"]
    assert found["experiment_id"] == experiment_id
    assert found["lifecycle_stage"] == "active"
    # The same name twice is refused: the server really stores what it was sent.
    again = requests.post(f"{api}/experiments/create", json={"name": name}, timeout=10)
    assert again.status_code == 400
    assert again.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"


def test_trainer_image_has_the_pinned_sklearn_and_mlflow(docker_client, trainer_image: str) -> None:
    pins = dict(
        line.split("==")
        for line in (services.QUICKSTART / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    out = docker_client.containers.run(
        trainer_image,
        ["python", "-c", "import sklearn, mlflow; print(sklearn.__version__, mlflow.__version__)"],
        remove=True,
    ).decode()
    assert out.split() == [pins["scikit-learn"], pins["mlflow-skinny"]]


def test_no_labelled_containers_sees_stopped_containers(docker_client, base_image: str) -> None:
    probe = uuid.uuid4().hex
    label = f"io.mlsteps.test-probe={probe}"
    container = docker_client.containers.create(
        base_image, ["true"], labels={"io.mlsteps.test-probe": probe}
    )
    try:
        # Created, never started: the helper must still see it.
        found = services.no_labelled_containers(docker_client, label, prefix=None)
        assert [c.id for c in found] == [container.id]
        assert container.id in {c.id for c in services.no_labelled_containers(docker_client)}
    finally:
        container.remove(force=True)
    assert services.no_labelled_containers(docker_client, label, prefix=None) == []
