"""Which steps exist and where their code lives; imported by the CLI without loading them."""

from __future__ import annotations

import importlib
from types import ModuleType

import click

from steps.core.config_file import MLFLOW, MODEL, Section

# step name → module holding ``SECTION`` (its options) and ``command`` (its click command)
STEP_MODULES = {
    "secrets": "steps.secrets.plan",
    "train": "steps.train.plan",
    "package": "steps.package.plan",
    "gate": "steps.gate.plan",
    "promote": "steps.promote.plan",
    "rollback": "steps.promote.plan",  # same section as promote: the same lock and aliases
}
# commands that are not steps (no config section)
TOOL_MODULES = {
    "config": "steps.config_cmd",
}


# commands whose module holds another command as `command`: name → the module's attribute
COMMAND_ATTRIBUTES = {"rollback": "rollback_command"}


def load(name: str) -> ModuleType:
    return importlib.import_module({**STEP_MODULES, **TOOL_MODULES}[name])


def command(name: str) -> click.Command:
    """The click command of a step or tool (a module may serve two: promote and rollback)."""
    found: click.Command = getattr(load(name), COMMAND_ATTRIBUTES.get(name, "command"))
    return found


def all_sections() -> list[Section]:
    """Every section mlsteps.yaml may have: the shared ones, then one per step."""
    steps = {s.name: s for s in (load(step).SECTION for step in STEP_MODULES)}
    return [MLFLOW, MODEL, *steps.values()]
