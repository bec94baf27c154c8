"""The registered model version of a packaged model, and its image and lineage tags.

Idempotent: a version of the same model (same source) whose image has the same content -- the
same dependencies image key and the same model files, recorded as CONTENT_TAG -- is reused:
package asks pushed_before first and reuses that image rather than push a rebuild (which would
have a new digest: the build time is in the image); were the image rebuilt anyway (gone from
the registry, or pushed elsewhere), the version's image tags are updated. A version of it with
no image yet is adopted; so a re-run of the same package creates nothing. If tagging a version
this run created fails, the version is deleted again: no half-registered version is left
behind. Speaks MLflow's REST API (steps/services/mlflow/tracking.py).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from steps.core.errors import StepFailed
from steps.services.mlflow.model_source import ModelRef
from steps.services.mlflow.tracking import MlflowApiError, RestTracking

IMAGE_TAG = "image"  # the tag the issue and deploy read: REPO@sha256:…
DIGEST_TAG = "mlsteps.image.digest"
CONTENT_TAG = "mlsteps.image.content"  # cache key of the dependencies + digest of the model files
# The same content, as a label of the model image: part of the image's config, so covered by its
# digest. The version's tags are written by whoever holds the MLflow credentials (the training
# too); the label only by whoever pushed to the registry, so reuse trusts the label.
CONTENT_LABEL = "io.mlsteps.image.content"


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    created: bool


def _source(ref: ModelRef) -> str:
    return f"models:/{ref.model_id}" if ref.model_id else ref.artifact_uri


def _search(rest: RestTracking, name: str, run_id: str | None) -> list[dict[str, Any]]:
    def quoted(text: str) -> str:  # MLflow's filter strings escape a quote by doubling it
        return "'" + text.replace("'", "''") + "'"

    clause = f"name={quoted(name)}" + (f" and run_id={quoted(run_id)}" if run_id else "")
    found = rest._call(
        "GET", "model-versions/search", params={"filter": clause, "max_results": 200}
    )
    versions: list[dict[str, Any]] = found.get("model_versions", [])
    return versions


def _tags(version: Mapping[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in version.get("tags", [])}


def _wait_ready(rest: RestTracking, name: str, version: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        got = rest._call("GET", "model-versions/get", params={"name": name, "version": version})
        status = got["model_version"].get("status", "READY")
        if status == "READY":
            return
        if status == "FAILED_REGISTRATION" or time.monotonic() > deadline:
            raise StepFailed(
                f"MLflow did not finish registering version {version} of '{name}' "
                f"(status {status}): {got['model_version'].get('status_message', '')}"
            )
        time.sleep(1)


def _mine(rest: RestTracking, ref: ModelRef, name: str) -> list[dict[str, Any]]:
    """The versions of this model: the one named, or those registered from its source."""
    if ref.kind == "version":
        assert ref.name and ref.version
        got = rest._call(
            "GET", "model-versions/get", params={"name": ref.name, "version": ref.version}
        )
        return [got["model_version"]]
    source = _source(ref)
    return [v for v in _search(rest, name, ref.run_id) if v.get("source") == source]


def pushed_before(rest: RestTracking, ref: ModelRef, name: str | None, content: str) -> str:
    """The image ref (REPO@sha256:…) a version of this model was tagged with for the same
    content, or "": what a repeated package of an unchanged model reuses instead of pushing a
    rebuild with a new digest."""
    if ref.kind != "version" and not name:
        return ""
    try:
        for version in _mine(rest, ref, name or ""):
            tags = _tags(version)
            if tags.get(CONTENT_TAG) == content and tags.get(DIGEST_TAG):
                return tags.get(IMAGE_TAG, "")
    except MlflowApiError as exc:
        raise exc.as_step_failed(f"reading the versions of '{ref.name or name}'") from None
    return ""


def register(
    rest: RestTracking, ref: ModelRef, name: str | None, digest: str, tags: Mapping[str, str]
) -> Registered:
    """Find or create the version and tag it; ``tags`` include IMAGE_TAG and the lineage."""
    try:
        if ref.kind == "version":
            assert ref.name and ref.version
            _set_tags(rest, ref.name, ref.version, tags)
            return Registered(ref.name, ref.version, False)
        assert name, "the config check asks for model.name before anything runs"
        try:
            rest._call("POST", "registered-models/create", json={"name": name})
        except MlflowApiError as exc:
            if exc.code != "RESOURCE_ALREADY_EXISTS":
                raise
        mine = _mine(rest, ref, name)
        for version in mine:
            if _tags(version).get(CONTENT_TAG) == tags[CONTENT_TAG]:
                if _tags(version).get(DIGEST_TAG) != digest:  # rebuilt elsewhere: newest image
                    _set_tags(rest, name, str(version["version"]), tags)
                return Registered(name, str(version["version"]), False)
        for version in mine:
            if CONTENT_TAG not in _tags(version):  # registered before, by hand or by MLflow
                _set_tags(rest, name, str(version["version"]), tags)
                return Registered(name, str(version["version"]), False)
        body: dict[str, Any] = {"name": name, "source": _source(ref)}
        if ref.run_id:
            body["run_id"] = ref.run_id
        if ref.model_id:
            body["model_id"] = ref.model_id
        created = str(
            rest._call("POST", "model-versions/create", json=body)["model_version"]["version"]
        )
    except MlflowApiError as exc:
        raise exc.as_step_failed(f"registering the model version of '{name}'") from None
    try:
        _wait_ready(rest, name, created)
        _set_tags(rest, name, created, tags)
    except BaseException:
        from steps.core import signals

        # The first failure is the one to report; a failed delete only adds noise to it.
        with signals.shielded(deliver=False), contextlib.suppress(Exception):
            rest._call("DELETE", "model-versions/delete", json={"name": name, "version": created})
        raise
    return Registered(name, created, True)


def _set_tags(rest: RestTracking, name: str, version: str, tags: Mapping[str, str]) -> None:
    try:
        for key, value in tags.items():
            rest._call(
                "POST",
                "model-versions/set-tag",
                json={"name": name, "version": version, "key": key, "value": value},
            )
    except MlflowApiError as exc:
        raise exc.as_step_failed(f"tagging version {version} of '{name}'") from None


def lineage_tags(
    image_ref: str,
    digest: str,
    content: str,
    image_tag: str,
    labels: Mapping[str, str],
    ref: ModelRef,
) -> dict[str, str]:
    from steps.services.mlflow.model_source import COMMIT_TAG, DATA_DIGEST_TAG

    tags = {
        IMAGE_TAG: image_ref,
        DIGEST_TAG: digest,
        CONTENT_TAG: content,
        "mlsteps.image.tag": image_tag,
        "mlsteps.image.labels": json.dumps(dict(labels), sort_keys=True),
        "mlsteps.lineage.model-uri": ref.uri,
    }
    if ref.run_id:
        tags["mlsteps.lineage.run-id"] = ref.run_id
    # The commit the model was trained from (its run's tag), not the one packaging it.
    if commit := ref.run_tags.get(COMMIT_TAG):
        tags["mlsteps.lineage.commit"] = commit
    if data := labels.get("io.mlsteps.data-digest") or ref.run_tags.get(DATA_DIGEST_TAG):
        tags["mlsteps.lineage.data-digest"] = data
    return tags
