"""README.md's option table of each step, between ``<!-- STEP-options:begin -->`` and
``<!-- STEP-options:end -->``: every name the CLI, the environment and Jenkins give it."""

from __future__ import annotations

from steps.faces import table
from steps.faces.actions import Unmarked, keys
from steps.faces.table import JENKINS
from steps.faces.text import describe


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


def render(text: str) -> str:
    for step in table.JENKINS_VARS:
        begin, end = f"<!-- {step}-options:begin -->", f"<!-- {step}-options:end -->"
        head, found_begin, rest = text.partition(begin)
        _, found_end, tail = rest.partition(end)
        if not found_begin or not found_end:
            raise Unmarked(f"README.md: add the markers {begin} and {end} to {step}'s section")
        text = f"{head}{begin}\n{option_table(step)}\n{end}{tail}"
    return text
