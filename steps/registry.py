"""The one list of steps (and tools): which commands exist and where their code lives.

Adding a step is its package (steps/<name>/, see README's Development section) plus one line in
STEPS. The package's ``__init__`` names its commands in ``COMMANDS`` (command → its line in
``mlsteps --help`` and where its click command is, "module:attribute") and imports nothing, so
``mlsteps --help`` loads no step's code; beside them ``JENKINS_VAR`` names its Jenkins var
(for steps/faces) and ``INSTALL_EXTRAS`` (when it has any) the pip extras its action installs.
Its ``options.py`` holds ``SECTION`` and ``OUTPUTS``. One name throughout: the registry's key is
the step's command in ``COMMANDS``, its ``SECTION.name``, its action's folder and the
``MLSTEPS_<NAME>_`` prefix of its variables (tests/unit/test_registry.py checks it).

The CLI's command list and help, the mlsteps.yaml schema, the result schemas and the generated
faces (``python -m steps.faces``, which writes a new step's face files from templates) are all
read from here.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import click

from steps.core.options import MLFLOW, MODEL, Section

# step name → its package
STEPS = {
    "secrets": "steps.secrets",
    "train": "steps.train",
    "package": "steps.package",
    "gate": "steps.gate",
    "promote": "steps.promote",
    "deploy": "steps.deploy",
}
# commands that are not steps (no config section): name → module
TOOLS = {
    "config": "steps.config_cmd",
}


def _commands(table: dict[str, str]) -> dict[str, str]:
    """command name → the module holding it (a package may hold two: promote and rollback)."""
    return {
        name: module
        for module in table.values()
        for name in importlib.import_module(module).COMMANDS
    }


def commands() -> dict[str, str]:
    """Every command of ``mlsteps``, steps and tools: name → its module."""
    return {**_commands(STEPS), **_commands(TOOLS)}


def step_commands() -> list[str]:
    """The commands that run a step (rollback too: it runs promote's section)."""
    return list(_commands(STEPS))


def load(name: str) -> ModuleType:
    """The package (or tool module) of a command: its ``COMMANDS``."""
    return importlib.import_module(commands()[name])


def options(name: str) -> ModuleType:
    """The options module of a step's command: its ``SECTION`` and ``OUTPUTS``."""
    return importlib.import_module(commands()[name] + ".options")


def command(name: str) -> click.Command:
    module, _, attribute = load(name).COMMANDS[name][1].partition(":")
    found: click.Command = getattr(importlib.import_module(module), attribute)
    return found


def help_line(name: str) -> str:
    """The command's line in ``mlsteps --help``."""
    line: str = load(name).COMMANDS[name][0]
    return line


def install_extras(step: str) -> tuple[str, ...]:
    """The pip extras (pyproject.toml's optional-dependencies) the step imports when it runs,
    named by ``INSTALL_EXTRAS`` in its package: its action installs mlsteps with them."""
    extras: tuple[str, ...] = getattr(importlib.import_module(STEPS[step]), "INSTALL_EXTRAS", ())
    return extras


def all_sections() -> list[Section]:
    """Every section mlsteps.yaml may have: the shared ones, then one per step."""
    return [
        MLFLOW,
        MODEL,
        *(importlib.import_module(f"{p}.options").SECTION for p in STEPS.values()),
    ]
