"""Models for deploy's integration tests, each packaged once per session into a serving image
by the real ``mlsteps package`` (the ``deploy_images`` fixture in tests/integration/conftest.py).

All five are the same model from code (MODEL_CODE below) with one setting apart
(``model_config``), and the same requirements, so they share one dependencies image: the first
build of a session makes it (or finds it in the engine's cache), the others add a model layer.
Each takes rows of two numbers, columns ``x0`` and ``x1`` (``body`` writes a request), and
answers one number per row, ``2*x0 - x1`` rounded to 6 places (``expected``):

- ``good``: exactly that. The champion of the tests.
- ``good2``: the same predictions, another version (another setting, so another image): a good
  candidate, which a canary must roll out to 100%.
- ``failing``: each call raises, with a probability of 10% drawn at random per call, an
  MlflowException of INTERNAL_ERROR, which the server answers 500 (a plain exception in
  ``predict`` is answered 400 by MLflow's protocol, which a judge counts as the client's fault).
- ``slow``: sleeps 30 ms per call, then answers as ``good``.
- ``disagreeing``: adds 1.0 to the prediction of about 20% of rows, chosen by a hash of the row's
  values, so the same row always gets the same answer (shadow comparisons are reproducible).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FAIL_RATE = 0.1
DELAY_SECONDS = 0.03
DISAGREE_SHARE = 0.2

MODEL_CODE = '''\
"""mlsteps' test model for deploy (tests/deploy_models.py): model_config says how it behaves."""
import hashlib
import random
import time

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR
from mlflow.pyfunc import PythonModel


def picked(x0, x1, share):
    digest = hashlib.sha256(f"{x0:.6f},{x1:.6f}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < share * 2**64


class DeployTestModel(PythonModel):
    def load_context(self, context):
        self.config = dict(context.model_config or {})

    def predict(self, context, model_input, params=None):
        behaviour = self.config.get("behaviour", "good")
        if behaviour == "failing" and random.random() < self.config["rate"]:
            raise MlflowException("this test model fails on purpose", error_code=INTERNAL_ERROR)
        if behaviour == "slow":
            time.sleep(self.config["delay"])
        rows = zip(model_input["x0"].tolist(), model_input["x1"].tolist())
        values = []
        for x0, x1 in rows:
            value = round(2.0 * x0 - x1, 6)
            if behaviour == "disagreeing" and picked(x0, x1, self.config["share"]):
                value += 1.0
            values.append(value)
        return values


mlflow.models.set_model(DeployTestModel())
'''

CONFIGS: dict[str, dict[str, Any]] = {
    "good": {"behaviour": "good", "version": 1},
    "good2": {"behaviour": "good", "version": 2},
    "failing": {"behaviour": "failing", "rate": FAIL_RATE},
    "slow": {"behaviour": "slow", "delay": DELAY_SECONDS},
    "disagreeing": {"behaviour": "disagreeing", "share": DISAGREE_SHARE},
}


@dataclass(frozen=True)
class DeployImage:
    name: str  # a key of CONFIGS
    image: str  # the local tag `mlsteps package` gave it
    model_dir: Path


def body(rows: list[tuple[float, float]]) -> bytes:
    """A JSON request body of rows (x0, x1), as a client of the server sends it."""
    return json.dumps({"dataframe_split": {"columns": ["x0", "x1"], "data": rows}}).encode()


def expected(x0: float, x1: float) -> float:
    """What good and good2 answer for a row."""
    return round(2.0 * x0 - x1, 6)


def disagrees(x0: float, x1: float) -> bool:
    """Whether `disagreeing` answers this row differently (MODEL_CODE's picked)."""
    digest = hashlib.sha256(f"{x0:.6f},{x1:.6f}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < DISAGREE_SHARE * 2**64


def save(name: str, root: Path) -> Path:
    """The model NAME, saved under ROOT with MLflow's own save_model."""
    from importlib.metadata import version

    import mlflow.pyfunc
    import pandas as pd

    code = root / "deploy_test_model.py"
    code.write_text(MODEL_CODE)
    directory = root / name
    example = pd.DataFrame({"x0": [0.5, -1.25, 2.0], "x1": [1.0, 0.25, -3.5]})
    # Pinned here (what MLflow infers for a model from code): the same text for every model,
    # so they share one dependencies image.
    pins = [f"{p}=={version(p)}" for p in ("mlflow", "cloudpickle")]
    mlflow.pyfunc.save_model(
        str(directory), python_model=str(code), model_config=CONFIGS[name],
        input_example=example, pip_requirements=pins,
    )  # fmt: skip
    return directory


def build(root: Path, no_cache: bool = False) -> dict[str, DeployImage]:
    """Every model of CONFIGS saved under ROOT and packaged into a local image (no registry).
    `failing` is not smoke-tested: its one prediction may fail by design."""
    from tests.integration.test_train import mlsteps

    images = {}
    tmp = root / "tmp"
    tmp.mkdir(exist_ok=True)
    for name in CONFIGS:
        model_dir = save(name, root)
        done = mlsteps(
            "--json", "package", "--model-uri", str(model_dir),
            "--repository", f"it-deploy-{name}",
            "--smoke-test", "false" if name == "failing" else "true",
            *(["--no-cache", "true"] if no_cache and not images else []),
            cwd=root, env={"TMPDIR": str(tmp)}, timeout=900,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        image = json.loads(done.stdout)["outputs"]["image"]
        images[name] = DeployImage(name, image, model_dir)
    return images


if __name__ == "__main__":  # how long the fixture takes: python -m tests.deploy_models [--cold]
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        built = build(Path(tmp), no_cache="--cold" in sys.argv)
        print(f"{len(built)} images in {time.monotonic() - started:.1f} s:")
        for made in built.values():
            print(f"  {made.name}: {made.image}")
