"""README.md's option tables are generated from each step's SECTION, and its list of steps
from the registry; this fails on drift.

Regenerate with: .venv/bin/python tests/test_readme.py --write
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from steps import registry

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
STEPS = tuple(registry.STEPS)
# Each step's Jenkins var: its keys are those of the var's `defaultConfig` map.
JENKINS_VARS = {
    "secrets": "withVaultSecrets",
    "train": "mlTrain",
    "package": "mlPackage",
    "gate": "mlGate",
    "promote": "mlPromote",  # rollback too: it reads the same section
}
# The shared sections (steps/core/options.py) whose options a step takes too, after its own.
SHARED_SECTIONS = {
    "train": ("mlflow",),
    "package": ("mlflow", "model"),
    "gate": ("mlflow", "model"),
    "promote": ("mlflow", "model"),
}
# Credentials whose Jenkins key is not the option's own key + CredentialsId: the registry's
# Username with password credential holds the password (and the user name).
CREDENTIAL_KEYS = {"registryPassword": "registryCredentialsId"}


def jenkins_keys(step: str) -> set[str]:
    """The keys of the `defaultConfig` map of the step's Jenkins var."""
    from tests.groovy_config import default_config_entries

    return {key for key, _ in default_config_entries(JENKINS_VARS[step])}


def jenkins_cell(key: str, keys: set[str]) -> str:
    """The key when the var takes it; its *CredentialsId key when the value comes from a
    Jenkins credential instead; else a dash: the option is not set from Jenkins."""
    for name in (key, f"{key}CredentialsId", CREDENTIAL_KEYS.get(key, "")):
        if name in keys:
            return f"`{name}`"
    return "—"


def markers(step: str) -> tuple[str, str]:
    return f"<!-- {step}-options:begin -->", f"<!-- {step}-options:end -->"


def render(step: str) -> str:
    from steps.core.options import MLFLOW, MODEL

    step_section = registry.options(step).SECTION
    # A step may take only some of a shared section's options (package has no --experiment).
    takes = {p.name for p in registry.command(step).params}
    shared = {s.name: s for s in (MLFLOW, MODEL)}
    sections = (step_section, *(shared[name] for name in SHARED_SECTIONS.get(step, ())))
    keys = jenkins_keys(step)
    rows = [
        "| option (CLI flag) | environment | Jenkins key | meaning | default |",
        "| --- | --- | --- | --- | --- |",
    ]
    for section in sections:
        for opt in section.options:
            if section is not step_section and opt.name.replace("-", "_") not in takes:
                continue
            flag = f"`{opt.flag}`" if opt.cli else ("env only" if opt.secret else "after `--`")
            default = "" if opt.default is None else f"`{opt.shown_default}`"
            help_text = opt.help.replace("|", "\\|")
            env = " / ".join(
                f"`{name}`" for name in (opt.env_var(section.name), *opt.env_fallbacks)
            )
            rows.append(
                f"| `{opt.name}` ({flag}) | {env} | {jenkins_cell(opt.jenkins_key, keys)} "
                f"| {help_text} | {default} |"
            )
    return "\n".join(rows)


STEP_LIST = ("<!-- steps:begin -->", "<!-- steps:end -->")


def render_step_list() -> str:
    """One line per command of a step, in the registry's order, with its --help line."""
    return "\n".join(
        f"- `mlsteps {name}`: {registry.help_line(name)}" for name in registry.step_commands()
    )


def between(begin: str, end: str) -> str:
    text = README.read_text()
    match = re.search(re.escape(begin) + r"\n(.*?)\n" + re.escape(end), text, re.S)
    assert match, f"README.md lacks the {begin} … {end} markers"
    return match.group(1)


def current(step: str) -> str:
    return between(*markers(step))


@pytest.mark.parametrize("step", STEPS)
def test_readme_option_table_matches_the_code(step: str) -> None:
    assert current(step) == render(step), (
        "README.md is stale: run .venv/bin/python tests/test_readme.py --write"
    )


def test_readme_lists_the_registrys_steps() -> None:
    assert between(*STEP_LIST) == render_step_list(), (
        "README.md is stale: run .venv/bin/python tests/test_readme.py --write"
    )


def test_readme_holds_the_two_commands_ci_runs() -> None:
    text = README.read_text()
    assert "bash examples/quickstart/run.sh" in text
    assert "bash .ci/setup && .venv/bin/python -m pytest" in text
    assert (
        "bash .ci/setup && .venv/bin/python -m pytest"
        in (README.parent / ".ci" / "run").read_text()
    )


if __name__ == "__main__" and "--write" in sys.argv:
    sys.path.insert(0, str(ROOT))  # run as a script: make the tests package importable
    text = README.read_text()
    blocks = [(markers(step), render(step)) for step in STEPS]
    for (begin, end), content in [*blocks, (STEP_LIST, render_step_list())]:
        # Only between the markers: the table's old text may occur elsewhere too.
        block = re.compile(re.escape(begin) + r"\n.*?" + re.escape(end), re.S)
        table = f"{begin}\n{content}\n{end}"
        text = block.sub(lambda _, table=table: table, text, count=1)
    README.write_text(text)
