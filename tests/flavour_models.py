"""Models of every flavour package covers, each written by its flavour's own ``save_model`` with
the input example a user gives, and rows the model never saw to compare served predictions on.

One function per flavour: ``save(directory) -> Flavour``. Each imports its library inside
(they are the dev extra's: pyproject.toml), so importing this module costs nothing.
Data is made here with fixed seeds, so each model and its requirements are the same every run
and the dependencies images they share are found in the engine's cache.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Flavour:
    name: str
    model_dir: Path
    unseen: Any  # a DataFrame of rows the model was not trained on


def _table(seed: int, rows: int = 240) -> Any:
    """A small classification table: three numbers, a label from them."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x0": rng.normal(size=rows),
            "x1": rng.normal(size=rows),
            "x2": rng.uniform(-1, 1, size=rows),
        }
    )
    frame["y"] = ((frame.x0 + 0.5 * frame.x1 - frame.x2) > 0).astype("int64")
    return frame


def _split(frame: Any) -> tuple[Any, Any, Any]:
    train, unseen = frame.iloc[:200], frame.iloc[200:]
    return train.drop(columns="y"), train["y"], unseen.drop(columns="y").reset_index(drop=True)


def sklearn_plain(directory: Path) -> Flavour:
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    x, y, unseen = _split(_table(1))
    model = LogisticRegression().fit(x, y)
    mlflow.sklearn.save_model(model, directory, input_example=x.head(3))
    return Flavour("sklearn", directory, unseen)


def sklearn_pipeline(directory: Path) -> Flavour:
    """Strings, missing numbers and a missing category: the preprocessing is in the model."""
    import mlflow.sklearn
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = _table(2)
    rng = np.random.default_rng(2)
    frame["city"] = rng.choice(["Lyon", "Oslo", "Kyiv", None], size=len(frame))
    frame.loc[rng.random(len(frame)) < 0.15, "x1"] = np.nan
    x, y, unseen = _split(frame)
    prepare = ColumnTransformer(
        [
            ("numbers", SimpleImputer(strategy="median"), ["x0", "x1", "x2"]),
            (
                "city",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="none"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                ["city"],
            ),
        ]  # fmt: skip
    )
    model = make_pipeline(prepare, LogisticRegression()).fit(x, y)
    # OneHotEncoder keeps a numpy dtype, which skops (MLflow's sklearn format) asks to trust.
    mlflow.sklearn.save_model(
        model, directory, input_example=x.head(4), skops_trusted_types=["numpy.dtype"]
    )
    return Flavour("sklearn-pipeline", directory, unseen)


def xgboost(directory: Path) -> Flavour:
    from importlib.metadata import version

    import mlflow.xgboost
    import xgboost as xgb

    x, y, unseen = _split(_table(3))
    model = xgb.XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1).fit(x, y)
    # MLflow pins `xgboost`, whose Linux wheel brings NVIDIA's NCCL (350 MB) along; a CPU
    # model names the CPU build instead, as its users do (pip_requirements).
    pins = [f"{name}=={version(name)}" for name in ("mlflow", "xgboost-cpu", "scikit-learn")]
    mlflow.xgboost.save_model(model, directory, input_example=x.head(3), pip_requirements=pins)
    return Flavour("xgboost", directory, unseen)


def lightgbm(directory: Path) -> Flavour:
    import lightgbm as lgb
    import mlflow.lightgbm

    x, y, unseen = _split(_table(4))
    model = lgb.LGBMClassifier(n_estimators=20, num_leaves=7, n_jobs=1, verbose=-1).fit(x, y)
    mlflow.lightgbm.save_model(model, directory, input_example=x.head(3))
    return Flavour("lightgbm", directory, unseen)


def statsmodels(directory: Path) -> Flavour:
    import mlflow.statsmodels
    import statsmodels.api as sm

    frame = _table(5)
    frame["y"] = 2.0 * frame.x0 - frame.x1 + 0.1 * frame.x2
    x, _, unseen = _split(frame)
    results = sm.OLS(frame["y"].iloc[:200], x).fit()
    mlflow.statsmodels.save_model(results, directory, input_example=x.head(3))
    return Flavour("statsmodels", directory, unseen)


def onnx(directory: Path) -> Flavour:
    """A scikit-learn model converted with skl2onnx, served by onnxruntime."""
    import mlflow.onnx
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestRegressor

    frame = _table(6)
    x, y, unseen = _split(frame)
    x, unseen = x.astype("float32"), unseen.astype("float32")
    forest = RandomForestRegressor(n_estimators=10, max_depth=4, random_state=6).fit(x, y)
    # One float tensor input: MLflow's ONNX flavour feeds it a table's values.
    model = to_onnx(forest, x.head(1).to_numpy(), target_opset=17)
    mlflow.onnx.save_model(model, directory, input_example=x.head(3))
    return Flavour("onnx", directory, unseen)


MODEL_FROM_CODE = '''\
"""A model logged from code (MLflow's "models from code"): this file is the model."""
import mlflow
from mlflow.pyfunc import PythonModel


class Scorer(PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input["x0"] * 2.0 - model_input["x1"]


mlflow.models.set_model(Scorer())
'''


def model_from_code(directory: Path) -> Flavour:
    """Saved with a signature and no input example, MLflow infers no requirement but mlflow
    and cloudpickle: no pandas, which mlflow.pyfunc imports (and mlflow-skinny lacks)."""
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    x, _, unseen = _split(_table(7))
    code = directory.parent / f"{directory.name}-code.py"
    code.write_text(MODEL_FROM_CODE)
    mlflow.pyfunc.save_model(directory, python_model=str(code), signature=infer_signature(x))
    return Flavour("model-from-code", directory, unseen)


CUSTOM_MODULE = '''\
"""The custom model's own code, shipped with it through code_paths."""
import json

from mlflow.pyfunc import PythonModel


class WeightedSum(PythonModel):
    def load_context(self, context):
        with open(context.artifacts["weights"]) as f:
            self.weights = json.load(f)

    def predict(self, context, model_input, params=None):
        total = sum(model_input[name] * weight for name, weight in self.weights.items())
        return (total > 0).astype("int64")
'''


def custom_python_model(directory: Path) -> Flavour:
    """A PythonModel class from a module of its own (code_paths) reading a JSON artifact."""
    import importlib
    import json
    import sys

    import mlflow.pyfunc

    x, _, unseen = _split(_table(8))
    source = directory.parent / f"{directory.name}-src"
    package = source / "weighted_sum_model"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(CUSTOM_MODULE))
    weights = source / "weights.json"
    weights.write_text(json.dumps({"x0": 1.0, "x1": 0.5, "x2": -1.0}))
    sys.path.insert(0, str(source))
    try:
        module = importlib.import_module("weighted_sum_model")
        mlflow.pyfunc.save_model(
            directory,
            python_model=module.WeightedSum(),
            artifacts={"weights": str(weights)},
            code_paths=[str(package)],
            input_example=x.head(3),
        )
    finally:
        sys.path.remove(str(source))
        sys.modules.pop("weighted_sum_model", None)
    return Flavour("custom-python-model", directory, unseen)


FLAVOURS: dict[str, Callable[[Path], Flavour]] = {
    "sklearn": sklearn_plain,
    "sklearn-pipeline": sklearn_pipeline,
    "xgboost": xgboost,
    "lightgbm": lightgbm,
    "statsmodels": statsmodels,
    "onnx": onnx,
    "model-from-code": model_from_code,
    "custom-python-model": custom_python_model,
}
