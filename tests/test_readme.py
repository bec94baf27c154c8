"""README.md: its option tables are generated from each step's options (python -m steps.faces;
tests/faces/test_faces_contract.py checks every generated face), and it holds the commands CI
runs.

Regenerate with: .venv/bin/python -m steps.faces
"""

from __future__ import annotations

from pathlib import Path

import pytest

from steps.faces import readme, table

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


@pytest.mark.parametrize("step", table.steps())
def test_readme_option_table_matches_the_code(step: str) -> None:
    begin, end = f"<!-- {step}-options:begin -->", f"<!-- {step}-options:end -->"
    text = README.read_text()
    assert text.split(begin, 1)[1].split(end, 1)[0] == f"\n{readme.option_table(step)}\n", (
        "README.md is stale: run .venv/bin/python -m steps.faces"
    )


def test_readme_lists_the_registrys_steps() -> None:
    text = README.read_text()
    assert text.split("<!-- steps:begin -->", 1)[1].split("<!-- steps:end -->", 1)[0] == (
        f"\n{readme.step_list()}\n"
    ), "README.md is stale: run .venv/bin/python -m steps.faces"


def test_readme_holds_the_two_commands_ci_runs() -> None:
    text = README.read_text()
    assert "bash examples/quickstart/run.sh" in text
    assert "bash .ci/setup && .venv/bin/python -m pytest" in text
    assert (
        "bash .ci/setup && .venv/bin/python -m pytest"
        in (README.parent / ".ci" / "run").read_text()
    )
