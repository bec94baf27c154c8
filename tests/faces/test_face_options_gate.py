"""Every face of `gate` lists the same options, mapped by the one rule of the contract:
option `report-dir` → flag `--report-dir` → env `MLSTEPS_GATE_REPORT_DIR` → action input
`report-dir` → Jenkins key `reportDir`. The CLI's option list (steps.gate_options.SECTION, with
the shared mlflow and model sections) is the source; what a face leaves out, it leaves out for a
reason written here.

(Kept beside test_face_options_package.py, which does the same for `package`.)
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps.core.options import MLFLOW, MODEL
from steps.gate import options as gate
from tests import groovy_config
from tests.groovy_config import camel

pytestmark = pytest.mark.faces

REPO = Path(__file__).resolve().parents[2]
ACTION = yaml.safe_load((REPO / "actions" / "gate" / "action.yml").read_text(encoding="utf-8"))

OPTIONS = [o.name for o in gate.SECTION.options]
SHARED_SECTIONS = (MLFLOW, MODEL)
# gate creates no MLflow run (it logs to the candidate's): of the shared mlflow section it
# takes tracking-uri only.
LEAVES_OUT = {"experiment"}
# Beyond the options: the config file in both; which mlsteps runs in Jenkins.
ACTION_EXTRA = ["config"]
JENKINS_EXTRA = ["config", "mlsteps"]
# The rule options: a mapping in mlsteps.yaml, YAML text from a flag or an input, a Map in Jenkins.
RULES = ["metrics", "slices", "schema", "quality", "drift"]


def shared_options() -> list[Any]:
    return [(s.name, o) for s in SHARED_SECTIONS for o in s.options if o.name not in LEAVES_OUT]


def run_step() -> dict[str, Any]:
    (step,) = [s for s in ACTION["runs"]["steps"] if s.get("id") == "gate"]
    found: dict[str, Any] = step
    return found


def default_config_entries() -> list[tuple[str, str]]:
    return groovy_config.default_config_entries("mlGate")


def test_the_contract_options_are_the_clis() -> None:
    # The contract's table, in its order; a change here is a change of every face.
    assert OPTIONS == [
        "model-uri",
        "champion-alias",
        "metrics",
        "data",
        "target",
        "task",
        "training-data",
        "slices",
        "schema",
        "quality",
        "drift",
        "resamples",
        "confidence",
        "seed",
        "default-margin",
        "warn-only",
        "report-dir",
        "log-report",
    ]
    assert [o.name for _, o in shared_options()] == ["tracking-uri", "name"]
    assert [o.name for o in gate.SECTION.options if o.kind == "structured"] == RULES
    assert list(gate.OUTPUTS) == [
        "decision",
        "candidate-version",
        "champion-version",
        "report",
        "report-digest",
        "failed",
    ]


def test_every_option_has_a_flag_and_none_is_a_secret() -> None:
    assert all(o.cli and not o.secret for o in gate.SECTION.options)


def test_action_inputs_are_the_cli_options() -> None:
    expected = OPTIONS + [o.name for _, o in shared_options()] + ACTION_EXTRA
    assert list(ACTION["inputs"]) == expected


def test_action_passes_each_input_to_its_environment_variable() -> None:
    expected = {o.env_var("gate"): f"${{{{ inputs.{o.name} }}}}" for o in gate.SECTION.options}
    expected |= {
        o.env_var(section): f"${{{{ inputs.{o.name} }}}}" for section, o in shared_options()
    }
    expected["MLSTEPS_CONFIG"] = "${{ inputs.config }}"
    env = dict(run_step()["env"])
    assert env.pop("MLSTEPS_VENV") == "${{ steps.install.outputs.venv }}"
    assert env == expected


def test_action_inputs_default_to_unset() -> None:
    # An action-side default would reach mlsteps as an environment variable and so outrank the
    # config file (where thresholds usually live); defaults belong to mlsteps.
    assert {name: spec.get("default") for name, spec in ACTION["inputs"].items()} == {
        name: "" for name in ACTION["inputs"]
    }
    assert all(spec.get("description") for spec in ACTION["inputs"].values())


def test_action_execs_the_cli_with_no_expression_in_a_script() -> None:
    for step in ACTION["runs"]["steps"]:
        assert "${{" not in step.get("run", "")
    assert run_step()["run"].strip() == 'exec "$MLSTEPS_VENV/bin/mlsteps" --ci github gate'


def test_action_installs_mlsteps_with_the_gate_extra_into_the_jobs_shared_venv() -> None:
    """As the train action does (the same venv, the same source), plus the gate extra, which
    scoring on data and report.png need: tested for real under act (test_action_gate.py)."""
    train = yaml.safe_load((REPO / "actions" / "train" / "action.yml").read_text("utf-8"))
    (ours,) = [s for s in ACTION["runs"]["steps"] if s.get("id") == "install"]
    (theirs,) = [s for s in train["runs"]["steps"] if s.get("id") == "install"]
    assert {k: v for k, v in ours.items() if k != "run"} == {
        k: v for k, v in theirs.items() if k != "run"
    }
    for line in (
        'source_dir="$(cd "$GITHUB_ACTION_PATH/../.." && pwd)"',
        'venv="$RUNNER_TEMP/mlsteps-venv"',
        'echo "venv=$venv" >> "$GITHUB_OUTPUT"',
    ):
        assert line in ours["run"] and line in theirs["run"]  # fmt: skip
    assert 'pip install --quiet --disable-pip-version-check "$source_dir[gate]"' in ours["run"]


def test_action_outputs_are_the_steps_outputs() -> None:
    assert list(ACTION["outputs"]) == list(gate.OUTPUTS)
    for name, spec in ACTION["outputs"].items():
        assert spec["value"] == f"${{{{ steps.gate.outputs.{name} }}}}"
        assert spec["description"]


def test_jenkins_keys_are_the_cli_options_in_camel_case() -> None:
    keys = [key for key, _ in default_config_entries()]
    expected = [camel(n) for n in OPTIONS] + [o.jenkins_key for _, o in shared_options()]
    assert keys == expected + JENKINS_EXTRA
    assert [o.jenkins_key for o in gate.SECTION.options] == [camel(n) for n in OPTIONS]


def test_every_jenkins_default_has_a_comment() -> None:
    missing = [key for key, comment in default_config_entries() if not comment.strip()]
    assert missing == []


def test_jenkins_passes_each_option_as_its_cli_flag(run_jenkins: Any) -> None:
    args: dict[str, Any] = {"mlsteps": "true"}
    flagged = [o for o in gate.SECTION.options] + [
        o for _, o in shared_options() if o.name != "tracking-uri"
    ]
    for option in flagged:
        args[option.jenkins_key] = {"list": ["v"], "bool": True}.get(option.kind, "v")
    run = run_jenkins("mlGate", args)
    assert run.status == "SUCCESS", run.console
    flags = re.findall(r"'(--[a-z-]+)' '(?:v|true)'", run.sh["args"]["script"])
    assert flags == [o.flag for o in flagged]


def test_jenkins_passes_a_map_of_rules_as_the_yaml_the_cli_parses(run_jenkins: Any) -> None:
    # JSON is YAML: the Map reaches mlsteps as the mapping mlsteps.yaml would hold.
    metrics = {"accuracy": {"min": 0.9, "min-delta": -0.01}, "rmse": {"max-delta": "2%"}}
    run = run_jenkins("mlGate", {"mlsteps": "true", "metrics": metrics, "drift": False})
    assert run.status == "SUCCESS", run.console
    (text,) = re.findall(r"'--metrics' '([^']*)'", run.sh["args"]["script"])
    assert json.loads(text) == metrics
    parse = gate.SECTION.option("metrics").parse
    assert parse is not None and parse(text) == parse(metrics)
    assert "'--drift' 'false'" in run.sh["args"]["script"]


def test_jenkins_reports_the_same_keys_it_declares(run_jenkins: Any) -> None:
    run = run_jenkins("mlGate", {"notAnOption": 1})
    assert run.status == "FAILURE"
    listed = run.error.split("known keys: ", 1)[1].split(", ")
    assert listed == [key for key, _ in default_config_entries()]


def test_cli_help_lists_each_flag_the_faces_pass(mlsteps_cli: str) -> None:
    proc = subprocess.run(
        [mlsteps_cli, "gate", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    wanted = [o.flag for o in gate.SECTION.options]
    wanted += [o.flag for _, o in shared_options()]
    missing = [flag for flag in wanted if flag not in proc.stdout]
    assert missing == []
    assert "--experiment" not in proc.stdout
