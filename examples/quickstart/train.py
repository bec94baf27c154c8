"""Quickstart trainer: a random forest classifier, tracked in MLflow.

`mlsteps train` creates the MLflow run and passes MLFLOW_TRACKING_URI and MLFLOW_RUN_ID in, so
this script only continues that run. Run by hand without them, it starts a run of its own in the
"quickstart" experiment (in ./mlruns unless MLFLOW_TRACKING_URI is set).

Data: scikit-learn's breast cancer data set, which ships inside scikit-learn, so nothing is
downloaded. If MLSTEPS_DATA_DIR (or --data-dir) names a folder holding `data.csv` with a
`target` column, that file is used instead; `--write-data DIR` writes the built-in data set in
that form, as a starting point.

If MLSTEPS_OUTPUT_DIR (or --output-dir) is set, a small `metrics.json` is written there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

DATA_FILE = "data.csv"
TARGET = "target"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-estimators", type=int, default=100)
    parser.add_argument("--max-depth", type=int, default=None, help="default: unlimited")
    parser.add_argument("--test-size", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", default=os.environ.get("MLSTEPS_DATA_DIR") or None)
    parser.add_argument("--output-dir", default=os.environ.get("MLSTEPS_OUTPUT_DIR") or None)
    parser.add_argument(
        "--write-data", metavar="DIR", help=f"write the built-in data set as DIR/{DATA_FILE}, exit"
    )
    return parser.parse_args(argv)


def load_data(data_dir: str | None) -> tuple[Any, Any, str]:
    """Return features, labels and a name saying where they came from."""
    import pandas as pd
    from sklearn.datasets import load_breast_cancer

    if data_dir:
        path = Path(data_dir) / DATA_FILE
        if path.is_file():
            frame = pd.read_csv(path)
            if TARGET not in frame.columns:
                raise SystemExit(f"error: {path} has no '{TARGET}' column")
            return frame.drop(columns=[TARGET]), frame[TARGET], str(path)
        # A data dir without our file is not an error: mlsteps may mount one for other reasons.
        print(f"no {path}; using the built-in data set", file=sys.stderr)
    bunch = load_breast_cancer(as_frame=True)
    return bunch.data, bunch.target, "sklearn:breast_cancer"


def write_data(directory: str) -> Path:
    features, labels, _ = load_data(None)
    path = Path(directory) / DATA_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    features.assign(**{TARGET: labels}).to_csv(path, index=False)
    return path


def evaluate(model: Any, features: Any, labels: Any) -> dict[str, float]:
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    predicted = model.predict(features)
    binary = len(model.classes_) == 2
    average = "binary" if binary else "macro"
    metrics = {
        "accuracy": accuracy_score(labels, predicted),
        "f1": f1_score(labels, predicted, average=average),
        "precision": precision_score(labels, predicted, average=average, zero_division=0),
        "recall": recall_score(labels, predicted, average=average, zero_division=0),
    }
    if binary:
        metrics["roc_auc"] = roc_auc_score(labels, model.predict_proba(features)[:, 1])
    return {name: float(value) for name, value in metrics.items()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.write_data:
        print(f"wrote {write_data(args.write_data)}")
        return 0

    # Data first: a bad data file should fail before mlflow's import costs two seconds.
    features, labels, source = load_data(args.data_dir)

    # MLflow's usage telemetry would be this script's only traffic beyond the tracking server.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow
    import mlflow.sklearn
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=args.test_size, random_state=args.seed, stratify=labels
    )

    run_id = os.environ.get("MLFLOW_RUN_ID") or None
    if run_id is None:
        mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", "quickstart"))

    with mlflow.start_run(run_id=run_id) as run:
        mlflow.log_params(
            {
                "n_estimators": args.n_estimators,
                "max_depth": args.max_depth,
                "test_size": args.test_size,
                "seed": args.seed,
                "data_source": source,
                "n_train": len(x_train),
                "n_test": len(x_test),
            }
        )
        model = RandomForestClassifier(
            n_estimators=args.n_estimators, max_depth=args.max_depth, random_state=args.seed
        )
        model.fit(x_train, y_train)
        metrics = evaluate(model, x_test, y_test)
        metrics["train_accuracy"] = evaluate(model, x_train, y_train)["accuracy"]
        mlflow.log_metrics(metrics)
        print(" ".join(f"{name}={value:.4f}" for name, value in metrics.items()))

        # The input example gives the model a signature, which serving needs to check requests.
        # MLflow saves sklearn models with skops, which refuses the trees' node storage unless
        # told to trust it; we trained this model ourselves a line above, so we do.
        with warnings.catch_warnings():
            # MLflow warns of integer columns that could not hold missing values; ours is the
            # predicted class, which is never missing.
            warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
            logged = mlflow.sklearn.log_model(
                model,
                name="model",
                input_example=x_test.head(5),
                skops_trusted_types=["sklearn.tree._tree.Tree"],
            )
        print(f"model logged: {logged.model_uri}")

        if args.output_dir:
            out = Path(args.output_dir) / "metrics.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            summary = {"run_id": run.info.run_id, "model_uri": logged.model_uri, **metrics}
            out.write_text(json.dumps(summary, indent=2) + "\n")
            print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
