"""The benchmark tier's models: CatBoost, PyTorch and TensorFlow, each saved by its flavour's own
``save_model`` with an input example, on the small seeded table of tests/flavour_models.py.

Their libraries are too big for the project's venv: bench_flavours.py runs this file in a venv
of its own (``python large_flavours.py NAME DIRECTORY``), which has them and the same MLflow.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.flavour_models import _split, _table  # noqa: E402  (the path is set just above)

# What the bench venv installs beside mlflow: `tensorflow`, not `tensorflow-cpu`, because
# MLflow's tensorflow flavour pins `tensorflow` in the model's requirements whatever is installed
# (its Linux wheel runs on CPUs; CUDA comes only with its [and-cuda] extra). torch is PyPI's,
# with the NVIDIA CUDA wheels it depends on: what a user of PyPI's torch gets, image included.
LIBRARIES = ("catboost", "torch", "tensorflow")


def catboost(directory: Path) -> None:
    import mlflow.catboost
    from catboost import CatBoostClassifier

    x, y, _ = _split(_table(11))
    model = CatBoostClassifier(
        iterations=30,
        depth=3,
        random_seed=11,
        thread_count=1,
        verbose=False,
        allow_writing_files=False,  # no catboost_info/ in the working directory
    ).fit(x, y)
    mlflow.catboost.save_model(model, str(directory), input_example=x.head(3))


def pytorch(directory: Path) -> None:
    import mlflow.pytorch
    import torch

    torch.manual_seed(12)
    x, y, _ = _split(_table(12))
    inputs = torch.tensor(x.to_numpy("float32"))
    target = torch.tensor(y.to_numpy("float32")).unsqueeze(1)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(50):
        optimiser.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(inputs), target)
        loss.backward()
        optimiser.step()
    model.eval()
    mlflow.pytorch.save_model(model, str(directory), input_example=x.head(3).to_numpy("float32"))


def tensorflow(directory: Path) -> None:
    import mlflow.tensorflow
    import tensorflow as tf

    tf.keras.utils.set_random_seed(13)
    x, y, _ = _split(_table(13))
    model = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(3,)),
            tf.keras.layers.Dense(8, activation="relu"),
            tf.keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(x.to_numpy("float32"), y.to_numpy("float32"), epochs=5, verbose=0)
    mlflow.tensorflow.save_model(model, str(directory), input_example=x.head(3).to_numpy("float32"))


SAVERS: dict[str, Callable[[Path], None]] = {
    "catboost": catboost,
    "pytorch": pytorch,
    "tensorflow": tensorflow,
}

if __name__ == "__main__":
    name, directory = sys.argv[1], Path(sys.argv[2])
    SAVERS[name](directory)
