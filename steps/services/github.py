"""GitHub's record of who approved a workflow run's deployment (``--require-approval``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from steps.core.errors import ConfigError, StepFailed
from steps.core.secret import Secret


def github_approvers(
    api: str, repo: str, run_id: str, token: Secret, environment: str
) -> list[str]:
    """Who approved this workflow run's deployment to ``environment`` (its required
    reviewers). An approval of another environment of the run (a staging job's) does not
    count: it approved something else."""
    import requests

    url = f"{api.rstrip('/')}/repos/{repo}/actions/runs/{run_id}/approvals"
    headers = {
        "Authorization": f"Bearer {token.reveal()}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    try:
        response = requests.get(url, headers=headers, timeout=20)
    except requests.RequestException as exc:
        raise StepFailed(
            f"cannot read the run's approvals from {api} ({type(exc).__name__}): try again, or "
            "give --approved-by."
        ) from None
    if response.status_code in (401, 403, 404):
        raise ConfigError(
            f"GitHub answered {response.status_code} to reading the approvals of run {run_id} "
            f"of {repo}: the token cannot read them. Give the job `permissions: actions: read` "
            "and the step `env: GITHUB_TOKEN: ${{ github.token }}`."
        )
    if not response.ok:
        raise StepFailed(
            f"GitHub answered {response.status_code} to reading the approvals of run {run_id}."
        )
    try:
        entries = response.json()
    except ValueError:
        raise StepFailed(f"{url} did not answer JSON: is GITHUB_API_URL right?") from None
    if not isinstance(entries, list):
        raise StepFailed(f"{url} did not answer a list of approvals: is GITHUB_API_URL right?")
    return sorted(
        {
            str((entry.get("user") or {}).get("login") or "")
            for entry in entries
            if isinstance(entry, dict)
            and entry.get("state") == "approved"
            and environment in _environments(entry)
        }
        - {""}
    )


def _environments(entry: Mapping[str, Any]) -> list[str]:
    found = entry.get("environments")
    if not isinstance(found, list):
        return []
    return [str(e.get("name")) for e in found if isinstance(e, dict)]
