"""Which steps exist and where their code lives; imported by the CLI without loading them."""

from __future__ import annotations

import importlib
from types import ModuleType

from steps.config import MLFLOW, MODEL, Section

# step name → module holding ``SECTION`` (its options) and ``command`` (its click command)
STEP_MODULES = {
    "secrets": "steps.secrets",
    "train": "steps.train",
    "package": "steps.package",
}
# commands that are not steps (no config section)
TOOL_MODULES = {
    "config": "steps.config_cmd",
}


def load(name: str) -> ModuleType:
    return importlib.import_module({**STEP_MODULES, **TOOL_MODULES}[name])


def all_sections() -> list[Section]:
    """Every section mlsteps.yaml may have: the shared ones, then one per step."""
    return [MLFLOW, MODEL, *(load(step).SECTION for step in STEP_MODULES)]
