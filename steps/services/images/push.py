"""Pushing (and pulling cached) images: the registry's credentials and the engine's progress.

Credentials, first that applies: --registry-username with MLSTEPS_PACKAGE_REGISTRY_PASSWORD
(e.g. set by the secrets step); for an Amazon ECR host, a token from ECR's
GetAuthorizationToken through boto3 (the usual AWS credential chain; AWS_ENDPOINT_URL(_ECR)
for another endpoint); otherwise the Docker config's login (`docker login`, credential
helpers), which the Docker SDK reads itself.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from steps.core.errors import StepFailed
from steps.core.secret import Secret

ECR_HOST = re.compile(
    r"(?P<account>\d{12})\.dkr\.ecr(-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?"
)


def registry_host(registry: str) -> str:
    return registry.split("/", 1)[0]


def ecr_region(registry: str) -> str | None:
    host = registry_host(registry).split(":", 1)[0]
    match = ECR_HOST.fullmatch(host)
    return match.group("region") if match else None


@dataclass(frozen=True)
class Credentials:
    username: str
    password: Secret
    source: str  # for messages: "--registry-username", "ECR token", …

    def auth_config(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password.reveal()}


def describe_auth(registry: str, username: str | None) -> str:
    """What the plan says about the login, before any credential is read."""
    if username:
        return f"as {username} (password from MLSTEPS_PACKAGE_REGISTRY_PASSWORD)"
    if ecr_region(registry):
        return "with an ECR token from the AWS credentials (boto3 GetAuthorizationToken)"
    return "with the Docker config's login for this registry (docker login), if any"


def credentials(registry: str, username: str | None, password: Secret | None) -> Credentials | None:
    if username and password is not None:
        return Credentials(username, password, "--registry-username")
    region = ecr_region(registry)
    if region:
        return _ecr_token(registry, region)
    return None


def _ecr_token(registry: str, region: str) -> Credentials:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    account = ECR_HOST.fullmatch(registry_host(registry).split(":", 1)[0])
    assert account is not None
    try:
        answer = boto3.client("ecr", region_name=region).get_authorization_token(
            registryIds=[account.group("account")]
        )
        token = answer["authorizationData"][0]["authorizationToken"]
    except (ClientError, BotoCoreError) as exc:
        raise StepFailed(
            f"cannot get a push token for the ECR registry {registry}: {exc}. Give AWS "
            "credentials that may call ecr:GetAuthorizationToken (environment, profile or role)."
        ) from None
    user, _, password = base64.b64decode(token).decode().partition(":")
    return Credentials(user, Secret(password), "ECR token")


def _refusal(registry: str, message: str, creds: Credentials | None, doing: str) -> StepFailed:
    text = message.lower()
    if any(s in text for s in ("connection refused", "no such host", "i/o timeout", "dial tcp")):
        return StepFailed(
            f"cannot reach the registry {registry} while {doing}: {message.strip()[:300]}. Is it "
            "running, and is --registry right?"
        )
    if any(
        s in text
        for s in ("unauthorized", "authentication required", "denied", "401", "no basic auth")
    ):
        how = creds.source if creds else "the Docker config's login (docker login)"
        return StepFailed(
            f"the registry {registry} refused the credentials ({how}) while {doing}: "
            f"{message.strip()[:300]}. Check the user name and password or token, and that it "
            "may push to this repository."
        )
    if ecr_region(registry) and any(s in text for s in ("name unknown", "does not exist")):
        return StepFailed(
            f"the ECR registry {registry} has no such repository ({message.strip()[:200]}): ECR "
            "does not create repositories on push. Create it first (aws ecr create-repository "
            "--repository-name NAME) or give --repository of an existing one."
        )
    return StepFailed(f"the registry {registry} failed while {doing}: {message.strip()[:300]}")


class _Progress:
    """Per-layer byte counts of a push stream, said every ``interval`` seconds (pulls go
    through containers.pull_with_progress)."""

    def __init__(self, say: Callable[[str], None], what: str, interval: float) -> None:
        self.say, self.what, self.interval = say, what, interval
        self.sizes: dict[str, tuple[int, int]] = {}
        self.done: set[str] = set()
        self.last_said = time.monotonic()

    def update(self, chunk: dict[str, Any]) -> None:
        status, layer = chunk.get("status", ""), chunk.get("id", "")
        if status in ("Pushed", "Layer already exists") or status.startswith("Mounted from"):
            self.done.add(layer)
        detail = chunk.get("progressDetail") or {}
        if layer and detail.get("total"):
            current = min(detail.get("current", 0), detail["total"])
            self.sizes[layer] = (current, detail["total"])
        if time.monotonic() - self.last_said > self.interval and self.sizes:
            moved = sum(c for c, _ in self.sizes.values()) / 2**20
            total = sum(t for _, t in self.sizes.values()) / 2**20
            self.say(f"  {self.what}: {moved:.0f}/{total:.0f} MiB, {len(self.done)} layers done")
            self.last_said = time.monotonic()


def push(
    client: Any,
    repository: str,
    tag: str,
    registry: str,
    creds: Credentials | None,
    say: Callable[[str], None],
    interval: float = 10.0,
) -> str:
    """Push REPOSITORY:TAG; return the manifest digest the registry answered with."""
    from docker.errors import APIError

    kwargs: dict[str, Any] = {"tag": tag, "stream": True, "decode": True}
    if creds:
        kwargs["auth_config"] = creds.auth_config()
    progress = _Progress(say, f"pushing {repository}:{tag}", interval)
    digest = ""
    try:
        for chunk in client.api.push(repository, **kwargs):
            if "error" in chunk:
                raise _refusal(registry, str(chunk["error"]), creds, f"pushing {repository}:{tag}")
            if aux := chunk.get("aux"):
                digest = aux.get("Digest", digest)
            progress.update(chunk)
    except APIError as exc:
        raise _refusal(registry, str(exc.explanation or exc), creds, "pushing") from None
    if not digest:
        raise StepFailed(f"the push of {repository}:{tag} to {registry} gave no digest")
    say(f"  pushed {repository}:{tag} ({len(progress.done)} layers) → {digest}")
    return str(digest)


def try_pull(
    client: Any,
    repository: str,
    tag: str,
    registry: str,
    creds: Credentials | None,
    progress: Callable[[str, bool], None],
) -> bool:
    """Pull REPOSITORY:TAG if the registry has it (a cached dependencies image built by another
    machine). False when it has not; a registry that is down or refuses fails the step."""
    from docker.errors import APIError, NotFound

    from steps.services.containers import pull_with_progress

    try:
        auth = creds.auth_config() if creds else None
        pull_with_progress(client, repository, tag, None, progress, auth_config=auth)
    except NotFound:
        return False
    except APIError as exc:
        message = str(exc.explanation or exc)
        if _is_missing(message):
            return False
        raise _refusal(
            registry, message, creds, f"looking for the cached {repository}:{tag}"
        ) from None
    return True


def _is_missing(message: str) -> bool:
    """The registry answered that it has no such tag (or repository): a cache miss."""
    text = message.lower()
    return any(
        s in text
        for s in ("manifest unknown", "not found", "name unknown", "repositorynotfound",
                  "does not exist")
    )  # fmt: skip
