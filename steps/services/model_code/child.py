"""The process that loads and scores the models for ``gate --data``: loading an MLflow model
runs the model's own code (unpickling, a ``loader_module``, ``code_paths``), so it runs here,
started by steps/services/model_code/runner.py with no credential in its environment and the model
files already on disk.

    python -m steps.services.model_code.child WORKDIR

WORKDIR holds ``request.json`` (the features file, the task, one model directory per model)
and ``features.pkl`` (written by the parent). Answers go back as plain files the parent reads
without running code: ``N-pred.npy`` and ``N-proba.npy`` (saved without pickle) and
``result.json``, one entry per model: {"status": "ok", "classes": [...] | null} or
{"status": "missing", "missing": [...], "inputs": [...]} or
{"status": "load" | "predict" | "proba" | "answers", "error": "...", "inputs": [...]}. The
first failure ends the run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _plain(values: Any) -> Any:
    """The answers as an array .npy holds without pickle: numbers, booleans or text."""
    import numpy as np

    array = np.asarray(values)
    if array.dtype.kind == "O":  # a pandas column of text or of Python numbers
        array = np.asarray(array.tolist())
    if array.dtype.kind not in "biufUS":
        raise TypeError(f"answers of type {array.dtype} (give numbers, booleans or text)")
    return array


def _error(status: str, exc: BaseException) -> dict[str, Any]:
    return {"status": status, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}


def _score(index: int, model_dir: str, features: Any, task: str, out: Path) -> dict[str, Any]:
    import mlflow
    import numpy as np

    try:
        model = mlflow.pyfunc.load_model(model_dir)
    except Exception as exc:  # noqa: BLE001 - MLflow raises many types for a model it cannot load
        return _error("load", exc)
    schema = model.metadata.get_input_schema()
    table = features
    if schema is not None and schema.has_input_names():
        names = [str(n) for n in schema.input_names()]
        missing = [n for n in names if n not in table.columns]
        if missing:
            return {"status": "missing", "missing": missing, "inputs": names}
        # The model sees only its own inputs: --data may hold more (a slice column, an id).
        table = table[names]
    inputs = {"inputs": [str(c) for c in table.columns]}  # for the parent's missing values
    try:
        predicted = np.asarray(model.predict(table))
    except Exception as exc:  # noqa: BLE001 - the model's own code raised
        return _error("predict", exc) | inputs
    try:
        np.save(out / f"{index}-pred.npy", _plain(predicted), allow_pickle=False)
    except (TypeError, ValueError) as exc:
        return _error("answers", exc)
    classes = None
    if task == "classification" and "sklearn" in model.metadata.flavors:
        raw = model.get_raw_model()
        if hasattr(raw, "predict_proba") and hasattr(raw, "classes_"):
            try:
                proba = np.asarray(raw.predict_proba(table), dtype=np.float64)
            except Exception as exc:  # noqa: BLE001 - the model's own code raised
                return _error("proba", exc) | inputs
            np.save(out / f"{index}-proba.npy", proba, allow_pickle=False)
            classes = _plain(raw.classes_).tolist()
    return {"status": "ok", "classes": classes}


def main(workdir: str) -> int:
    import pandas as pd

    out = Path(workdir)
    request = json.loads((out / "request.json").read_text(encoding="utf-8"))
    features = pd.read_pickle(out / "features.pkl")  # noqa: S301 - written by the parent
    results: list[dict[str, Any]] = []
    for index, model_dir in enumerate(request["models"]):
        results.append(_score(index, model_dir, features, request["task"], out))
        if results[-1]["status"] != "ok":
            break
    (out / "result.json").write_text(json.dumps(results), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
