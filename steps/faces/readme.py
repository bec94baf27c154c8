"""README.md's generated parts: the list of steps (between ``<!-- steps:begin -->`` and
``<!-- steps:end -->``: one line per command of a step, in the registry's order, with its --help
line) and the option table of each step (between ``<!-- STEP-options:begin -->`` and
``<!-- STEP-options:end -->``: every name the CLI, the environment and Jenkins give it). A new
step without those markers gets a short section holding them."""

from __future__ import annotations

from steps import registry
from steps.faces import table
from steps.faces.actions import keys
from steps.faces.table import JENKINS
from steps.faces.text import Unmarked, describe, replace_between


def option_table(step: str) -> str:
    names = keys(step)
    rows = [
        "| option (CLI flag) | environment | Jenkins key | meaning | default |",
        "| --- | --- | --- | --- | --- |",
    ]
    for entry in table.entries(step):
        opt = entry.option
        if opt is None:
            continue  # a face's own name (config, mlsteps): not an option of the step
        flag = f"`{opt.flag}`" if opt.cli else ("env only" if opt.secret else "after `--`")
        default = "" if opt.default is None else f"`{opt.shown_default}`"
        env = " / ".join(f"`{name}`" for name in (entry.env, *opt.env_fallbacks))
        key = f"`{entry.jenkins_key}`" if JENKINS in entry.faces else "—"
        meaning = describe(entry, "cli", names).replace("|", "\\|")
        rows.append(f"| `{opt.name}` ({flag}) | {env} | {key} | {meaning} | {default} |")
    return "\n".join(rows)


def step_list() -> str:
    return "\n".join(
        f"- `mlsteps {name}`: {registry.help_line(name)}" for name in registry.step_commands()
    )


def add_sections(text: str) -> str:
    """``text`` with a short section for each step that has no option table yet (a new step):
    its heading, its help line and the table's markers, after the section of the step before it
    in the registry (before the next ``## `` heading). The rest of the section is written by hand.
    """
    before = None
    for step in table.steps():
        begin, end = f"<!-- {step}-options:begin -->", f"<!-- {step}-options:end -->"
        if begin in text:
            before = step
            continue
        if before is None or f"<!-- {before}-options:end -->" not in text:
            raise Unmarked(f"README.md: add the markers {begin} and {end} to {step}'s section")
        after = text.index(f"<!-- {before}-options:end -->")
        at = text.find("\n## ", after) + 1 or len(text)
        section = f"## `mlsteps {step}`\n\n{registry.help_line(step)}\n\n{begin}\n{end}\n\n"
        text = text[:at] + section + text[at:]
        before = step
    return text


def render(text: str) -> str:
    text = add_sections(text)
    blocks = [("steps", "the list of steps", step_list())]
    blocks += [
        (f"{step}-options", f"{step}'s section", option_table(step)) for step in table.steps()
    ]
    for name, where, content in blocks:
        begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        missing = f"README.md: add the markers {begin} and {end} to {where}"
        text = replace_between(text, begin, end, f"\n{content}\n", missing)
    return text
