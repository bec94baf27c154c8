"""The fixtures' real parts do what the other tests rely on them for."""

from __future__ import annotations

import base64
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


@pytest.mark.slow
def test_python_slim_image_serves_build_docker_and_a_venv(
    docker_client, python_slim_image: str
) -> None:
    # What `mlflow models build-docker` and the package step do in it: apt installs nginx,
    # `pip` installs system-wide, `python` runs the entrypoint, a venv installs from the index.
    script = (
        "set -e; apt-get -y update >/tmp/apt.log 2>&1 || { tail /tmp/apt.log; exit 1; }"
        "; apt-get install -y --no-install-recommends nginx >/tmp/apt.log 2>&1"
        " || { tail /tmp/apt.log; exit 1; }"
        "; nginx -v 2>&1; pip --version"
        "; pip install --no-cache-dir --quiet six 2>/dev/null"
        "; python -c 'import six, sys; print(\"system-six\", six.__file__, sys.version)'"
        "; python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir --quiet six"
        "; /opt/venv/bin/python -c 'import six; print(\"venv-six\", six.__file__)'"
    )
    out = docker_client.containers.run(
        python_slim_image, ["sh", "-c", script], remove=True
    ).decode()
    assert "nginx version: nginx/" in out
    assert "pip " in out and "(python 3.11)" in out
    assert "system-six /usr/local/lib/python3.11/dist-packages/six.py 3.11." in out
    assert "venv-six /opt/venv/lib/python3.11/site-packages/six.py" in out


def test_python_slim_image_comes_from_the_base_or_is_left_alone(
    docker_client, base_image: str, python_slim_image: str
) -> None:
    image = docker_client.images.get(python_slim_image)
    if image.labels.get(services.PYTHON_SLIM_LABEL) != base_image:
        pytest.skip(f"{python_slim_image} is not ours (no {services.PYTHON_SLIM_LABEL} label)")
    # Built on the base: the base's layers are the first of ours.
    base_layers = docker_client.images.get(base_image).attrs["RootFS"]["Layers"]
    assert image.attrs["RootFS"]["Layers"][: len(base_layers)] == base_layers
    # ... and no image built FROM it makes its containers look like the steps' own.
    assert not any(key.startswith(services.LABEL_PREFIX) for key in image.labels)
    assert services.ensure_python_slim_image(docker_client) == python_slim_image
    assert docker_client.images.get(python_slim_image).id == image.id


def test_python_slim_image_not_ours_is_kept_and_a_wrong_version_is_refused(
    docker_client, base_image: str
) -> None:
    version = f"0.{uuid.uuid4().int % 10**8}"  # a tag no real image has
    tag = f"python:{version}-slim"
    docker_client.images.get(base_image).tag(tag)  # stands for an official image: no label
    try:
        assert services.ensure_python_slim_image(docker_client, version) == tag
        assert docker_client.images.get(tag).id == docker_client.images.get(base_image).id
    finally:
        docker_client.images.remove(tag)
    with pytest.raises(pytest.fail.Exception, match=rf"has Python 3\.\d+, not {version}"):
        services.ensure_python_slim_image(docker_client, version)
    assert not services.image_exists(docker_client, tag)


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


def _push(client, repository: str, tag: str, auth: dict[str, str] | None = None) -> list[dict]:
    return list(client.images.push(repository, tag=tag, auth_config=auth, stream=True, decode=True))


def _pushed_digest(events: list[dict]) -> str:
    assert not [e for e in events if "error" in e], events[-3:]
    digests = [e["aux"]["Digest"] for e in events if "Digest" in (e.get("aux") or {})]
    assert len(digests) == 1 and digests[0].startswith("sha256:"), events[-3:]
    return str(digests[0])


def _tiny_image(client, repository: str) -> tuple[str, str]:
    """Build a one-file image tagged REPOSITORY:MARKER; returns (marker, image id)."""
    marker = uuid.uuid4().hex
    image, _ = client.images.build(
        fileobj=_tiny_image_context(marker),
        custom_context=True,
        tag=f"{repository}:{marker}",
        rm=True,
    )
    return marker, str(image.id)


MANIFEST_V2 = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}


def test_auth_registry_takes_a_push_with_the_password_and_refuses_others(
    docker_client, auth_registry: services.AuthRegistry
) -> None:
    repository = f"{auth_registry.address}/mlsteps-test/locked"
    marker, image_id = _tiny_image(docker_client, repository)
    try:
        wrong = {"username": auth_registry.username, "password": auth_registry.password + "x"}
        events = _push(docker_client, repository, marker, wrong)
        assert events[-1]["error"] == "unauthorized: authentication required"
        assert events[-1]["errorDetail"]["message"] == events[-1]["error"]
        none = _push(docker_client, repository, marker, {})
        assert none[-1]["error"] == "no basic auth credentials"

        digest = _pushed_digest(_push(docker_client, repository, marker, auth_registry.auth_config))
        url = f"http://{auth_registry.address}/v2/mlsteps-test/locked/manifests/{digest}"
        login = (auth_registry.username, auth_registry.password.encode())
        got = requests.get(url, headers=MANIFEST_V2, auth=login, timeout=10)
        assert got.status_code == 200
        assert got.json()["config"]["digest"] == image_id
        assert requests.get(url, headers=MANIFEST_V2, timeout=10).status_code == 401
    finally:
        docker_client.images.remove(image_id, force=True)


def test_push_to_a_registry_that_is_down_says_connection_refused(
    docker_client, tmp_path: Path
) -> None:
    reg, server = services.start_auth_registry(tmp_path)
    server.stop()
    repository = f"{reg.address}/mlsteps-test/down"
    marker, image_id = _tiny_image(docker_client, repository)
    try:
        events = _push(docker_client, repository, marker, reg.auth_config)
    finally:
        docker_client.images.remove(image_id, force=True)
    assert events[-1]["error"] == (
        f'Get "http://{reg.address}/v2/": dial tcp {reg.address}: connect: connection refused'
    )


def test_moto_server_emulates_sts_s3_and_a_fixed_ecr_token(moto_server) -> None:
    import boto3

    session = boto3.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name=moto_server.region,
    )
    sts = session.client("sts", endpoint_url=moto_server.url)
    assert sts.get_caller_identity()["Account"] == moto_server.account_id

    s3 = session.client("s3", endpoint_url=moto_server.url)
    bucket = f"mlsteps-test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="a/b.txt", Body=b"hello")
    assert s3.get_object(Bucket=bucket, Key="a/b.txt")["Body"].read() == b"hello"

    ecr = session.client("ecr", endpoint_url=moto_server.url)
    first = ecr.get_authorization_token()["authorizationData"]
    again = ecr.get_authorization_token()["authorizationData"]
    assert first == again and len(first) == 1
    token = base64.b64decode(first[0]["authorizationToken"]).decode()
    assert token == f"AWS:{services.moto_ecr_password(moto_server.account_id)}"
    assert first[0]["proxyEndpoint"] == (
        f"https://{moto_server.account_id}.dkr.ecr.{moto_server.region}.amazonaws.com"
    )
    other = ecr.get_authorization_token(registryIds=["000000000042"])["authorizationData"]
    assert base64.b64decode(other[0]["authorizationToken"]) == b"AWS:000000000042-auth-token"


def test_ecr_registry_takes_a_push_with_the_token_from_the_moto_emulator(
    docker_client, ecr_registry: services.EcrRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    found = services.ECR_HOST.match(ecr_registry.registry)
    assert found and found.groups() == (
        ecr_registry.account_id,
        ecr_registry.region,
        ecr_registry.address.rsplit(":", 1)[1],
    )
    # As the package step will: the endpoint from the environment, which boto3 reads.
    for name, value in ecr_registry.env().items():
        monkeypatch.setenv(name, value)
    data = boto3.client("ecr").get_authorization_token()["authorizationData"][0]
    username, password = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)
    assert username == "AWS"

    repository = f"{ecr_registry.registry}/mlsteps-test/served"
    marker, image_id = _tiny_image(docker_client, repository)
    try:
        auth = {"username": username, "password": password}
        digest = _pushed_digest(_push(docker_client, repository, marker, auth))
        # Read back by the ECR name as well: /etc/hosts sends it to the loopback registry.
        url = f"http://{ecr_registry.registry}/v2/mlsteps-test/served/manifests/{digest}"
        got = requests.get(url, headers=MANIFEST_V2, auth=(username, password), timeout=10)
        assert got.status_code == 200
        assert got.json()["config"]["digest"] == image_id
        assert got.headers["Docker-Content-Digest"] == digest
        refused = _push(docker_client, repository, marker, {**auth, "password": "AWS:" + password})
        assert refused[-1]["error"] == "unauthorized: authentication required"
    finally:
        docker_client.images.remove(image_id, force=True)


def test_ecr_registry_removes_its_hosts_line_and_stops_on_a_failure(
    docker_client, moto_server, tmp_path: Path
) -> None:
    with (
        pytest.raises(RuntimeError, match="the test failed"),
        services.ecr_registry(tmp_path, moto_server, region="eu-west-3") as ecr,
    ):
        lines = [ln for ln in services.HOSTS.read_text().splitlines() if ecr.host in ln]
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"127.0.0.1 {ecr.host} {services.HOSTS_MARK} ")
        assert services.registry_answers(ecr.address, auth=True)  # 401 without a login
        raise RuntimeError("the test failed")
    # Other sessions on the machine may add and remove lines meanwhile: only ours is checked.
    assert ecr.host not in services.HOSTS.read_text()
    assert not services.registry_answers(ecr.address, auth=True)


def test_hosts_entry_removes_exactly_its_own_line(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n10.0.0.1 same.example # mlsteps-test other")  # no \n
    with services.hosts_entry("same.example", hosts=hosts) as mine:
        with pytest.raises(KeyError), services.hosts_entry("same.example", hosts=hosts) as twin:
            assert hosts.read_text().splitlines()[-2:] == [mine, twin]
            raise KeyError("inner block fails")
        # Someone else's line, added while ours is in the file, stays.
        with hosts.open("a") as f:
            f.write("127.0.0.2 later.example\n")
        assert mine in hosts.read_text().splitlines()
    assert hosts.read_text().splitlines() == [
        "127.0.0.1 localhost",
        "10.0.0.1 same.example # mlsteps-test other",
        "127.0.0.2 later.example",
    ]


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
