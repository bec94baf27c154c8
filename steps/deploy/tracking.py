"""deploy's record in MLflow: the report logged to the candidate version's run and the decision
tagged on the run and the version, when --tracking-uri, --name and --version are given.

Checked before any traffic moves (a version that does not exist stops the deploy with exit 2
while nothing has changed). Logged after the decision: by then traffic has moved, so a failure
to log is a warning, not a failed rollout. Imported only by a real run (requests).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from steps.core.errors import MlstepsError
from steps.services.mlflow.model_registry import Registry
from steps.services.mlflow.model_source import Artifacts

REPORT_ARTIFACT_DIR = "mlsteps/deploy"
DECISION_TAG = "mlsteps.deploy.decision"
ENDPOINT_TAG = "mlsteps.deploy.endpoint"
REPORT_URI_TAG = "mlsteps.deploy.report-uri"


class ReportLog:
    def __init__(self, tracking_uri: str, name: str, version: str) -> None:
        self.registry = Registry(tracking_uri, name)
        self.artifacts = Artifacts(tracking_uri)
        self.version = version
        self.run_id = ""
        self.artifact_uri = ""

    def check(self) -> None:
        """The version and its run exist (ConfigError naming --version otherwise)."""
        found = self.registry.version(self.version)
        self.run_id = str(found.get("run_id") or "")
        if self.run_id:
            self.artifact_uri = self.registry.run_artifact_uri(self.run_id)

    def log(
        self, report_dir: str, decision: str, endpoint: str, warn: Callable[[str], None]
    ) -> None:
        try:
            tags = {DECISION_TAG: decision, ENDPOINT_TAG: endpoint}
            if self.artifact_uri:
                for path in sorted(Path(report_dir).glob("report.*")) + sorted(
                    Path(report_dir).glob("*.png")
                ):
                    rel = f"{REPORT_ARTIFACT_DIR}/{path.name}"
                    self.artifacts.upload(self.artifact_uri, rel, path.read_bytes())
                tags[REPORT_URI_TAG] = f"{self.artifact_uri}/{REPORT_ARTIFACT_DIR}/report.json"
                self.registry.rest.set_tags(self.run_id, tags)
            for key, value in tags.items():
                self.registry.set_tag(self.version, key, value)
        except MlstepsError as exc:
            warn(f"the deploy's report was not logged to MLflow: {exc.message}")
