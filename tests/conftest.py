"""Session-scoped fixtures for the real parts (tests/services.py says how each starts).

Each fixture fails under CI=true when its part is missing, and skips elsewhere with what to
install. Servers run on free loopback ports in temporary folders and stop when the session ends.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests import services

if TYPE_CHECKING:
    from docker import DockerClient

# Every process the tests start inherits this: MLflow clients and servers must talk to nothing
# but each other on loopback, so their usage telemetry is off for the whole session.
for _name, _value in services.QUIET_ENV.items():
    os.environ.setdefault(_name, _value)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[DockerClient]:
    client = services.connect_docker()
    yield client
    client.close()


@pytest.fixture(scope="session")
def base_image(docker_client: DockerClient) -> str:
    """The tag of the locally built base image (built here if missing and this user can)."""
    return services.ensure_base_image(docker_client)


@pytest.fixture(scope="session")
def python_slim_image(docker_client: DockerClient, base_image: str) -> str:
    """The local tag `python:3.11-slim` that `mlflow models build-docker` builds FROM, made
    from the base image unless an image of that name that is not ours is already there."""
    return services.ensure_python_slim_image(docker_client)


@pytest.fixture(scope="session")
def trainer_image(docker_client: DockerClient, base_image: str) -> str:
    """The tag of the quickstart trainer, built once per session from its Dockerfile."""
    return services.build_trainer_image(docker_client)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.MlflowServer]:
    """A real MLflow tracking server (sqlite backend, local artifacts); `.uri` is its URL."""
    server = services.start_mlflow(tmp_path_factory.mktemp("mlflow"))
    yield server
    server.server.stop()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real OCI registry on loopback; the value is its host:port."""
    reg = services.start_registry(tmp_path_factory.mktemp("registry"))
    yield reg.address
    reg.server.stop()


@pytest.fixture(scope="session")
def auth_registry(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[services.AuthRegistry]:
    """A real OCI registry on loopback that requires a login (htpasswd): `.address`
    (host:port), `.username`, `.password` (of awkward characters), `.auth_config`."""
    reg, server = services.start_auth_registry(tmp_path_factory.mktemp("auth-registry"))
    yield reg
    server.stop()


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.MotoServer]:
    """moto's AWS emulator on loopback: `.url`, `.account_id` (random for the session),
    `.env()` for a process that talks to it with boto3."""
    moto = services.start_moto(tmp_path_factory.mktemp("moto"))
    yield moto
    moto.server.stop()


@pytest.fixture(scope="session")
def ecr_registry(
    tmp_path_factory: pytest.TempPathFactory,
    docker_client: DockerClient,
    moto_server: services.MotoServer,
) -> Iterator[services.EcrRegistry]:
    """A registry named as Amazon ECR names one (`.registry` is
    `<account>.dkr.ecr.<region>.amazonaws.com:PORT`, resolved to 127.0.0.1 by a line in
    /etc/hosts for the session) that accepts the login in moto's ECR token: boto3's
    get_authorization_token against `.moto_url` (`.env()`), base64-decoded, is "AWS:<password>".
    """
    with services.ecr_registry(tmp_path_factory.mktemp("ecr-registry"), moto_server) as ecr:
        yield ecr


@pytest.fixture(scope="session")
def vault_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.VaultServer]:
    """A real OpenBao dev server (the Vault API), shared by the session: `.addr`,
    `.root_token`. Tests mount and configure what they need under names of their own
    (tests/vault_setup.py); a test that seals or breaks a server uses `fresh_vault`."""
    vault = services.start_vault(tmp_path_factory.mktemp("vault"))
    yield vault
    vault.server.stop()


@pytest.fixture
def fresh_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.VaultServer]:
    """An OpenBao dev server of this test's own, to seal or otherwise break (about 0.5 s)."""
    vault = services.start_vault(tmp_path_factory.mktemp("fresh-vault"))
    yield vault
    vault.server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.RedisServer]:
    """A real redis-server on loopback, the database OpenBao's database engine leases users
    of (tests/vault_setup.py: dynamic_creds_role)."""
    redis = services.start_redis(tmp_path_factory.mktemp("redis"))
    yield redis
    redis.server.stop()
