"""actions/promote under act (self-hosted: the job runs on this machine), as dry runs: the
action installs mlsteps from its own path, runs `mlsteps promote` (with the GITHUB_TOKEN the
workflow put in the step's env:, to read the run's approvals) or with `rollback: 'true'`
`mlsteps rollback`, and bad input fails the step naming the input. Nothing moves
(MLSTEPS_DRY_RUN); the example workflow's test (test_examples_e2e.py) promotes for real, and
tests/integration/test_promote.py races promotions against a real MLflow server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.leak_forms import leaked

pytestmark = [pytest.mark.faces, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = (REPO / "tests" / "faces" / "workflows" / "promote.yml").read_text(encoding="utf-8")
TOKEN = "ghs_" + "t0k3n" * 7


def run_workflow(run_act: Any, lock: Path, **variables: str) -> Any:
    return run_act(
        WORKFLOW,
        variables={"LOCK_PATH": str(lock), **variables},
        secrets={"APPROVALS_TOKEN": TOKEN},
    )


def test_promote_action_plans_the_move_and_the_rollback(run_act: Any, tmp_path: Path) -> None:
    lock = tmp_path / "locks" / "faces-model.lock"
    result = run_workflow(run_act, lock)
    assert result.returncode == 0, f"{result.annotations}\n{result.log}{result.stderr}"
    # (the step copying the repository in is "0")
    assert result.results == {
        "0": "success",
        "promote": "success",
        "rollback": "success",
        "after": "success",
    }
    # promote: the version, the approval read with the token from the step's env: (without it
    # mlsteps refuses require-approval on GitHub) and the lock the input named.
    assert "read version 7 of 'faces-model' at http://127.0.0.1:9" in result.log
    assert "read who approved GitHub run " in result.log
    assert "/actions/runs/1/approvals, with GITHUB_TOKEN)" in result.log
    assert f"take the file lock {lock} " in result.log
    # rollback: the same lock, the alias back.
    assert "point 'champion' at the version under 'previous-champion'" in result.log
    assert result.log.count(f"take the file lock {lock} ") == 2
    assert not lock.parent.exists()  # a dry run takes no lock
    assert [a for a in result.annotations if a["level"] == "error"] == []
    assert leaked(result.log + result.stderr, {"GitHub token": TOKEN}) == []


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"VERSION": "seven"},
            "input 'version' (env MLSTEPS_PROMOTE_VERSION) 'seven' is not valid: expected a "
            "model version number such as 3.",
        ),
        (
            {"ROLLBACK": "true"},
            "input 'version' is for promote only: mlsteps rollback moves the alias back to the "
            "version under previous-alias. Remove 'version', or set rollback: false to promote.",
        ),
        (
            {"ROLLBACK": "maybe"},
            "input 'rollback' must be 'true' (run mlsteps rollback) or 'false' (mlsteps "
            "promote), not 'maybe'.",
        ),
    ],
    ids=["bad-version", "rollback-with-version", "bad-rollback"],
)
def test_promote_action_fails_the_step_on_bad_input(
    run_act: Any, tmp_path: Path, variables: dict[str, str], message: str
) -> None:
    lock = tmp_path / "faces-model.lock"
    result = run_workflow(run_act, lock, **variables)
    assert result.returncode != 0
    assert result.results["promote"] == "failure"
    assert "rollback" not in result.results and "after" not in result.results
    errors = [a for a in result.annotations if a["level"] == "error"]
    if not errors:
        # act can drop the last line of a shell step that exits right after it (see
        # test_action_secrets.py); the step still failed, as asserted above. One more run must
        # show the annotation — a message that never comes fails the test.
        result = run_workflow(run_act, lock, **variables)
        assert result.results["promote"] == "failure"
        errors = [a for a in result.annotations if a["level"] == "error"]
    (error,) = errors
    assert error["step"] == "promote"
    assert error["message"] == message
