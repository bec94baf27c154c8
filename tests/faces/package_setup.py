"""What the package faces' tests share: the smallest MLflow model directory `mlsteps package
--dry-run` plans for (an MLmodel with a python_function flavor, and its requirements), and a
registry password of an awkward shape.

A dry run reads these two files and touches nothing else, so the faces can be driven through
the real CLI without a build (tests/integration/test_package.py builds real images).
"""

from __future__ import annotations

from pathlib import Path

MODEL_UUID = "0123456789abcdef0123456789abcdef"
# The default tag: model- and the first 12 digits of the model's uuid.
TAG = f"model-{MODEL_UUID[:12]}"
# Quotes, a shell expansion, a percent sign and unicode: what a shell or a logger might mangle.
PASSWORD = "p4ss 'w\"rd' $HOME %s ünï"

MLMODEL = f"""\
flavors:
  python_function:
    loader_module: mlflow.sklearn
    python_version: 3.11.2
model_uuid: {MODEL_UUID}
"""


def tiny_model(directory: Path) -> Path:
    """Write the model files into directory (made if missing) and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "MLmodel").write_text(MLMODEL, encoding="utf-8")
    (directory / "requirements.txt").write_text("scikit-learn==1.5.0\n", encoding="utf-8")
    return directory
