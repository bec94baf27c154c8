"""actions/*/README.md tables are generated from action.yml (actions/gen_readme.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.faces

REPO = Path(__file__).resolve().parents[2]


def gen_readme(actions_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(actions_dir / "gen_readme.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_readmes_match_action_yml() -> None:
    proc = gen_readme(REPO / "actions", "--check")
    assert proc.returncode == 0, f"{proc.stderr}\nrun: python actions/gen_readme.py"


def test_check_reports_drift_and_regenerating_fixes_it(tmp_path: Path) -> None:
    actions = tmp_path / "actions"
    shutil.copytree(REPO / "actions", actions)
    action_yml = actions / "train" / "action.yml"
    action_yml.write_text(
        action_yml.read_text().replace(
            "description: Memory limit, e.g. `4g`.", "description: Memory limit | drifted."
        )
    )
    drifted = gen_readme(actions, "--check")
    assert drifted.returncode == 1
    assert "+| `memory` | Memory limit \\| drifted. | no |  |" in drifted.stderr
    assert gen_readme(actions).returncode == 0
    assert gen_readme(actions, "--check").returncode == 0
    assert (
        "| `memory` | Memory limit \\| drifted. |" in (actions / "train" / "README.md").read_text()
    )


def test_every_input_and_output_is_in_the_readme() -> None:
    import yaml

    for action_yml in REPO.glob("actions/*/action.yml"):
        action = yaml.safe_load(action_yml.read_text())
        readme = (action_yml.parent / "README.md").read_text()
        for name in [*action["inputs"], *action["outputs"]]:
            assert f"| `{name}` |" in readme, f"{name} missing from {action_yml.parent}/README.md"
