"""MLflow tracking for the steps: runs, tags, status, metrics and the logged model.

For http(s) tracking URIs this speaks MLflow's REST API with requests, because
``import mlflow`` alone costs about 2 s and every step would pay it. Other URIs (file:,
sqlite:, databricks) go through the MLflow client, imported only then.
REST reference: https://mlflow.org/docs/latest/api_reference/rest-api.html
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from steps.core.errors import ConfigError, StepFailed
from steps.core.text import redact_url

RUN_STATUSES = ("FINISHED", "FAILED", "KILLED")


@dataclass(frozen=True)
class RunReadback:
    metrics: dict[str, float]
    model_uri: str  # "" when the run logged no model


class Tracking(Protocol):
    uri: str

    def experiment_id(self, name: str) -> str: ...
    def create_run(
        self, experiment_id: str, run_name: str | None, tags: Mapping[str, str]
    ) -> str: ...
    def existing_run_experiment(self, run_id: str) -> str: ...
    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...
    def end_run(self, run_id: str, status: str, timeout: float | None = None) -> None: ...
    def read_back(self, run_id: str) -> RunReadback: ...


def connect(uri: str) -> Tracking:
    if uri.startswith(("http://", "https://")):
        return RestTracking(uri)
    return ClientTracking(uri)


def _now_ms() -> int:
    return int(time.time() * 1000)


class RestTracking:
    """MLflow over its REST API. Auth as the MLflow client does it, from the environment
    (MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD)."""

    def __init__(self, uri: str, timeout: float = 30.0) -> None:
        import requests

        self.uri = uri.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        if token := os.environ.get("MLFLOW_TRACKING_TOKEN"):
            self.session.headers["Authorization"] = f"Bearer {token}"
        elif user := os.environ.get("MLFLOW_TRACKING_USERNAME"):
            self.session.auth = (user, os.environ.get("MLFLOW_TRACKING_PASSWORD", ""))
        if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
            self.session.verify = False

    def _call(
        self, method: str, endpoint: str, timeout: float | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        import requests

        url = f"{self.uri}/api/2.0/mlflow/{endpoint}"
        try:
            response = self.session.request(method, url, timeout=timeout or self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise StepFailed(
                f"cannot reach the MLflow tracking server at {redact_url(self.uri)} "
                f"({type(exc).__name__}). Is it running? Start one with `mlflow server`, or fix "
                "mlflow.tracking-uri (flag --tracking-uri, env MLSTEPS_MLFLOW_TRACKING_URI)."
            ) from None
        if response.ok:
            body: dict[str, Any] = response.json() if response.content else {}
            return body
        try:
            error = response.json()
        except ValueError:
            # Not MLflow's JSON error: an HTML page from a proxy or another server.
            hint = " Is this URL an MLflow tracking server?" if response.status_code == 404 else ""
            error = {"error_code": "", "message": f"not an MLflow API answer.{hint}"}
        raise MlflowApiError(
            response.status_code, error.get("error_code", ""), error.get("message", "")
        )

    def experiment_id(self, name: str) -> str:
        try:
            found = self._call("GET", "experiments/get-by-name", params={"experiment_name": name})
            experiment = found["experiment"]
            if experiment.get("lifecycle_stage") == "deleted":
                raise ConfigError(
                    f"mlflow.experiment '{name}' is deleted on {redact_url(self.uri)}. Restore it "
                    "(`mlflow experiments restore`) or choose another name."
                )
            return str(experiment["experiment_id"])
        except MlflowApiError as exc:
            if exc.code != "RESOURCE_DOES_NOT_EXIST":
                raise exc.as_step_failed("looking up the experiment") from None
        try:
            created = self._call("POST", "experiments/create", json={"name": name})
            return str(created["experiment_id"])
        except MlflowApiError as exc:
            if exc.code == "RESOURCE_ALREADY_EXISTS":  # another pipeline created it just now
                return self.experiment_id(name)
            raise exc.as_step_failed("creating the experiment") from None

    def create_run(self, experiment_id: str, run_name: str | None, tags: Mapping[str, str]) -> str:
        body: dict[str, Any] = {
            "experiment_id": experiment_id,
            "start_time": _now_ms(),
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
        }
        if run_name:
            body["run_name"] = run_name
        try:
            return str(self._call("POST", "runs/create", json=body)["run"]["info"]["run_id"])
        except MlflowApiError as exc:
            raise exc.as_step_failed("creating the run") from None

    def _get_run(self, run_id: str) -> dict[str, Any]:
        try:
            run: dict[str, Any] = self._call("GET", "runs/get", params={"run_id": run_id})["run"]
            return run
        except MlflowApiError as exc:
            if exc.code == "RESOURCE_DOES_NOT_EXIST" or exc.status == 404:
                raise ConfigError(
                    f"--run-id {run_id}: no such run on {redact_url(self.uri)}. Give the id of an "
                    "existing run, or leave --run-id out to create a new one."
                ) from None
            raise exc.as_step_failed("reading the run") from None

    def existing_run_experiment(self, run_id: str) -> str:
        run = self._get_run(run_id)
        # A continued run is marked RUNNING again so the UI shows it as live.
        try:
            self._call("POST", "runs/update", json={"run_id": run_id, "status": "RUNNING"})
        except MlflowApiError as exc:
            raise exc.as_step_failed("reopening the run") from None
        return str(run["info"]["experiment_id"])

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        batch = [{"key": k, "value": v} for k, v in tags.items()]
        try:
            self._call("POST", "runs/log-batch", json={"run_id": run_id, "tags": batch})
        except MlflowApiError as exc:
            raise exc.as_step_failed("tagging the run") from None

    def end_run(self, run_id: str, status: str, timeout: float | None = None) -> None:
        body = {"run_id": run_id, "status": status, "end_time": _now_ms()}
        try:
            self._call("POST", "runs/update", timeout=timeout, json=body)
        except MlflowApiError as exc:
            raise exc.as_step_failed(f"marking the run {status}") from None

    def read_back(self, run_id: str) -> RunReadback:
        run = self._get_run(run_id)
        metrics = {m["key"]: m["value"] for m in run.get("data", {}).get("metrics", [])}
        tags = {t["key"]: t["value"] for t in run.get("data", {}).get("tags", [])}
        model_ids = [o["model_id"] for o in run.get("outputs", {}).get("model_outputs", [])]
        return RunReadback(metrics, _model_uri(run_id, model_ids, tags))


def _model_uri(run_id: str, model_ids: list[str], tags: Mapping[str, str]) -> str:
    """MLflow 3 records logged models as run outputs (models:/<model_id>); MLflow 2 wrote
    the artifact path into the mlflow.log-model.history tag (runs:/<run_id>/<path>)."""
    if model_ids:
        return f"models:/{model_ids[-1]}"
    history = tags.get("mlflow.log-model.history")
    if history:
        try:
            entries = json.loads(history)
            return f"runs:/{run_id}/{entries[-1]['artifact_path']}"
        except (ValueError, LookupError, TypeError):
            return ""
    return ""


class MlflowApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message

    @property
    def absent(self) -> bool:
        """The thing asked for does not exist. MLflow 3 answers a missing alias with 400
        INVALID_PARAMETER_VALUE "... not found", not with RESOURCE_DOES_NOT_EXIST or a 404."""
        return (
            self.code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")
            or self.status == 404
            or (self.code == "INVALID_PARAMETER_VALUE" and "not found" in self.message)
        )

    def as_step_failed(self, doing: str) -> StepFailed:
        hint = ""
        if self.status in (401, 403):
            hint = " Check MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD."
        return StepFailed(
            f"MLflow refused {doing}: HTTP {self.status} {self.code} {self.message[:300]}.{hint}"
        )


class ClientTracking:
    """The same operations through the MLflow client, for sqlite:, file: and other stores."""

    def __init__(self, uri: str) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise ConfigError(
                f"mlflow.tracking-uri {redact_url(uri)} is not http(s), which needs the MLflow "
                "client: pip install 'mlsteps[mlflow]', or run `mlflow server` and use its URL."
            ) from None
        self.uri = uri
        with self._refusal("opening the tracking store"):
            self.client = MlflowClient(tracking_uri=uri)

    @contextmanager
    def _refusal(self, doing: str) -> Iterator[None]:
        """MLflow's own exceptions become a step failure that says what was being done."""
        from mlflow.exceptions import MlflowException

        try:
            yield
        except MlflowException as exc:
            raise StepFailed(
                f"MLflow at {redact_url(self.uri)} refused {doing}: {exc.message[:400]}"
            ) from None

    def experiment_id(self, name: str) -> str:
        with self._refusal("looking up the experiment"):
            experiment = self.client.get_experiment_by_name(name)
            if experiment:
                return str(experiment.experiment_id)
            return str(self.client.create_experiment(name))

    def create_run(self, experiment_id: str, run_name: str | None, tags: Mapping[str, str]) -> str:
        with self._refusal("creating the run"):
            run = self.client.create_run(experiment_id, tags=dict(tags), run_name=run_name)
            return str(run.info.run_id)

    def existing_run_experiment(self, run_id: str) -> str:
        from mlflow.exceptions import MlflowException

        try:
            run = self.client.get_run(run_id)
        except MlflowException:
            raise ConfigError(
                f"--run-id {run_id}: no such run in {redact_url(self.uri)}."
            ) from None
        with self._refusal("reopening the run"):
            self.client.update_run(run_id, status="RUNNING")
        return str(run.info.experiment_id)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        with self._refusal("tagging the run"):
            for key, value in tags.items():
                self.client.set_tag(run_id, key, value)

    def end_run(self, run_id: str, status: str, timeout: float | None = None) -> None:
        with self._refusal(f"marking the run {status}"):
            self.client.set_terminated(run_id, status=status)

    def read_back(self, run_id: str) -> RunReadback:
        with self._refusal("reading the run back"):
            run = self.client.get_run(run_id)
        outputs = getattr(run, "outputs", None)
        model_ids = [o.model_id for o in getattr(outputs, "model_outputs", None) or []]
        return RunReadback(dict(run.data.metrics), _model_uri(run_id, model_ids, run.data.tags))
