"""ruff and mypy (strict) over the package and the tests, as tests, so CI runs them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def tool(name: str) -> str:
    found = Path(sys.executable).parent / name
    if found.exists():
        return str(found)
    on_path = shutil.which(name)
    if not on_path:
        pytest.fail(f"{name} is not installed: run `bash .ci/setup` (it installs mlsteps[dev])")
    return on_path


@pytest.mark.parametrize(
    "argv",
    [
        ["ruff", "check", "steps", "tests"],
        ["ruff", "format", "--check", "steps", "tests"],
        ["mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict"],
)
def test_linter_is_clean(argv: list[str]) -> None:
    done = subprocess.run([tool(argv[0]), *argv[1:]], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
