"""README.md's option table is generated from steps/train.py's SECTION; this fails on drift.

Regenerate with: .venv/bin/python tests/test_readme.py --write
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- train-options:begin -->", "<!-- train-options:end -->"


def render() -> str:
    from steps.config import MLFLOW
    from steps.train import SECTION

    rows = [
        "| option (CLI flag) | environment | Jenkins key | meaning | default |",
        "| --- | --- | --- | --- | --- |",
    ]
    for section in (SECTION, MLFLOW):
        for opt in section.options:
            flag = f"`{opt.flag}`" if opt.cli else "after `--`"
            default = "" if opt.default is None else f"`{opt.default}`"
            help_text = opt.help.replace("|", "\\|")
            rows.append(
                f"| `{opt.name}` ({flag}) | `{opt.env_var(section.name)}` | `{opt.jenkins_key}` "
                f"| {help_text} | {default} |"
            )
    return "\n".join(rows)


def current() -> str:
    text = README.read_text()
    match = re.search(re.escape(BEGIN) + r"\n(.*?)\n" + re.escape(END), text, re.S)
    assert match, f"README.md lacks the {BEGIN} … {END} markers"
    return match.group(1)


def test_readme_option_table_matches_the_code() -> None:
    assert current() == render(), (
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
    text = README.read_text()
    README.write_text(text.replace(current(), render()))
