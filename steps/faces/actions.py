"""actions/<step>/action.yml: its ``inputs:`` and ``outputs:`` and the ``env:`` of the step that
runs mlsteps; actions/<step>/README.md: the Inputs and Outputs tables. The rest of both files
is written by hand and kept byte for byte.
"""

from __future__ import annotations

import re
import textwrap

import yaml

from steps import registry
from steps.faces import table
from steps.faces.table import ACTION
from steps.faces.text import Unmarked, describe, replace_between

WIDTH = 100  # longer descriptions fold over lines


def scalar(text: str, indent: int) -> str:
    """``text`` as a YAML value after ``description: `` (on one line when it fits)."""
    single = text if _plain_ok(text) else "'" + text.replace("'", "''") + "'"
    if indent + len("description: ") + len(single) <= WIDTH:
        return single
    lines = textwrap.wrap(text, WIDTH - indent - 2, break_on_hyphens=False, break_long_words=False)
    pad = " " * (indent + 2)
    return ">-\n" + "\n".join(pad + line for line in lines)


def _plain_ok(text: str) -> bool:
    try:
        return bool(yaml.safe_load(f"k: {text}") == {"k": text})
    except yaml.YAMLError:
        return False


def keys(step: str) -> dict[str, str]:
    return {e.name: e.jenkins_key for e in table.entries(step)}


def inputs_and_outputs(step: str) -> str:
    names = keys(step)
    lines = ["inputs:"]
    for entry in table.in_face(step, ACTION):
        default = f"'{entry.action_default}'"
        lines += [
            f"  {entry.name}:",
            f"    description: {scalar(describe(entry, ACTION, names), 4)}",
            "    required: false",
            f"    default: {default}",
        ]
    lines += ["", "outputs:"]
    for output in table.outputs(step):
        lines += [
            f"  {output.name}:",
            f"    description: {scalar(output.help, 4)}",
            f"    value: ${{{{ steps.{step}.outputs.{output.name} }}}}",
        ]
    return "\n".join(lines) + "\n"


def env_lines(step: str) -> list[str]:
    """The run step's variables set from inputs: the faces' own first, then the config file,
    the shared sections and the step's options (the order mlsteps' sections are read in)."""
    entries = table.in_face(step, ACTION)
    options = [e for e in entries if e.option is not None and e.env]
    extras = [e for e in entries if e.option is None and e.env]
    config = [e for e in extras if e.name == "config"]
    shared = [e for e in options if not (e.env or "").startswith(_prefix(step))]
    own = [e for e in options if e not in shared]
    ordered = [*(e for e in extras if e.name != "config"), *config, *shared, *own]
    return [f"        {e.env}: ${{{{ inputs.{e.name} }}}}" for e in ordered]


def _prefix(step: str) -> str:
    return f"MLSTEPS_{registry.options(step).SECTION.name.upper()}_"


def render(step: str, text: str) -> str:
    """action.yml with its generated parts rewritten."""
    head, found, rest = text.partition("\ninputs:\n")
    body, found_runs, tail = rest.partition("\nruns:\n")
    if not found or not found_runs:
        raise Unmarked(f"actions/{step}/action.yml: expected top-level inputs: before runs:")
    text = f"{head}\n{inputs_and_outputs(step)}\nruns:\n{tail}"
    # The env: of the step with id <step>: lines taken from inputs are generated, the others
    # (the venv the install step made) kept, in front.
    step_env = re.compile(
        rf"(\n      id: {re.escape(step)}\n(?:      (?!env:).*\n)*      env:\n)((?:        .*\n)*)"
    )
    match = step_env.search(text)
    if not match:
        raise Unmarked(f"actions/{step}/action.yml: the step with id {step} has no env:")
    kept = [line for line in match.group(2).splitlines() if "${{ inputs." not in line]
    body = "\n".join([*kept, *env_lines(step)]) + "\n"
    return text[: match.start(2)] + body + text[match.end(2) :]


def _cell(text: str) -> str:
    # Table cells are one line; a literal | would end the cell.
    return " ".join(text.split()).replace("|", "\\|")


def readme_tables(step: str) -> dict[str, str]:
    names = keys(step)
    inputs = [
        "| Input | Description | Required | Default |",
        "| --- | --- | --- | --- |",
    ]
    for entry in table.in_face(step, ACTION):
        default = f"`{entry.action_default}`" if entry.action_default else ""
        inputs.append(
            f"| `{entry.name}` | {_cell(describe(entry, ACTION, names))} | no | {default} |"
        )
    outputs = ["| Output | Description |", "| --- | --- |"]
    outputs += [f"| `{o.name}` | {_cell(o.help)} |" for o in table.outputs(step)]
    return {"inputs": "\n".join(inputs), "outputs": "\n".join(outputs)}


def render_readme(step: str, text: str) -> str:
    for marker, body in readme_tables(step).items():
        start, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
        missing = f"actions/{step}/README.md: add the markers {start} and {end}"
        text = replace_between(text, start, end, f"\n{body}\n", missing)
    return text
