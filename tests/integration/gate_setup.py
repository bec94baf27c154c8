"""Models, runs and data sets the gate tests judge, made once per session on the real MLflow
server with fixed seeds, so every interval and verdict the tests assert is exact.

The data: a binary label from five numeric features and a `group` column (a: 75% of rows,
b: 25%). Models are scikit-learn pipelines (one-hot for `group`) registered as versions of one
model:
- `champion`: logistic regression on clean labels (the version under @champion);
- `twin`: the same model fitted on 80% of the rows (differs from the champion on a few
  predictions: less than the sampling noise);
- `weak`: trained with its strongest feature (x0) shuffled (clearly worse);
- `unfair`: trained with every label of group b set to 0 (good on a; on b it predicts 0).
- `plain`: logistic regression on the five features alone: the evaluation data holds a column
  (`group`) it does not take, which the gate must not hand to it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

FEATURES = ("x0", "x1", "x2", "x3", "x4")


def make_data(rows: int, seed: int, *, shift: float = 0.0) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    table = pd.DataFrame({name: rng.normal(size=rows) for name in FEATURES})
    table["x0"] += shift
    table["group"] = np.where(rng.random(rows) < 0.75, "a", "b")
    logit = 1.5 * table.x0 - 1.0 * table.x1 + 0.5 * table.x2
    table["label"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return table


@contextmanager
def tracking(uri: str) -> Iterator[None]:
    """Point the in-process MLflow client at the test server, and put the environment back
    (mlflow.set_tracking_uri also sets MLFLOW_TRACKING_URI, which later mlsteps processes
    of other tests would inherit)."""
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before


def _pipeline() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    columns = ColumnTransformer(
        [("group", OneHotEncoder(handle_unknown="ignore"), ["group"])], remainder="passthrough"
    )
    return Pipeline([("columns", columns), ("model", LogisticRegression(max_iter=500))])


@dataclass(frozen=True)
class GateModels:
    name: str
    versions: dict[str, str]  # role → version number
    runs: dict[str, str]  # role → run id
    eval_csv: Path
    train_csv: Path
    shifted_csv: Path


def log_and_register(uri: str, name: str, role: str, model: Any, example: Any) -> tuple[str, str]:
    """(version, run id) of a fitted model logged in its own run and registered under name."""
    import mlflow

    with tracking(uri), mlflow.start_run(run_name=f"gate-{role}") as run:
        info = mlflow.sklearn.log_model(model, name="model", input_example=example)
        version = mlflow.register_model(info.model_uri, name)
    return str(version.version), run.info.run_id


def build(uri: str, name: str, folder: Path) -> GateModels:
    import numpy as np

    train = make_data(4000, seed=1)
    features = train.drop(columns=["label"])
    example = features.head(5)
    blind = features.copy()
    blind["x0"] = np.random.default_rng(2).permutation(blind["x0"].to_numpy())
    unfair = train.label.to_numpy().copy()
    in_b = (train.group == "b").to_numpy()
    unfair[in_b] = 0
    subset = np.random.default_rng(4).random(len(train)) < 0.8
    fitted = {
        "champion": _pipeline().fit(features, train.label),
        "twin": _pipeline().fit(features[subset], train.label[subset]),
        "weak": _pipeline().fit(blind, train.label),
        "unfair": _pipeline().fit(features, unfair),
    }
    versions, runs = {}, {}
    for role, model in fitted.items():
        versions[role], runs[role] = log_and_register(uri, name, role, model, example)
    from sklearn.linear_model import LogisticRegression

    plain = LogisticRegression(max_iter=500).fit(features[list(FEATURES)], train.label)
    versions["plain"], runs["plain"] = log_and_register(
        uri, name, "plain", plain, example[list(FEATURES)]
    )
    set_alias(uri, name, "champion", versions["champion"])
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False)
    make_data(3000, seed=11).to_csv(folder / "eval.csv", index=False)
    make_data(3000, seed=12, shift=0.8).to_csv(folder / "shifted.csv", index=False)
    return GateModels(
        name, versions, runs, folder / "eval.csv", folder / "train.csv", folder / "shifted.csv"
    )


def set_alias(uri: str, name: str, alias: str, version: str) -> None:
    requests.post(
        f"{uri}/api/2.0/mlflow/registered-models/alias",
        json={"name": name, "alias": alias, "version": version},
        timeout=10,
    ).raise_for_status()


def run_with_metrics(uri: str, metrics: dict[str, float]) -> str:
    """A run that logged these metrics (and no model files): what a logged-metrics gate reads."""
    api = f"{uri}/api/2.0/mlflow"
    experiment = requests.get(
        f"{api}/experiments/get-by-name", params={"experiment_name": "Default"}, timeout=10
    ).json()["experiment"]["experiment_id"]
    run_id: str = requests.post(
        f"{api}/runs/create", json={"experiment_id": experiment}, timeout=10
    ).json()["run"]["info"]["run_id"]
    batch = [{"key": k, "value": v, "timestamp": 0, "step": 0} for k, v in metrics.items()]
    requests.post(
        f"{api}/runs/log-batch", json={"run_id": run_id, "metrics": batch}, timeout=10
    ).raise_for_status()
    requests.post(
        f"{api}/runs/update", json={"run_id": run_id, "status": "FINISHED"}, timeout=10
    ).raise_for_status()
    return run_id


def register_run(uri: str, name: str, run_id: str) -> str:
    api = f"{uri}/api/2.0/mlflow"
    requests.post(f"{api}/registered-models/create", json={"name": name}, timeout=10)
    found = requests.post(
        f"{api}/model-versions/create",
        json={"name": name, "source": f"runs:/{run_id}/model", "run_id": run_id},
        timeout=10,
    )
    found.raise_for_status()
    return str(found.json()["model_version"]["version"])
