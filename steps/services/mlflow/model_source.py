"""Where an MLflow model's files are: the resolution of a model URI and the download of the
files (what they say is steps/services/images/model_facts.py).

All of it speaks MLflow's REST API (and the tracking server's artifact proxy) with requests, or
reads the disk, or S3 through boto3; never the MLflow client, whose import alone costs about
2 s. The same reads serve ``--dry-run`` (which must show the Dockerfile and the cache key, so it
must read the requirements) and the run: the plan cannot drift from what is built.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from steps.core.errors import ConfigError, StepFailed
from steps.core.text import redact_url
from steps.core.values import absolute_path, clip

# Run tags train writes (steps/train/run.py) that the image labels and version tags carry on.
COMMIT_TAG = "mlflow.source.git.commit"
DATA_DIGEST_TAG = "mlsteps.data-digest"


@dataclass(frozen=True)
class ModelRef:
    """A model URI resolved to the place its files are."""

    uri: str  # as the user gave it
    kind: str  # run | logged-model | version | s3 | path
    artifact_uri: str  # mlflow-artifacts:/…, s3://…, file:/… or a local directory
    run_id: str | None = None
    model_id: str | None = None
    name: str | None = None  # registered model, for kind "version"
    version: str | None = None
    run_tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def registrable(self) -> bool:
        """Whether registering it creates a version (runs:/ and models:/MODEL_ID do)."""
        return self.kind in ("run", "logged-model")


def _rest(tracking_uri: str | None, uri: str) -> Any:
    from steps.services.mlflow.tracking import RestTracking

    if not tracking_uri or not tracking_uri.startswith(("http://", "https://")):
        raise ConfigError(
            f"--model-uri {uri}: finding this model needs an MLflow tracking server over "
            f"http(s), but mlflow.tracking-uri is {tracking_uri or 'unset'}. Set --tracking-uri "
            "(env MLSTEPS_MLFLOW_TRACKING_URI or MLFLOW_TRACKING_URI) to the server's URL, or "
            "give the model's directory or s3:// URI."
        )
    return RestTracking(tracking_uri)


def _get(rest: Any, endpoint: str, uri: str, what: str, **params: str) -> dict[str, Any]:
    from steps.services.mlflow.tracking import MlflowApiError

    try:
        found: dict[str, Any] = rest._call("GET", endpoint, params=params)
        return found
    except MlflowApiError as exc:
        if exc.absent:
            raise ConfigError(
                f"--model-uri {uri}: {what} not found on {redact_url(rest.uri)}. Check the name, "
                "version, alias or id (the MLflow UI lists them)."
            ) from None
        raise exc.as_step_failed(f"reading {what}") from None


def resolve(uri: str, tracking_uri: str | None) -> ModelRef:
    if uri.startswith("s3://"):
        return ModelRef(uri, "s3", uri.rstrip("/"))
    if uri.startswith(("runs:/", "models:/")):
        return _resolve_tracked(uri, _rest(tracking_uri, uri))
    if "://" in uri and not uri.startswith("file://"):
        raise ConfigError(
            f"--model-uri {uri}: not a form package reads. Give runs:/RUN_ID/PATH, "
            "models:/NAME/VERSION, models:/NAME@ALIAS, models:/MODEL_ID, s3://… or a directory."
        )
    try:
        path = Path(absolute_path(uri.removeprefix("file://"), Path.cwd()))
        found = (path / "MLmodel").is_file()
    except (ValueError, OSError) as exc:  # a name too long, ~nosuchuser, a NUL
        raise ConfigError(
            f"--model-uri {clip(uri)} is not valid: expected {exc}. Give the directory MLflow "
            "saved the model to (the one holding MLmodel)."
        ) from None
    if not found:
        raise ConfigError(
            f"--model-uri {clip(uri, plain=True)}: no MLmodel file in "
            f"{clip(str(path), plain=True)}. Give the directory MLflow saved the model to (the "
            "one holding MLmodel)."
        )
    return ModelRef(uri, "path", str(path))


def _resolve_tracked(uri: str, rest: Any, depth: int = 0) -> ModelRef:
    if uri.startswith("runs:/"):
        run_id, _, path = uri.removeprefix("runs:/").partition("/")
        if not run_id or not path:
            raise ConfigError(f"--model-uri {uri}: give runs:/RUN_ID/PATH, e.g. runs:/abc/model.")
        run = _get(rest, "runs/get", uri, f"run {run_id}", run_id=run_id)["run"]
        tags = {t["key"]: t["value"] for t in run.get("data", {}).get("tags", [])}
        # MLflow 3 keeps a run's models as logged models named by the path; MLflow 2 put the
        # files under the run's artifacts.
        for output in reversed(run.get("outputs", {}).get("model_outputs", [])):
            info = _logged_model(rest, uri, output["model_id"])
            if info.get("name") == path:
                return ModelRef(
                    uri, "run", info["artifact_uri"], run_id, info["model_id"], run_tags=tags
                )
        artifact_uri = f"{run['info']['artifact_uri'].rstrip('/')}/{path}"
        return ModelRef(uri, "run", artifact_uri, run_id, run_tags=tags)
    rest_of = uri.removeprefix("models:/").strip("/")
    if re.fullmatch(r"m-[0-9a-f]{32}", rest_of):
        info = _logged_model(rest, uri, rest_of)
        source_run: str | None = info.get("source_run_id") or None
        return ModelRef(
            uri, "logged-model", info["artifact_uri"], source_run, rest_of,
            run_tags=_run_tags(rest, source_run),
        )  # fmt: skip
    if "@" in rest_of:
        name, _, alias = rest_of.partition("@")
        found = _get(
            rest, "registered-models/alias", uri, f"alias '{alias}' of model '{name}'",
            name=name, alias=alias,
        )  # fmt: skip
    elif re.fullmatch(r".+/\d+", rest_of):
        name, _, number = rest_of.rpartition("/")
        found = _get(
            rest, "model-versions/get", uri, f"version {number} of model '{name}'",
            name=name, version=number,
        )  # fmt: skip
    else:
        raise ConfigError(
            f"--model-uri {uri}: give models:/NAME/VERSION, models:/NAME@ALIAS or "
            "models:/MODEL_ID (a version number or an alias is needed: 'latest' is ambiguous)."
        )
    version = found["model_version"]
    source = version.get("source", "")
    model_id = version.get("model_id") or None
    if source.startswith(("runs:/", "models:/")) and depth == 0:
        inner = _resolve_tracked(source, rest, depth + 1)
        artifact_uri, model_id = inner.artifact_uri, model_id or inner.model_id
    else:
        artifact_uri = source
    version_run: str | None = version.get("run_id") or None
    return ModelRef(
        uri, "version", artifact_uri, version_run, model_id,
        name=version["name"], version=str(version["version"]),
        run_tags=_run_tags(rest, version_run),
    )  # fmt: skip


def _logged_model(rest: Any, uri: str, model_id: str) -> dict[str, Any]:
    found = _get(rest, f"logged-models/{model_id}", uri, f"logged model {model_id}")
    info: dict[str, Any] = found["model"]["info"]
    return info


def _run_tags(rest: Any, run_id: str | None) -> dict[str, str]:
    if not run_id:
        return {}
    from steps.services.mlflow.tracking import MlflowApiError

    try:
        run = rest._call("GET", "runs/get", params={"run_id": run_id})["run"]
    except MlflowApiError:
        return {}  # a deleted source run leaves the model usable, only without its lineage
    return {t["key"]: t["value"] for t in run.get("data", {}).get("tags", [])}


class Artifacts:
    """Reads and downloads model files wherever the artifact URI points."""

    def __init__(self, tracking_uri: str | None) -> None:
        self.tracking_uri = tracking_uri
        self._session: Any = None

    def session(self) -> Any:
        """One HTTP session (and its connections and auth) for every file of the model."""
        if self._session is None:
            from steps.services.mlflow.tracking import RestTracking

            self._session = RestTracking(self.tracking_uri or "").session
        return self._session

    def _proxy_url(self, artifact_uri: str, rel: str = "") -> str:
        # mlflow-artifacts:/PATH or mlflow-artifacts://HOST/PATH: served by the tracking server.
        path = urlsplit(artifact_uri).path.strip("/") + ("/" + rel if rel else "")
        if not self.tracking_uri or not self.tracking_uri.startswith(("http://", "https://")):
            raise ConfigError(
                f"the model's files are at {artifact_uri}, served by the MLflow tracking server: "
                "set --tracking-uri to the server's http(s) URL."
            )
        return f"{self.tracking_uri.rstrip('/')}/api/2.0/mlflow-artifacts/artifacts/{quote(path)}"

    def read(self, artifact_uri: str, rel: str, limit: int | None = None) -> bytes | None:
        """One file's bytes, or None when it does not exist; with a limit, at most limit + 1
        of them (so a caller can refuse a file over it without holding all of it)."""
        if artifact_uri.startswith("mlflow-artifacts:"):
            return self._http_get(self._proxy_url(artifact_uri, rel), artifact_uri, limit)
        if artifact_uri.startswith("s3://"):
            return _s3_read(artifact_uri, rel, limit)
        root = Path(_local(artifact_uri)).resolve()
        path = root / rel
        if not path.exists():
            return None
        _check_local(root, path)
        if not path.is_file():
            return None
        with path.open("rb") as handle:
            return handle.read(-1 if limit is None else limit + 1)

    def _http_get(self, url: str, artifact_uri: str, limit: int | None = None) -> bytes | None:
        import requests

        try:
            answer = self.session().get(url, timeout=60, stream=True)
            if answer.status_code == 404:
                return None
            if not answer.ok:
                raise StepFailed(
                    f"the MLflow server refused the model's files at {artifact_uri}: HTTP "
                    f"{answer.status_code} {answer.text[:200]}"
                )
            if limit is None:
                body: bytes = answer.content
                return body
            kept = bytearray()
            for chunk in answer.iter_content(65536):
                kept += chunk
                if len(kept) > limit:
                    break
            answer.close()
            return bytes(kept[: limit + 1])
        except requests.RequestException as exc:
            raise StepFailed(
                f"cannot read the model's files at {artifact_uri} ({type(exc).__name__}). Is the "
                "MLflow server running?"
            ) from None

    def upload(self, artifact_uri: str, rel: str, body: bytes) -> None:
        """Write one file under artifact_uri (a run's artifacts), as the MLflow client would."""
        if artifact_uri.startswith("mlflow-artifacts:"):
            import requests

            url = self._proxy_url(artifact_uri, rel)
            try:
                answer = self.session().put(url, data=body, timeout=60)
            except requests.RequestException as exc:
                raise StepFailed(
                    f"cannot write {rel} to {artifact_uri} ({type(exc).__name__}). Is the MLflow "
                    "server running?"
                ) from None
            if not answer.ok:
                raise StepFailed(
                    f"the MLflow server refused to store {rel} in {artifact_uri}: HTTP "
                    f"{answer.status_code} {answer.text[:200]}"
                )
        elif artifact_uri.startswith("s3://"):
            bucket, key = _s3_parts(artifact_uri, rel)
            _s3_client().put_object(Bucket=bucket, Key=key, Body=body)
        else:
            path = Path(_local(artifact_uri)) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)

    def download(self, artifact_uri: str, dest: Path) -> None:
        """Copy every file of the model into dest (an empty directory)."""
        if artifact_uri.startswith("mlflow-artifacts:"):
            self._download_proxied(artifact_uri, "", dest)
        elif artifact_uri.startswith("s3://"):
            _s3_download(artifact_uri, dest)
        else:
            _copy_local(Path(_local(artifact_uri)), dest)

    def _download_proxied(self, artifact_uri: str, rel: str, dest: Path) -> None:
        base = urlsplit(artifact_uri).path.strip("/")
        listing = self.session().get(
            f"{self.tracking_uri}/api/2.0/mlflow-artifacts/artifacts",
            params={"path": f"{base}/{rel}".rstrip("/")},
            timeout=60,
        )
        if not listing.ok:
            raise StepFailed(
                f"cannot list the model's files at {artifact_uri}/{rel}: HTTP "
                f"{listing.status_code} {listing.text[:200]}"
            )
        for entry in listing.json().get("files", []):
            name = entry["path"].rsplit("/", 1)[-1]
            child = _inside(dest, f"{rel}/{name}".lstrip("/"), artifact_uri)
            if entry.get("is_dir"):
                (dest / child).mkdir(parents=True, exist_ok=True)
                self._download_proxied(artifact_uri, child, dest)
                continue
            body = self._http_get(self._proxy_url(artifact_uri, child), artifact_uri)
            if body is None:
                raise StepFailed(f"the model file {child} vanished while it was downloaded")
            (dest / child).parent.mkdir(parents=True, exist_ok=True)
            (dest / child).write_bytes(body)


def _inside(dest: Path, rel: str, artifact_uri: str) -> str:
    """REL, a file name the store gave, if it stays inside DEST: whoever wrote the model's
    files chose it, and a ../ in an S3 key would otherwise write anywhere on this machine."""
    if rel in ("", ".") or not (dest / rel).resolve().is_relative_to(dest.resolve()):
        raise ConfigError(
            f"the model's files at {redact_url(artifact_uri)} include {rel[:200]!r}, a name that "
            "leads out of the model's directory: refused. Save the model again with MLflow."
        )
    return rel


def _check_local(root: Path, path: Path) -> None:
    """Refuse PATH, in the model's directory ROOT, if it is a link that leads out of ROOT or
    anything but a file or a directory. Whoever wrote the directory (a training's /output, a
    repository) chose them: a link to ~/.docker/config.json read as requirements.txt would show
    the login in the plan and the build's errors, and be pushed with the model's files; a named
    pipe or a device (a training container may mknod) would be read forever."""
    import stat

    rel, real = path.relative_to(root), path.resolve()
    if not real.is_relative_to(root):  # the file, or a directory on its way, is a link
        raise ConfigError(
            f"the model's file {rel} is a link to {real}, outside the model's directory {root}: "
            "refused (its content would be read as the model's and go into the image). Copy "
            "the file into the directory instead."
        )
    mode = path.stat().st_mode if path.exists() else 0
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        kind = "a named pipe" if stat.S_ISFIFO(mode) else "a link to nothing" if not mode else (
            "a device or socket"
        )  # fmt: skip
        raise ConfigError(
            f"the model's file {rel} is {kind}, not a regular file: refused. A model's "
            "directory holds files and directories only: save the model again with MLflow."
        )


def _copy_local(root: Path, dest: Path) -> None:
    """Copy a model's directory, each of its entries checked by _check_local first."""
    import os

    root = root.resolve()
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            _check_local(root, Path(folder, name))
    shutil.copytree(root, dest, dirs_exist_ok=True, symlinks=False)


def _local(artifact_uri: str) -> str:
    if artifact_uri.startswith("file://"):
        return urlsplit(artifact_uri).path
    if "://" in artifact_uri or artifact_uri.startswith("mlflow-artifacts:"):
        raise ConfigError(
            f"the model's files are at {artifact_uri}, a store package cannot read. It reads "
            "the MLflow server's artifact proxy (mlflow-artifacts:), s3:// and local paths."
        )
    return artifact_uri


def _s3_client() -> Any:
    import boto3

    # boto3 takes the endpoint from AWS_ENDPOINT_URL(_S3) and the credentials from the usual
    # chain (environment, profile, instance role).
    return boto3.client("s3")


def _s3_parts(artifact_uri: str, rel: str = "") -> tuple[str, str]:
    parts = urlsplit(artifact_uri)
    key = parts.path.strip("/")
    return parts.netloc, f"{key}/{rel}".strip("/") if rel else key


def _s3_read(artifact_uri: str, rel: str, limit: int | None = None) -> bytes | None:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = _s3_parts(artifact_uri, rel)
    try:
        stream = _s3_client().get_object(Bucket=bucket, Key=key)["Body"]
        body: bytes = stream.read(None if limit is None else limit + 1)
        return body
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise StepFailed(f"S3 refused s3://{bucket}/{key}: {exc}") from None
    except BotoCoreError as exc:
        raise StepFailed(f"cannot read s3://{bucket}/{key}: {exc}") from None


def _s3_download(artifact_uri: str, dest: Path) -> None:
    bucket, prefix = _s3_parts(artifact_uri)
    client = _s3_client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            rel = item["Key"][len(prefix) :].lstrip("/")
            if rel and not rel.endswith("/"):
                _inside(dest, rel, artifact_uri)
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, item["Key"], str(dest / rel))
