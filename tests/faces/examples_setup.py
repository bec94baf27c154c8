"""What the examples' end-to-end tests (test_examples_e2e.py) share beyond the services: the
one stand-in, for GitHub's REST API (there is no GitHub here), and reads of MLflow's registry.

`GitHubApprovals` answers `GET /repos/OWNER/REPO/actions/runs/ID/approvals` as GitHub documents
it, to the bearer token it was given, and records what was asked: act runs the example's
promote job with GITHUB_API_URL pointing at it, so mlsteps reads the approval of the job's
`environment:` exactly as it would on a runner.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any

import requests

from tests.vault_setup import _LoopbackHttp


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
