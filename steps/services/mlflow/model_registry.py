"""MLflow's model registry as promote and rollback use it: versions, aliases, tags. Each call
turns the server's failures into the user's terms (exit 2 with the option to fix, or exit 1).
The step (steps/promote/run.py) decides what to read and write and in which order; this module
only knows how. Imported only by a real run: it loads requests inside its functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from steps.core.errors import ConfigError
from steps.core.text import redact_url
from steps.services.mlflow.tracking import MlflowApiError, RestTracking

REQUEST_TIMEOUT = 20.0


class Registry:
    """The few model-registry calls promote makes, each failure told in the user's terms.
    Each write first asks ``write_timeout`` (the lock's: steps/locks/base.py) for its request
    timeout, which refuses a write the lease cannot cover."""

    def __init__(
        self, uri: str, name: str, write_timeout: Callable[[float], float] | None = None
    ) -> None:
        self.rest = RestTracking(uri, timeout=REQUEST_TIMEOUT)
        self.name = name
        self.write_timeout = write_timeout or (lambda wanted: wanted)

    def _write(self, doing: str, method: str, endpoint: str, body: dict[str, Any]) -> None:
        timeout = self.write_timeout(REQUEST_TIMEOUT)
        self._call(doing, method, endpoint, json=body, timeout=timeout)

    def _call(self, doing: str, method: str, endpoint: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return self.rest._call(method, endpoint, **kwargs)
        except MlflowApiError as exc:
            raise exc.as_step_failed(doing) from None

    def model(self) -> dict[str, Any]:
        try:
            got = self.rest._call("GET", "registered-models/get", params={"name": self.name})
        except MlflowApiError as exc:
            if exc.code == "RESOURCE_DOES_NOT_EXIST" or exc.status == 404:
                raise ConfigError(
                    f"--name {self.name}: no registered model '{self.name}' at "
                    f"{redact_url(self.rest.uri)}. Register one with `mlsteps package` (it "
                    "registers the model it packages), or check --name and --tracking-uri."
                ) from None
            raise exc.as_step_failed(f"reading registered model '{self.name}'") from None
        model: dict[str, Any] = got["registered_model"]
        return model

    def run_artifact_uri(self, run_id: str) -> str:
        """Where the run's artifacts are, as MLflow records it for the run."""
        try:
            run = self.rest._call("GET", "runs/get", params={"run_id": run_id})["run"]
        except MlflowApiError as exc:
            if exc.absent:
                raise ConfigError(
                    f"the MLflow run {run_id} of the version is gone from "
                    f"{redact_url(self.rest.uri)}, and its gate report with it: register and "
                    "gate the model again."
                ) from None
            raise exc.as_step_failed(f"reading run {run_id}") from None
        if run["info"].get("lifecycle_stage") == "deleted":
            # Someone discarded it; `mlflow gc` may remove its files (the model's, the
            # report's) at any moment, after the alias points at them.
            raise ConfigError(
                f"the MLflow run {run_id} of the version is deleted (in MLflow's trash at "
                f"{redact_url(self.rest.uri)}; `mlflow gc` removes its files): restore it "
                f"(`mlflow runs restore --run-id {run_id}`) to promote this version, or "
                "register and gate the model again."
            )
        return str(run["info"]["artifact_uri"]).rstrip("/")

    def version(self, version: str) -> dict[str, Any]:
        params = {"name": self.name, "version": version}
        try:
            got = self.rest._call("GET", "model-versions/get", params=params)
        except MlflowApiError as exc:
            if exc.code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise exc.as_step_failed(f"reading version {version} of '{self.name}'") from None
            latest = [str(v.get("version")) for v in self.model().get("latest_versions", [])]
            newest = max(latest, key=int) if latest else "none"
            raise ConfigError(
                f"--version {version}: model '{self.name}' has no version {version} at "
                f"{redact_url(self.rest.uri)} (its newest is {newest}). Give a registered "
                "version, e.g. the model-version output of the package step."
            ) from None
        found: dict[str, Any] = got["model_version"]
        return found

    @staticmethod
    def tags_of(found: Mapping[str, Any]) -> dict[str, str]:
        """The tags of a version as version() returns it, as a mapping."""
        return {t["key"]: t["value"] for t in found.get("tags", [])}

    def alias(self, alias: str) -> str | None:
        params = {"name": self.name, "alias": alias}
        try:
            got = self.rest._call("GET", "registered-models/alias", params=params)
        except MlflowApiError as exc:
            if exc.absent:
                return None
            raise exc.as_step_failed(f"reading alias '{alias}' of '{self.name}'") from None
        return str(got["model_version"]["version"])

    def set_alias(self, alias: str, version: str | None) -> None:
        """Point alias at version; None removes it (absent already is fine)."""
        if version is None:
            timeout = self.write_timeout(REQUEST_TIMEOUT)
            try:
                self.rest._call(
                    "DELETE", "registered-models/alias", timeout=timeout,
                    json={"name": self.name, "alias": alias},
                )  # fmt: skip
            except MlflowApiError as exc:
                if not exc.absent:
                    raise exc.as_step_failed(f"removing alias '{alias}'") from None
            return
        body = {"name": self.name, "alias": alias, "version": version}
        self._write(f"pointing alias '{alias}' at version {version}", "POST",
                    "registered-models/alias", body)  # fmt: skip

    def set_tag(self, version: str, key: str, value: str) -> None:
        body = {"name": self.name, "version": version, "key": key, "value": value}
        self._write(f"tagging version {version} with {key}", "POST", "model-versions/set-tag",
                    body)  # fmt: skip

    def delete_tag(self, version: str, key: str) -> None:
        body = {"name": self.name, "version": version, "key": key}
        self._write(f"removing tag {key}", "DELETE", "model-versions/delete-tag", body)
