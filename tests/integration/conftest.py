"""Fixtures the integration tests share: a command line against the session's OpenBao server
(tests/integration/test_secrets.py's Cli), a leased database credential to read, a saved
iris model with its serving image (built once per session, for package's and deploy's tests), and
the serving images of deploy's test models (tests/deploy_models.py)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import deploy_models, services, vault_setup
from tests.integration.test_package import outputs_of, package
from tests.integration.test_secrets import Cli


@pytest.fixture
def cli(vault_server: services.VaultServer, tmp_path: Path) -> Cli:
    return Cli(vault_server, tmp_path, uuid.uuid4().hex[:8])


@pytest.fixture
def dynamic(cli: Cli, redis_server: services.RedisServer) -> tuple[str, str, str, str]:
    """A database role leasing Redis users, and an AppRole that may read it:
    (creds path, approle mount, role id, secret id)."""
    creds = vault_setup.dynamic_creds_role(
        cli.vault, redis_server, role="reader", mount=f"db-{cli.uid}", ttl="10m"
    )
    name = vault_setup.read_policy(cli.vault, f"creds-{cli.uid}", [creds])
    mount = f"approle-{cli.uid}"
    role_id, secret_id = vault_setup.approle(cli.vault, "trainer", [name], mount=mount)
    cli.hide(role_id=role_id, secret_id=secret_id)
    return creds, mount, role_id, secret_id


@pytest.fixture(scope="session")
def deploy_images(
    docker_client: Any, python_slim_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, deploy_models.DeployImage]]:
    """The serving images of tests/deploy_models.py's models (good, good2, failing, slow,
    disagreeing), packaged once per session: the first finds or builds their shared
    dependencies image, each adds its model layer. The model images go at the session's end
    (the dependencies image stays cached)."""
    images = deploy_models.build(tmp_path_factory.mktemp("deploy-models"))
    yield images
    for made in images.values():
        with contextlib.suppress(Exception):  # a test removed it already
            docker_client.images.remove(made.image)


@pytest.fixture(scope="session")
def iris_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import mlflow
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True, as_frame=True)
    path = tmp_path_factory.mktemp("iris") / "model"
    mlflow.sklearn.save_model(
        LogisticRegression(max_iter=300).fit(x, y), str(path), input_example=x.head(3)
    )
    return path


@pytest.fixture(scope="session")
def iris_image(
    docker_client: Any,
    python_slim_image: str,
    iris_model: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """The iris model's serving image, built once per session for the tests that talk to the
    server (FROM the local python:3.11-slim, the default base)."""
    workdir = tmp_path_factory.mktemp("iris-image")
    done = package(
        "--model-uri", str(iris_model), "--repository", "it-serving", "--smoke-test", "false",
        cwd=workdir,
    )  # fmt: skip
    return outputs_of(done)["image"]
