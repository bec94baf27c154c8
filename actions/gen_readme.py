"""Write the Inputs and Outputs tables of each actions/<name>/README.md from its action.yml.

action.yml is the one source of the action's interface; the README tables between the
``<!-- inputs:start -->``/``<!-- inputs:end -->`` and ``<!-- outputs:start -->``/
``<!-- outputs:end -->`` markers are generated from it. Everything else in the README is
written by hand.

    python actions/gen_readme.py           # rewrite the tables
    python actions/gen_readme.py --check   # exit 1 and show a diff when a README is stale
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

ACTIONS_DIR = Path(__file__).resolve().parent


class ReadmeError(Exception):
    pass


def _cell(text: object) -> str:
    # Table cells are one line; a literal | would end the cell.
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{text}`" if text != "" else ""


def inputs_table(inputs: Mapping[str, Mapping[str, Any]]) -> str:
    rows = [
        "| Input | Description | Required | Default |",
        "| --- | --- | --- | --- |",
    ]
    for name, spec in inputs.items():
        required = "yes" if spec.get("required", False) else "no"
        default = _code(_cell(spec.get("default", "")))
        rows.append(f"| `{name}` | {_cell(spec.get('description', ''))} | {required} | {default} |")
    return "\n".join(rows)


def outputs_table(outputs: Mapping[str, Mapping[str, Any]]) -> str:
    rows = ["| Output | Description |", "| --- | --- |"]
    for name, spec in outputs.items():
        rows.append(f"| `{name}` | {_cell(spec.get('description', ''))} |")
    return "\n".join(rows)


def _replace_block(text: str, marker: str, body: str, readme: Path) -> str:
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    head, found_start, rest = text.partition(start)
    _, found_end, tail = rest.partition(end)
    if not found_start or not found_end:
        raise ReadmeError(f"{readme}: add the markers {start} and {end} where the table goes")
    return f"{head}{start}\n{body}\n{end}{tail}"


def render(action_yml: Path, readme_text: str, readme: Path) -> str:
    action = yaml.safe_load(action_yml.read_text(encoding="utf-8"))
    text = _replace_block(readme_text, "inputs", inputs_table(action.get("inputs") or {}), readme)
    return _replace_block(text, "outputs", outputs_table(action.get("outputs") or {}), readme)


def action_dirs(root: Path = ACTIONS_DIR) -> list[Path]:
    return sorted(p.parent for p in root.glob("*/action.yml"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when a README is stale")
    args = parser.parse_args(argv)
    stale = 0
    for directory in action_dirs():
        readme = directory / "README.md"
        if not readme.is_file():
            print(f"{readme}: missing; write it with the table markers", file=sys.stderr)
            stale += 1
            continue
        current = readme.read_text(encoding="utf-8")
        try:
            wanted = render(directory / "action.yml", current, readme)
        except ReadmeError as error:
            print(error, file=sys.stderr)
            stale += 1
            continue
        if wanted == current:
            continue
        if args.check:
            stale += 1
            diff = difflib.unified_diff(
                current.splitlines(keepends=True),
                wanted.splitlines(keepends=True),
                fromfile=f"{readme} (committed)",
                tofile=f"{readme} (from action.yml)",
            )
            sys.stderr.writelines(diff)
        else:
            readme.write_text(wanted, encoding="utf-8")
            print(f"wrote {readme}")
    if stale and args.check:
        print(
            f"{stale} README(s) out of date with action.yml: run python actions/gen_readme.py",
            file=sys.stderr,
        )
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
