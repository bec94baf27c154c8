"""What the examples' end-to-end tests (test_examples_e2e.py) share beyond the services: the
one stand-in, for GitHub's REST API (there is no GitHub here), reads of MLflow's registry, and
the endpoint the examples' deploy step leaves serving.

`GitHubApprovals` answers `GET /repos/OWNER/REPO/actions/runs/ID/approvals` as GitHub documents
it, to the bearer token it was given, and records what was asked: act runs the example's
promote job with GITHUB_API_URL pointing at it, so mlsteps reads the approval of the job's
`environment:` exactly as it would on a runner.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import signal
import subprocess
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import requests
from docker.errors import NotFound

from steps.deploy.targets.docker import ENDPOINT_LABEL, DockerTarget
from tests.services import describe, free_port, no_labelled_containers
from tests.vault_setup import _LoopbackHttp

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"


class GitHubApprovals(_LoopbackHttp):
    def __init__(self, token: str, approvers: list[str]) -> None:
        self.token = token
        self.approvals = [
            {
                "state": "approved",
                "user": {"login": login},
                "environments": [{"name": "production"}],
            }
            for login in approvers
        ]
        self.asked: list[str] = []
        super().__init__()

    def _answer(self, request: BaseHTTPRequestHandler, method: str) -> None:
        self.asked.append(f"{method} {request.path}")
        ok = request.headers.get("Authorization") == f"Bearer {self.token}"
        found = method == "GET" and request.path.endswith("/approvals")
        status = 200 if ok and found else 401 if not ok else 404
        body: Any = self.approvals if status == 200 else {"message": "no"}
        raw = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(raw)))
        request.end_headers()
        request.wfile.write(raw)


def alias_version(mlflow_uri: str, name: str, alias: str) -> str | None:
    """The version an alias of a registered model points at, or None when it is not set."""
    response = requests.get(
        f"{mlflow_uri}/api/2.0/mlflow/registered-models/alias",
        params={"name": name, "alias": alias},
        timeout=10,
    )
    if not response.ok:
        return None
    version: str = response.json()["model_version"]["version"]
    return version


def version_tags(mlflow_uri: str, name: str, version: str) -> dict[str, str]:
    response = requests.get(
        f"{mlflow_uri}/api/2.0/mlflow/model-versions/get",
        params={"name": name, "version": version},
        timeout=10,
    )
    response.raise_for_status()
    tags = response.json()["model_version"].get("tags", [])
    return {t["key"]: t["value"] for t in tags}


class DeployedEndpoint:
    """The endpoint an example's deploy step makes on this machine: a name and a loopback port
    of the test's own (the examples take them from DEPLOY_ENDPOINT and DEPLOY_LISTEN), so it
    meets no other endpoint; its state where deploy keeps it by default under the cache
    directory (XDG_CACHE_HOME) the run had. check() asserts what serves there; tear_down()
    removes it, and the image deploy pulled to serve."""

    def __init__(self, docker_client: Any, cache: Path) -> None:
        self.docker = docker_client
        self.name = f"example-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.listen = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.listen}"
        self.state_dir = cache / "mlsteps" / "endpoints" / self.name
        self.images: set[str] = set()

    def containers(self) -> list[Any]:
        return no_labelled_containers(self.docker, f"{ENDPOINT_LABEL}={self.name}", prefix=None)

    def check(self, image_ref: str) -> None:
        """The image alone serves there, and answers the quickstart's client (traffic.py) with
        no failed request."""
        self.images.add(image_ref)
        # A sparse listing: "Image" is the reference the container was run with.
        assert [c.attrs["Image"] for c in self.containers()] == [image_ref]
        traffic = subprocess.Popen(
            [sys.executable, str(QUICKSTART / "traffic.py"), self.url, "--rate", "20"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(3)
        traffic.send_signal(signal.SIGTERM)
        out, err = traffic.communicate(timeout=30)
        assert traffic.returncode == 0, err
        counted = re.fullmatch(r"traffic: (\d+) requests, (\d+) failed\n", out)
        assert counted is not None, out
        assert int(counted[1]) >= 20 and counted[2] == "0", out

    def tear_down(self) -> None:
        DockerTarget(self.name, self.state_dir).tear_down()
        left = self.containers()
        assert left == [], describe(left)
        for image in self.images:
            with contextlib.suppress(NotFound):
                self.docker.images.remove(image)


def docker_login(directory: Path, registry: Any) -> Path:
    """A Docker client config (DOCKER_CONFIG) holding a login to ``registry``: deploy pulls the
    image with the runner's or agent's own login, as the examples say."""
    directory.mkdir(parents=True)
    auth = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    config = {"auths": {registry.address: {"auth": auth}}}
    (directory / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return directory
