"""Every face of every step offers the step's options by the one naming rule: option
`shm-size` of section `train` → flag `--shm-size` → env `MLSTEPS_TRAIN_SHM_SIZE` → action input
`shm-size` → Jenkins key `shmSize`. The option tables (steps/<step>/options.py and the shared
sections) are the source; steps/faces generates the faces from them, and what a face leaves out
it leaves out by the option's `faces` (the reason is written beside it).

The committed files are read here as a runner reads them (YAML, the Groovy map, the CLI's
--help, the Groovy harness), not through the generator, so a generator bug cannot hide.
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

from steps import registry
from steps.faces import __main__ as faces_main
from steps.faces import table
from steps.promote.options import PROMOTE_OPTIONS, ROLLBACK_OPTIONS
from steps.secrets.options import REVOKE_OPTIONS
from tests.groovy_config import camel, default_config_entries

pytestmark = pytest.mark.faces

REPO = Path(__file__).resolve().parents[2]
STEPS = table.steps()
# The names every face offered at 472c512, recorded once by running, in an unpacked
# `git archive 472c512` tree, a script that read each action.yml's inputs, outputs and run-step
# env:, each var's defaultConfig keys, and each command's --flags from click.
NAMES_472C512 = json.loads((Path(__file__).parent / "names_472c512.json").read_text())
# Options added since, each on every face of its step (no name was renamed or removed).
ADDED_SINCE = {
    "gate": ["default-margin"],  # 11d492b
    "promote": ["gate-report-digest", "approval-environment"],  # 6681ee1, 4d9aee6
    "package": ["system-package"],  # issue 16
}
# Which mlsteps subcommand the action's run step execs, by the `rollback`/`revoke` input.
EXECS = {
    "secrets": ["secrets revoke", "secrets fetch"],
    "promote": ["promote", "rollback"],
}


def action(step: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "actions" / step / "action.yml").read_text())
    return loaded


def run_step(step: str) -> dict[str, Any]:
    (found,) = [s for s in action(step)["runs"]["steps"] if s.get("id") == step]
    return found


def jenkins_keys(step: str) -> list[str]:
    return [key for key, _ in default_config_entries(table.jenkins_var(step))]


def flags(command: str) -> set[str]:
    import click

    found = registry.command(command.split()[0])
    if isinstance(found, click.Group):
        found = found.commands[command.split()[1]]
    return {o for p in found.params for o in getattr(p, "opts", []) if o.startswith("--")}


def current_names(step: str) -> dict[str, Any]:
    commands = {"promote": ["promote", "rollback"], "secrets": ["secrets fetch"]}.get(step, [step])
    commands += ["secrets exec", "secrets revoke"] if step == "secrets" else []
    return {
        "action_inputs": set(action(step)["inputs"]),
        "action_outputs": set(action(step)["outputs"]),
        "action_env": set(run_step(step)["env"]),
        "jenkins_keys": set(jenkins_keys(step)),
        "flags": {c: flags(c) for c in commands},
    }


def test_the_generated_faces_are_committed() -> None:
    assert faces_main.main(["--check"]) == 0, "stale: run .venv/bin/python -m steps.faces"


def test_check_shows_drift_and_writing_fixes_it(tmp_path: Path, capsys: Any) -> None:
    for part in ("actions", "vars", "README.md"):
        copy = shutil.copytree if (REPO / part).is_dir() else shutil.copy
        copy(REPO / part, tmp_path / part)
    action_yml = tmp_path / "actions" / "train" / "action.yml"
    action_yml.write_text(action_yml.read_text().replace("Memory limit, e.g.", "Drifted, e.g."))
    groovy = tmp_path / "vars" / "mlGate.groovy"
    groovy.write_text(groovy.read_text().replace("        seed: null,", "        seedy: null,"))
    assert faces_main.main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "-    description: Drifted, e.g. `8g`." in err
    assert "+    description: Memory limit, e.g. `8g`." in err
    assert "+        seed: null," in err
    assert "2 generated file(s) out of date" in err and "python -m steps.faces" in err
    assert faces_main.main(["--root", str(tmp_path)]) == 0
    assert faces_main.main(["--check", "--root", str(tmp_path)]) == 0
    assert action_yml.read_text() == (REPO / "actions" / "train" / "action.yml").read_text()


def test_writing_keeps_the_hand_written_env_lines_and_drops_a_stale_input(tmp_path: Path) -> None:
    shutil.copytree(REPO / "actions", tmp_path / "actions")
    shutil.copytree(REPO / "vars", tmp_path / "vars")
    shutil.copy(REPO / "README.md", tmp_path / "README.md")
    action_yml = tmp_path / "actions" / "train" / "action.yml"
    venv = "        MLSTEPS_VENV: ${{ steps.install.outputs.venv }}\n"
    own = "        HAND_WRITTEN: kept\n"
    stale = "        MLSTEPS_TRAIN_GONE: ${{ inputs.gone }}\n"
    action_yml.write_text(action_yml.read_text().replace(venv, venv + own + stale))
    assert faces_main.main(["--root", str(tmp_path)]) == 0
    text = action_yml.read_text()
    assert venv + own + "        MLSTEPS_CONFIG: ${{ inputs.config }}\n" in text
    assert "MLSTEPS_TRAIN_GONE" not in text


@pytest.mark.parametrize("check", [[], ["--check"]])
def test_outside_a_checkout_it_refuses_and_writes_nothing(
    check: list[str], tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As when mlsteps is installed from a wheel: the package's parent holds no mlsteps project.
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "their-app"\n')
    monkeypatch.setattr(faces_main, "ROOT", tmp_path)
    assert faces_main.main(check) == 2
    err = capsys.readouterr().err
    assert f"python -m steps.faces: {tmp_path} is not an mlsteps checkout" in err
    assert "give the checkout with --root DIR" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pyproject.toml"]


def test_check_names_a_missing_marker(tmp_path: Path, capsys: Any) -> None:
    for part in ("actions", "vars", "README.md"):
        copy = shutil.copytree if (REPO / part).is_dir() else shutil.copy
        copy(REPO / part, tmp_path / part)
    page = tmp_path / "vars" / "mlTrain.txt"
    page.write_text(page.read_text().replace("<!-- keys:end -->", ""))
    assert faces_main.main(["--check", "--root", str(tmp_path)]) == 1
    assert "vars/mlTrain.txt: add the markers <!-- keys:begin --> and <!-- keys:end -->" in (
        capsys.readouterr().err
    )


# Over the steps of 472c512 (a step added since has no names to keep).
@pytest.mark.parametrize("step", sorted(NAMES_472C512))
def test_every_name_of_472c512_is_still_offered_and_nothing_else_is_new(step: str) -> None:
    """No workflow or Jenkinsfile written against 472c512 breaks: the same inputs, outputs,
    variables, keys and flags, plus the options added since."""
    old = NAMES_472C512[step]
    expected: dict[str, Any] = {kind: set(names) for kind, names in old.items() if kind != "flags"}
    expected["flags"] = {command: set(names) for command, names in old["flags"].items()}
    section = registry.options(step).SECTION
    for name in ADDED_SINCE.get(step, []):
        option = section.option(name)
        expected["action_inputs"].add(name)
        expected["action_env"].add(option.env_var(section.name))
        expected["jenkins_keys"].add(camel(name))
        for command in expected["flags"]:
            if command != "rollback":  # rollback takes no gate or approval options
                expected["flags"][command].add(option.flag)
    assert current_names(step) == expected


# --- the composite action -------------------------------------------------------------------


@pytest.mark.parametrize("step", STEPS)
def test_action_inputs_are_the_options_the_action_offers(step: str) -> None:
    offered = [e.name for e in table.entries(step) if table.ACTION in e.faces]
    assert list(action(step)["inputs"]) == offered
    # Only what the option table says is left out is left out.
    left_out = [e.name for e in table.entries(step) if table.ACTION not in e.faces]
    assert left_out == {
        "secrets": ["export-outputs", "mlsteps"],
        "promote": ["vault-token", "github-token", "approvers", "mlsteps"],
        "package": ["registry-password", "mlsteps"],
    }.get(step, ["mlsteps"])


@pytest.mark.parametrize("step", STEPS)
def test_action_descriptions_read_back_as_generated(step: str) -> None:
    """The YAML writer (plain, quoted or folded) loses nothing: a runner reads the text meant."""
    from steps.faces.actions import keys
    from steps.faces.text import describe

    inputs = action(step)["inputs"]
    for entry in table.entries(step):
        if table.ACTION in entry.faces:
            assert inputs[entry.name]["description"] == describe(entry, table.ACTION, keys(step))
    outputs = action(step)["outputs"]
    assert {o.name: o.help for o in table.outputs(step)} == {
        name: spec["description"] for name, spec in outputs.items()
    }


@pytest.mark.parametrize("step", STEPS)
def test_action_passes_each_input_to_its_environment_variable(step: str) -> None:
    expected = {
        e.env: f"${{{{ inputs.{e.name} }}}}"
        for e in table.entries(step)
        if table.ACTION in e.faces and e.env
    }
    env = dict(run_step(step)["env"])
    # The lines that do not map an input are the hand-written step's own (the venv the install
    # step made): kept as they are.
    own = {name: value for name, value in env.items() if "inputs." not in value}
    assert own == {"MLSTEPS_VENV": "${{ steps.install.outputs.venv }}"}
    assert {name: value for name, value in env.items() if name not in own} == expected
    section = registry.options(step).SECTION
    for name, input_name in expected.items():
        if name.startswith(f"MLSTEPS_{section.name.upper()}_"):
            assert name == section.option(input_name[len("${{ inputs.") : -3]).env_var(step)


@pytest.mark.parametrize("step", STEPS)
def test_action_leaves_credentials_it_does_not_offer_to_the_callers_env(step: str) -> None:
    # Set by the action, even to '', they would hide the values the workflow's step gave.
    section = registry.options(step).SECTION
    names = set()
    for option in section.options:
        if option.secret and table.ACTION not in option.faces:
            names |= {option.env_var(section.name), *option.env_fallbacks}
    assert names == {
        "package": {"MLSTEPS_PACKAGE_REGISTRY_PASSWORD"},
        "promote": {
            "MLSTEPS_PROMOTE_VAULT_TOKEN",
            "VAULT_TOKEN",
            "MLSTEPS_PROMOTE_GITHUB_TOKEN",
            "GITHUB_TOKEN",
        },  # fmt: skip
    }.get(step, set())
    for each in action(step)["runs"]["steps"]:
        assert names.isdisjoint(each.get("env") or {})
    if names:
        assert not any(w in " ".join(action(step)["inputs"]) for w in ("password", "token"))


@pytest.mark.parametrize("step", STEPS)
def test_action_inputs_default_to_unset_but_a_switch_to_false(step: str) -> None:
    # An action-side default would reach mlsteps as an environment variable and so outrank the
    # config file; defaults belong to mlsteps. `rollback`/`revoke` are the action's own switch.
    inputs = action(step)["inputs"]
    defaults = {name: spec.get("default") for name, spec in inputs.items()}
    switch = {"promote": "rollback", "secrets": "revoke"}.get(step)
    if switch:
        assert defaults.pop(switch) == "false"
    assert defaults == {name: "" for name in defaults}
    assert all(spec["description"] and spec["required"] is False for spec in inputs.values())


@pytest.mark.parametrize("step", STEPS)
def test_action_execs_the_cli_with_no_expression_in_a_script(step: str) -> None:
    for each in action(step)["runs"]["steps"]:
        assert "${{" not in each.get("run", "")
    script = run_step(step)["run"]
    execs = re.findall(
        r'exec "\$MLSTEPS_VENV/bin/mlsteps" --ci github ([a-z ]+?)\s*(?:;;|$)', script, re.M
    )
    assert execs == EXECS.get(step, [step])


def test_action_rollback_refuses_exactly_the_inputs_rollback_does_not_take() -> None:
    (checked,) = re.findall(r"for input in ([a-z -]+); do", run_step("promote")["run"])
    assert checked.split() == [n for n in PROMOTE_OPTIONS if n not in ROLLBACK_OPTIONS]


@pytest.mark.parametrize("step", STEPS)
def test_action_outputs_are_the_steps_outputs(step: str) -> None:
    outputs = action(step)["outputs"]
    names = [o.name for o in registry.options(step).OUTPUTS]
    assert list(outputs) == names + (["revoked"] if step == "secrets" else [])
    for name, spec in outputs.items():
        assert spec["value"] == f"${{{{ steps.{step}.outputs.{name} }}}}"
        assert spec["description"]


@pytest.mark.parametrize("step", STEPS)
def test_action_readme_tables_list_every_input_and_output(step: str) -> None:
    readme = (REPO / "actions" / step / "README.md").read_text()
    for name in [*action(step)["inputs"], *action(step)["outputs"]]:
        assert f"| `{name}` |" in readme, f"{name} missing from actions/{step}/README.md"
    assert "python -m steps.faces" in readme


# --- the Jenkins var ------------------------------------------------------------------------


def jenkins_key(entry: table.Entry) -> str:
    """The rule, said again here: camelCase; a credential is named by the credential holding it."""
    option = entry.option
    if option is not None and option.secret and not option.cli:
        return option.jenkins_credential or camel(entry.name) + "CredentialsId"
    return camel(entry.name)


@pytest.mark.parametrize("step", STEPS)
def test_jenkins_keys_are_the_options_in_camel_case(step: str) -> None:
    offered = [e for e in table.entries(step) if table.JENKINS in e.faces]
    assert jenkins_keys(step) == [jenkins_key(e) for e in offered]
    left_out = [e.name for e in table.entries(step) if table.JENKINS not in e.faces]
    assert left_out == {
        # GitHub only, or files the step owns (a private directory under pwd(tmp: true)).
        "secrets": [
            "jwt-audience",
            "export-env",
            "export-outputs",
            "file",
            "file-format",
            "lease-file",
            "revoke",
        ],  # fmt: skip
    }.get(step, [])


@pytest.mark.parametrize("step", STEPS)
def test_every_jenkins_key_has_a_comment_within_the_line_limit(step: str) -> None:
    var = table.jenkins_var(step)
    assert all(comment.strip() for _, comment in default_config_entries(var))
    groovy = (REPO / "vars" / f"{var}.groovy").read_text()
    assert max(len(line) for line in groovy.splitlines()) <= 120


@pytest.mark.parametrize("step", STEPS)
def test_jenkins_page_exists_and_lists_every_key(step: str) -> None:
    page = (REPO / "vars" / f"{table.jenkins_var(step)}.txt").read_text()
    keys = page.split("<!-- keys:begin -->")[1].split("<!-- keys:end -->")[0]
    assert re.findall(r"<dt><code>(\w+)</code></dt>", keys) == jenkins_keys(step)
    # The Map the step returns: the step's outputs (withVaultSecrets returns its body's value).
    outputs = page.split("<!-- outputs:begin -->")[1:]
    block = outputs[0].split("<!-- outputs:end -->")[0] if outputs else ""
    listed = re.findall(r"<dt><code>([\w-]+)</code></dt>", block)
    names = [o.name for o in registry.options(step).OUTPUTS]
    assert listed == ([] if step == "secrets" else names)


def test_every_var_has_a_page_and_a_step() -> None:
    assert sorted(p.stem for p in (REPO / "vars").glob("*.groovy")) == sorted(
        table.jenkins_vars().values()
    )
    assert sorted(p.stem for p in (REPO / "vars").glob("*.txt")) == sorted(
        table.jenkins_vars().values()
    )


def flag_args(options: list[Any]) -> dict[str, Any]:
    return {camel(o.name): {"list": ["v"], "bool": True}.get(o.kind, "v") for o in options}


def flagged(step: str, takes: tuple[str, ...] | None = None) -> list[Any]:
    """The options Jenkins passes as flags: the MLflow section travels in the environment (mlTrain
    sets MLSTEPS_MLFLOW_*; the others create no run and take tracking-uri only)."""
    return [
        e.option
        for e in table.entries(step)
        if e.option is not None
        and table.JENKINS in e.faces
        and e.option.cli
        and e.name not in ("tracking-uri", "experiment")
        and (takes is None or e.name in takes)
    ]


@pytest.mark.parametrize("step", STEPS)
def test_jenkins_passes_each_option_as_its_cli_flag(step: str, run_jenkins: Any) -> None:
    var = table.jenkins_var(step)
    options = flagged(step)
    if step == "train":
        options = [o for o in options if o.name != "command"]  # after --, not a flag
    args = {"mlsteps": "true", **flag_args(options)}
    if step == "secrets":
        # mlsteps `true`: fetch "succeeds" without writing the file, so readJSON fails after
        # the command was built; the revoke runs anyway (`finally`).
        run = run_jenkins(
            var, {k: "v" if k != "mlsteps" else v for k, v in args.items()}, body="return 1"
        )
        script = run.calls("sh")[0]["args"]["script"]
        assert re.findall(r"'(--[a-z-]+)' 'v'", script) == [o.flag for o in options]
        return
    run = run_jenkins(var, args)
    assert run.status == "SUCCESS", run.console
    script = run.sh["args"]["script"]
    assert script.startswith(f"'true' '--ci' 'jenkins' '{step}' ")
    assert re.findall(r"'(--[a-z-]+)' '(?:v|true)'", script) == [o.flag for o in options]
    if step == "promote":
        assert run.calls("input") == []  # approvedBy was given: nobody is asked


def test_jenkins_rollback_passes_each_option_rollback_takes(run_jenkins: Any) -> None:
    options = flagged("promote", ROLLBACK_OPTIONS + ("name",))
    run = run_jenkins("mlPromote", {"mlsteps": "true", "rollback": True, **flag_args(options)})
    assert run.status == "SUCCESS", run.console
    script = run.sh["args"]["script"]
    assert script.startswith("'true' '--ci' 'jenkins' 'rollback' ")
    assert re.findall(r"'(--[a-z-]+)' '(?:v|true)'", script) == [o.flag for o in options]


def test_jenkins_passes_a_map_of_rules_as_the_yaml_the_cli_parses(run_jenkins: Any) -> None:
    # JSON is YAML: the Map reaches mlsteps as the mapping mlsteps.yaml would hold.
    metrics = {"accuracy": {"min": 0.9, "min-delta": -0.01}, "rmse": {"max-delta": "2%"}}
    run = run_jenkins("mlGate", {"mlsteps": "true", "metrics": metrics, "drift": False})
    assert run.status == "SUCCESS", run.console
    (text,) = re.findall(r"'--metrics' '([^']*)'", run.sh["args"]["script"])
    assert json.loads(text) == metrics
    parse = registry.options("gate").SECTION.option("metrics").parse
    assert parse is not None and parse(text) == parse(metrics)
    assert "'--drift' 'false'" in run.sh["args"]["script"]


@pytest.mark.parametrize("step", STEPS)
def test_jenkins_reports_the_same_keys_it_declares(step: str, run_jenkins: Any) -> None:
    body = {"body": "return 1"} if step == "secrets" else {}
    run = run_jenkins(table.jenkins_var(step), {"notAnOption": 1}, **body)
    assert run.status == "FAILURE"
    assert run.error.split("known keys: ", 1)[1].split(", ") == jenkins_keys(step)


# --- the CLI --------------------------------------------------------------------------------


@pytest.mark.parametrize("step", STEPS)
def test_credentials_have_no_flag_and_everything_else_has_one(step: str) -> None:
    section = registry.options(step).SECTION
    no_flag = [o.name for o in section.options if not o.cli]
    assert no_flag == {
        "secrets": ["token", "role-id", "secret-id", "jwt"],
        "train": ["command"],  # after --
        "package": ["registry-password"],
        "promote": ["vault-token", "github-token"],
    }.get(step, [])
    assert [o.name for o in section.options if o.secret] == [n for n in no_flag if n != "command"]


# The commands the faces run: each step's (secrets' through its fetch and revoke subcommands).
COMMANDS = [
    *(("secrets fetch", "secrets revoke") if "secrets" in registry.STEPS else ()),
    *(name for name in registry.step_commands() if name != "secrets"),
]


@pytest.mark.parametrize("command", COMMANDS)
def test_cli_help_lists_each_flag_the_faces_pass(command: str, mlsteps_cli: str) -> None:
    proc = subprocess.run(
        [mlsteps_cli, *command.split(), "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    step = {"rollback": "promote"}.get(command, command.split()[0])
    takes = {
        "secrets revoke": REVOKE_OPTIONS,
        "rollback": ROLLBACK_OPTIONS + ("tracking-uri", "name"),
        "promote": PROMOTE_OPTIONS + ("tracking-uri", "name"),
    }.get(command)
    wanted = [
        f"--{e.name}"
        for e in table.entries(step)
        if e.option is not None and e.option.cli and (takes is None or e.name in takes)
    ]
    assert [flag for flag in wanted if flag not in proc.stdout] == []
    for hidden in ("--registry-password", "--vault-token", "--github-token", "--token "):
        assert hidden not in proc.stdout
    if command in ("package", "gate", "promote", "rollback"):
        assert "--experiment" not in proc.stdout  # they create no MLflow run
    if command == "rollback":
        refused = [n for n in PROMOTE_OPTIONS if n not in ROLLBACK_OPTIONS]
        assert [f"--{n}" for n in refused if f"--{n} " in proc.stdout] == []


def test_jenkins_revoke_passes_exactly_the_connection_options_revoke_takes() -> None:
    groovy = (REPO / "vars" / "withVaultSecrets.groovy").read_text()
    keys = re.search(r"connectionKeys\(\) \{\n\s+return \[(.*?)\]", groovy, re.DOTALL)
    assert keys
    assert [
        "--" + re.sub("([A-Z])", lambda m: "-" + m.group(1).lower(), k)
        for k in re.findall(r"'(\w+)'", keys.group(1))
    ] == [f"--{name}" for name in REVOKE_OPTIONS if name != "lease-file"]


def test_the_cli_never_imports_the_generator() -> None:
    # steps/faces is for development: mlsteps --help and every step's --help leave it unloaded.
    probe = (
        "import sys\n"
        "from steps import cli\n"
        "for args in (['--help'], *[[s, '--help'] for s in cli.registry.step_commands()]):\n"
        "    try:\n"
        "        cli.main(args)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('steps.faces')))\n"
    )
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("step", STEPS)
def test_each_face_says_the_values_a_choice_takes(step: str) -> None:
    # --help lists them itself (click); the faces' texts must too (gate's task lost them once).
    from steps.faces.actions import keys as face_keys
    from steps.faces.text import describe

    names = face_keys(step)
    for entry in table.entries(step):
        if entry.option is None or not entry.option.choices:
            continue
        for face in entry.faces:
            said = describe(entry, face, names)
            missing = [c for c in entry.option.choices if f"`{c}`" not in said]
            assert missing == [], f"{step} {entry.name} in the {face} face: {said}"
