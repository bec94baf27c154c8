"""A new step's faces come from its package and its registry line alone: the layout test's fake
step (tests/unit/test_layout.py), run through ``python -m steps.faces`` on a copy of the
repository's face files, gets an action, an action README, a Jenkins var and its page, and a
README section, each with its option and output; the var runs under the Groovy harness and the
action passes the action linters.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps.core.options import MLFLOW, Option, Section
from steps.faces import __main__ as faces_main
from tests.groovy_config import default_config_entries
from tests.unit.test_layout import fake_step  # noqa: F401  (the fixture: the step, registered)

pytestmark = [pytest.mark.faces, pytest.mark.usefixtures("fake_step")]

REPO = Path(__file__).resolve().parents[2]
HELP = "Say hello (a step added by the layout test)."
NEW = [
    "actions/hello/action.yml",
    "actions/hello/README.md",
    "vars/mlHello.groovy",
    "vars/mlHello.txt",
]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A copy of the repository's face files (and src/, which the vars import)."""
    copy = tmp_path / "repo"
    for part in ("actions", "vars", "src"):
        shutil.copytree(REPO / part, copy / part)
    shutil.copy(REPO / "README.md", copy / "README.md")
    return copy


@pytest.fixture
def generated(root: Path, capsys: Any) -> Path:
    assert faces_main.main(["--root", str(root)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    for name in NEW:
        assert f"wrote {name} from its template\n" in out
    return root


@pytest.fixture
def more_options(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake step with an option of each form a Jenkins key checks, and a credential."""
    request.getfixturevalue("fake_step")  # registered first
    import hello_step.options as options  # type: ignore[import-not-found]  # the fake step

    section = options.SECTION
    more = (
        Option(name="names", help="Whom to greet.", kind="list"),
        Option(name="pairs", help="Extra words, `KEY=VALUE`.", kind="list", jenkins_map=True),
        Option(name="loud", help="`true` shouts.", kind="bool"),
        Option(name="token", help="Token of the greeting service.", secret=True, cli=False),
        Option(name="rules", help="How to greet whom.", kind="structured"),
    )
    monkeypatch.setattr(
        options, "SECTION", Section(section.name, section.help, (*section.options, *more))
    )


def test_check_counts_a_new_steps_missing_faces_stale_and_writes_nothing(
    root: Path, capsys: Any
) -> None:
    assert faces_main.main(["--check", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    for name in NEW:
        assert f"{root / name}: missing; python -m steps.faces writes it\n" in err
    assert "+## `mlsteps hello`\n" in err  # README's new section, as a diff
    assert "5 generated file(s) out of date" in err
    assert not (root / "actions" / "hello").exists()
    assert not (root / "vars" / "mlHello.groovy").exists()
    assert (root / "README.md").read_text() == (REPO / "README.md").read_text()


def test_the_action_is_generated_with_the_option_its_env_and_the_output(generated: Path) -> None:
    action = yaml.safe_load((generated / "actions" / "hello" / "action.yml").read_text())
    assert action["name"] == "mlsteps hello"
    assert action["description"] == HELP
    assert action["inputs"] == {
        "greeting": {
            "description": "What to say. mlsteps default: `hello`.",
            "required": False,
            "default": "",
        },
        "config": {
            "description": "Path of an mlsteps.yaml. Default: ./mlsteps.yaml when present.",
            "required": False,
            "default": "",
        },
    }
    assert action["outputs"] == {
        "said": {"description": "What was said.", "value": "${{ steps.hello.outputs.said }}"}
    }
    install, step = action["runs"]["steps"]
    assert install["run"] == 'bash "$GITHUB_ACTION_PATH/../install.sh"'
    assert step["id"] == "hello"
    assert step["env"] == {
        "MLSTEPS_VENV": "${{ steps.install.outputs.venv }}",
        "MLSTEPS_CONFIG": "${{ inputs.config }}",
        "MLSTEPS_HELLO_GREETING": "${{ inputs.greeting }}",
    }
    assert step["run"] == 'exec "$MLSTEPS_VENV/bin/mlsteps" --ci github hello'
    readme = (generated / "actions" / "hello" / "README.md").read_text()
    assert readme.startswith(f"# `actions/hello`: {HELP.rstrip('.')}\n")
    assert "| `greeting` | What to say. mlsteps default: `hello`. | no |  |\n" in readme
    assert "| `said` | What was said. |\n" in readme


def test_the_var_and_its_page_are_generated_with_the_key_and_the_output(generated: Path) -> None:
    entries = default_config_entries("mlHello", generated / "vars")
    assert [key for key, _ in entries] == ["greeting", "config", "mlsteps"]
    assert entries[0] == ("greeting", "What to say (mlsteps: hello)")
    page = (generated / "vars" / "mlHello.txt").read_text()
    default = "Default: <code>hello</code>."
    assert f"<dt><code>greeting</code></dt><dd>What to say. {default}</dd>" in page
    assert "<dt><code>said</code></dt><dd>What was said.</dd>" in page


def test_readme_lists_the_step_and_gets_its_section_after_the_last_steps(generated: Path) -> None:
    text = (generated / "README.md").read_text()
    steps = text.split("<!-- steps:begin -->", 1)[1].split("<!-- steps:end -->", 1)[0]
    assert steps.endswith(f"- `mlsteps hello`: {HELP}\n")
    section = text.split("## `mlsteps hello`\n", 1)[1].split("\n## ", 1)[0]
    assert "<!-- promote-options:end -->" in text.split("## `mlsteps hello`\n", 1)[0]
    assert text.split("## `mlsteps hello`\n", 1)[1].startswith(
        f"\n{HELP}\n\n<!-- hello-options:begin -->\n"
    )
    assert "| `greeting` (`--greeting`) | `MLSTEPS_HELLO_GREETING` | `greeting` |" in section


def test_after_writing_check_passes_and_the_other_steps_faces_are_unchanged(
    generated: Path, capsys: Any
) -> None:
    assert faces_main.main(["--check", "--root", str(generated)]) == 0, capsys.readouterr().err
    assert faces_main.main(["--root", str(generated)]) == 0
    assert capsys.readouterr().out == ""  # a second run writes nothing
    for part in ("actions", "vars"):
        for path in (REPO / part).rglob("*"):
            if path.is_file():
                assert (generated / path.relative_to(REPO)).read_bytes() == path.read_bytes()
    readme = (generated / "README.md").read_text()
    section = readme.split("## `mlsteps hello`", 1)[1].split("\n## ", 1)[0]
    assert readme.replace("## `mlsteps hello`" + section + "\n", "").replace(
        f"- `mlsteps hello`: {HELP}\n", ""
    ) == ((REPO / "README.md").read_text())


def test_the_generated_var_runs_mlsteps_with_the_flag(generated: Path, run_jenkins: Any) -> None:
    script = generated / "vars" / "mlHello.groovy"
    run = run_jenkins(
        "mlHello", {"mlsteps": "true", "greeting": "hi", "config": "c.yaml"}, script=script
    )
    assert run.status == "SUCCESS", run.console
    assert run.sh["args"]["script"] == (
        "'true' '--ci' 'jenkins' '--config' 'c.yaml' 'hello' '--greeting' 'hi'"
    )
    refused = run_jenkins("mlHello", {"greting": "hi"}, script=script)
    assert refused.status == "FAILURE"
    assert refused.error == (
        "mlHello: unknown key 'greting'; known keys: greeting, config, mlsteps"
    )
    assert refused.calls("sh") == []
    failed = run_jenkins("mlHello", {"mlsteps": "false"}, script=script)
    assert failed.status == "FAILURE"
    assert failed.error.startswith("mlHello: mlsteps hello exited with code 1 (the step failed)")


@pytest.mark.usefixtures("more_options")
def test_the_generated_var_checks_each_keys_form_and_binds_the_credential(
    generated: Path, run_jenkins: Any
) -> None:
    script = generated / "vars" / "mlHello.groovy"
    keys = [key for key, _ in default_config_entries("mlHello", generated / "vars")]
    assert keys == [
        *("greeting", "names", "pairs", "loud", "tokenCredentialsId", "rules"),
        *("config", "mlsteps"),
    ]
    rules = {"bob": {"say": "hi", "times": 2}, "ann": {"say": "it's"}}
    args = {
        "mlsteps": "true",
        "names": ["a", "b"],
        "pairs": {"x": "1"},
        "loud": True,
        "tokenCredentialsId": "hello-token",
        "rules": rules,
    }
    run = run_jenkins("mlHello", args, script=script, credentials={"hello-token": "s3cret"})
    assert run.status == "SUCCESS", run.console
    # A Map of rules goes as JSON (which is YAML), as mlGate's do, not as `key=value` words;
    # the ' in it quoted for the shell.
    as_json = json.dumps(rules, separators=(",", ":")).replace("'", "'\\''")
    assert run.sh["args"]["script"] == (
        "'true' '--ci' 'jenkins' 'hello' '--names' 'a' '--names' 'b' '--pairs' 'x=1' "
        f"'--loud' 'true' '--rules' '{as_json}'"
    )
    assert "it'\\''s" in as_json
    as_text = run_jenkins("mlHello", {"mlsteps": "true", "rules": "bob: {say: hi}"}, script=script)
    assert as_text.sh["args"]["script"].endswith("'--rules' 'bob: {say: hi}'")
    assert run.calls("withCredentials")[0]["args"]["bindings"] == [
        {"type": "string", "credentialsId": "hello-token", "variable": "MLSTEPS_HELLO_TOKEN"}
    ]
    assert run.sh["env"]["MLSTEPS_HELLO_TOKEN"] == "****"  # bound, and masked
    assert "s3cret" not in run.console
    for bad, message in (
        ({"loud": "maybe"}, "mlHello: key 'loud' must be true or false, not 'maybe'"),
        ({"names": 5}, "mlHello: key 'names' must be a List of strings or one String, not Integer"),
        (
            {"pairs": 5},
            "mlHello: key 'pairs' must be a List of 'KEY=VALUE' strings or a Map, not Integer",
        ),
        (
            {"rules": ["a"]},
            "mlHello: key 'rules' must be a Map of rules or YAML text, not ArrayList",
        ),
        (
            {"greeting": ["a"]},
            "mlHello: key 'greeting' must be a String or a number, not ArrayList",
        ),
    ):
        refused = run_jenkins("mlHello", bad, script=script)
        assert (refused.status, refused.error) == ("FAILURE", message)
    without = run_jenkins("mlHello", {"mlsteps": "true"}, script=script)
    assert without.status == "SUCCESS", without.console
    assert without.calls("withCredentials") == [
        {"step": "withCredentials", "args": {"bindings": []}}
    ]


def test_the_generated_action_passes_the_action_linters(generated: Path, python_tool: Any) -> None:
    action = str(generated / "actions" / "hello" / "action.yml")
    for argv in (
        [python_tool("zizmor"), "--offline", action],
        [python_tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions", action],
    ):
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.usefixtures("more_options")
def test_the_generated_var_passes_codenarc(
    generated: Path, groovy_lint: list[str], face_env: dict[str, str]
) -> None:
    # As tests/faces/test_linters.py lints the library (which also shows the linter rejects a bad
    # file), here the new var alone beside src/ (about 10 s).
    (generated / "lint" / "vars").mkdir(parents=True)
    shutil.copy(generated / "vars" / "mlHello.groovy", generated / "lint" / "vars")
    shutil.copytree(generated / "src", generated / "lint" / "src")
    shutil.copy(REPO / ".groovylintrc.yml", generated / "lint")
    proc = subprocess.run(
        [*groovy_lint, "--noserver", "--output", "json", "--failon", "none", "vars", "src"],
        cwd=generated / "lint",
        env=face_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)["files"]
    findings = {Path(name).name: found["errors"] for name, found in report.items()}
    assert findings["mlHello.groovy"] == []


def test_a_step_without_its_jenkins_var_is_named(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hello_step  # type: ignore[import-not-found]  # the fake step, on sys.path

    monkeypatch.delattr(hello_step, "JENKINS_VAR")
    with pytest.raises(LookupError, match=r'hello_step: name .* e\.g\. JENKINS_VAR = "mlHello"'):
        faces_main.main(["--check", "--root", str(root)])


@pytest.fixture
def with_mlflow(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake step's command taking the shared MLflow options too, as train does."""
    request.getfixturevalue("fake_step")  # registered first
    import hello_step.command as command  # type: ignore[import-not-found]  # the fake step

    from steps.core.runtime import step_command

    made = step_command(command.SECTION, shared=(MLFLOW,), help=HELP)(command.command.callback)
    monkeypatch.setattr(command, "command", made)


@pytest.mark.usefixtures("with_mlflow")
def test_the_generated_var_passes_the_mlflow_keys_as_the_environment(
    generated: Path, run_jenkins: Any
) -> None:
    # As every var does: the tracking URI (which may hold a user name) stays off the command
    # line the console shows; withEnv hands it to mlsteps without a shell.
    script = generated / "vars" / "mlHello.groovy"
    keys = [key for key, _ in default_config_entries("mlHello", generated / "vars")]
    assert keys == ["greeting", "trackingUri", "experiment", "config", "mlsteps"]
    args = {"mlsteps": "true", "trackingUri": "http://u@mlflow:5000", "experiment": "e 1"}
    run = run_jenkins("mlHello", args, script=script)
    assert run.status == "SUCCESS", run.console
    assert run.sh["args"]["script"] == "'true' '--ci' 'jenkins' 'hello'"
    assert run.sh["env"]["MLSTEPS_MLFLOW_TRACKING_URI"] == "http://u@mlflow:5000"
    assert run.sh["env"]["MLSTEPS_MLFLOW_EXPERIMENT"] == "e 1"
