"""actions/install.sh, the first step of every action: mlsteps from the action's own checkout
into one venv per job.

Run directly with bash against tiny checkouts of a project named mlsteps (real pip, local
files only): a venv is made once and reused, a later action that needs an extra adds it, a venv
from another checkout is installed again, a failed install leaves nothing, and an action whose
checkout is not mlsteps' (actions/ copied into another repository) stops with what it looked
for and the two forms that work. Under act, both forms of `uses:` install the real package and
run the action, and the copied-actions case fails the step with that message.
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps import registry

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "actions" / "install.sh"
STEPS = tuple(registry.STEPS)
# The pip extras each step imports at run time (pyproject.toml), named by its package.
EXTRAS = {step: list(registry.install_extras(step)) for step in STEPS}


def action(step: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        (REPO / "actions" / step / "action.yml").read_text("utf-8")
    )
    return loaded


# ------------------------------------------------------------------------- the five actions


@pytest.mark.parametrize("step", STEPS)
def test_each_action_first_calls_the_install_script_with_the_extras_its_step_needs(
    step: str,
) -> None:
    steps = action(step)["runs"]["steps"]
    assert steps[0] == {
        "name": "Install mlsteps",
        "id": "install",
        "shell": "bash",
        "run": " ".join(['bash "$GITHUB_ACTION_PATH/../install.sh"', *EXTRAS.get(step, [])]),
    }
    # The step that runs mlsteps takes the venv the install step wrote.
    (runs,) = [s for s in steps if s.get("id") == step]
    assert runs["env"]["MLSTEPS_VENV"] == "${{ steps.install.outputs.venv }}"


def test_the_extras_the_actions_name_are_the_projects() -> None:
    import tomllib  # Python 3.11+, as the tests run on; mlsteps itself supports 3.10

    project = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]
    assert {e for names in EXTRAS.values() for e in names} <= set(project["optional-dependencies"])
    # install.sh knows an mlsteps checkout by this line.
    assert 'name = "mlsteps"' in (REPO / "pyproject.toml").read_text("utf-8").splitlines()


def test_the_install_step_is_written_once() -> None:
    # The script is the one copy: no action carries pip or the venv path itself.
    for step in STEPS:
        scripts = [s.get("run", "") for s in action(step)["runs"]["steps"]]
        assert [s for s in scripts if "pip " in s or "mlsteps-venv" in s] == [], step


# --------------------------------------------------------------------- the script, directly


def write_project(root: Path, name: str, text: str = "", **files: str) -> Path:
    """A pip-installable project at root: pyproject.toml naming it, plus files."""
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["setuptools>=68"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{name}"
            version = "0.1"
            """
        )
        + textwrap.dedent(text)
    )
    for path, content in files.items():
        (root / path).write_text(content)
    return root


def fake_mlsteps(tmp_path: Path, gate: str | None = None) -> Path:
    """A checkout of a project named mlsteps: an `mlsteps` command, the actions beside it, and
    a gate extra needing the project `probe` (a local one, so no index is asked)."""
    probe = tmp_path / "probe"
    if not probe.exists():
        write_project(probe, "probe", "[tool.setuptools]\npy-modules = ['probe']\n", **{
            "probe.py": "",
        })  # fmt: skip
    checkout = tmp_path / "mlsteps"
    write_project(
        checkout,
        "mlsteps",
        f"""\
        [project.optional-dependencies]
        gate = ["probe @ {gate or probe.as_uri()}"]
        [project.scripts]
        mlsteps = "fake_mlsteps:main"
        [tool.setuptools]
        py-modules = ["fake_mlsteps"]
        """,
        **{"fake_mlsteps.py": "def main() -> None:\n    print('fake mlsteps')\n"},
    )
    for step in STEPS:
        (checkout / "actions" / step).mkdir(parents=True)
    (checkout / "actions" / "install.sh").write_bytes(SCRIPT.read_bytes())
    return checkout


def install(action_dir: Path, runner_temp: Path, *extras: str) -> tuple[Any, str]:
    """Run the repository's install.sh as the action at action_dir would: (process, output)."""
    runner_temp.mkdir(exist_ok=True)
    output = runner_temp / "github-output"
    output.write_text("")
    proc = subprocess.run(
        ["bash", str(SCRIPT), *extras],
        env={
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(Path.home()),
            "GITHUB_ACTION_PATH": str(action_dir),
            "RUNNER_TEMP": str(runner_temp),
            "GITHUB_OUTPUT": str(output),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc, output.read_text()


def pip_ran(venv: Path) -> float:
    """When pip last installed mlsteps into venv (the mtime of its command)."""
    return (venv / "bin" / "mlsteps").stat().st_mtime_ns


@pytest.mark.slow  # pip builds and installs (about 4 s each)
def test_the_first_action_makes_the_venv_and_the_next_reuses_it(tmp_path: Path) -> None:
    checkout, temp = fake_mlsteps(tmp_path), tmp_path / "runner-temp"
    venv = temp / "mlsteps-venv"
    proc, output = install(checkout / "actions" / "train", temp)
    assert proc.returncode == 0, proc.stderr
    assert output == f"venv={venv}\n"
    assert proc.stdout.splitlines() == [
        f"mlsteps: installing {checkout} into this job's venv {venv} with pip (later mlsteps"
        " actions of the job reuse it)"
    ]
    ran = subprocess.run([venv / "bin" / "mlsteps"], capture_output=True, text=True)
    assert ran.stdout == "fake mlsteps\n"
    installed = pip_ran(venv)

    proc, output = install(checkout / "actions" / "package", temp)
    assert proc.returncode == 0, proc.stderr
    assert output == f"venv={venv}\n"
    assert proc.stdout.splitlines() == [
        f"mlsteps: reusing this job's venv {venv} (mlsteps from {checkout})"
    ]
    assert pip_ran(venv) == installed


@pytest.mark.slow  # pip builds and installs (about 4 s each)
def test_a_later_action_needing_an_extra_adds_it_and_keeps_it(tmp_path: Path) -> None:
    checkout, temp = fake_mlsteps(tmp_path), tmp_path / "runner-temp"
    venv = temp / "mlsteps-venv"
    assert install(checkout / "actions" / "train", temp)[0].returncode == 0
    probe = [str(venv / "bin" / "python"), "-c", "import probe"]
    assert subprocess.run(probe, capture_output=True).returncode == 1  # not there yet

    proc, output = install(checkout / "actions" / "gate", temp, "gate")
    assert proc.returncode == 0, proc.stderr
    assert output == f"venv={venv}\n"
    assert proc.stdout.startswith(f"mlsteps: installing {checkout}[gate] into this job's venv")
    assert subprocess.run(probe, capture_output=True).returncode == 0
    installed = pip_ran(venv)

    # The extra stays: neither an action without it nor another gate installs again.
    for step, extras in (("promote", ()), ("gate", ("gate",))):
        proc, _ = install(checkout / "actions" / step, temp, *extras)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines() == [
            f"mlsteps: reusing this job's venv {venv} (mlsteps from {checkout}, extras: gate)"
        ]
    assert pip_ran(venv) == installed


@pytest.mark.slow  # pip builds and installs (about 4 s each)
def test_a_venv_of_another_checkout_is_installed_again_without_its_extras(
    tmp_path: Path,
) -> None:
    first, temp = fake_mlsteps(tmp_path / "a"), tmp_path / "runner-temp"
    second = fake_mlsteps(tmp_path / "b")
    venv = temp / "mlsteps-venv"
    assert install(first / "actions" / "gate", temp, "gate")[0].returncode == 0
    proc, output = install(second / "actions" / "train", temp)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"mlsteps: installing {second} into this job's venv")
    assert (venv / ".mlsteps-source").read_text() == str(second)
    # The extras of the other checkout's install are not this one's to claim.
    proc, _ = install(second / "actions" / "gate", temp, "gate")
    assert proc.stdout.startswith(f"mlsteps: installing {second}[gate] into")


@pytest.mark.slow  # pip builds and installs (about 4 s each)
def test_a_failed_install_leaves_no_venv_and_no_output(tmp_path: Path) -> None:
    checkout = fake_mlsteps(tmp_path, gate=(tmp_path / "no-such-project").as_uri())
    temp = tmp_path / "runner-temp"
    proc, output = install(checkout / "actions" / "gate", temp, "gate")
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[-1] == (
        "::error title=mlsteps install failed::mlsteps: pip could not install"
        f" {checkout}[gate] into {temp / 'mlsteps-venv'} (its messages are above)"
    )
    assert "no-such-project" in proc.stderr  # pip's own reason
    assert output == ""
    assert sorted(p.name for p in temp.iterdir()) == ["github-output"]


@pytest.mark.slow  # pip builds and installs (about 4 s each)
def test_a_failed_extra_leaves_the_venv_unvouched_for(tmp_path: Path) -> None:
    # The venv of an earlier action stays, but no record claims the half-installed extras:
    # the next action installs again instead of trusting it.
    checkout = fake_mlsteps(tmp_path, gate=(tmp_path / "no-such-project").as_uri())
    temp = tmp_path / "runner-temp"
    assert install(checkout / "actions" / "train", temp)[0].returncode == 0
    assert install(checkout / "actions" / "gate", temp, "gate")[0].returncode == 1
    proc, _ = install(checkout / "actions" / "train", temp)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"mlsteps: installing {checkout} into")


def not_a_checkout_message(action_dir: Path, source_dir: Path) -> str:
    return (
        "::error title=mlsteps is not installable from here::mlsteps: this action installs"
        " mlsteps from the mlsteps checkout it lives in, two directories above the action"
        f" ({action_dir}), but {source_dir} is not one (it has no pyproject.toml naming the"
        " project mlsteps): the actions cannot be copied into a repository on their own."
        " Either use them from the mlsteps repository, `uses:"
        " OWNER/mlsteps/actions/<step>@<ref>`, or check mlsteps out beside your workflow"
        " (actions/checkout with `repository: OWNER/mlsteps` and `path: mlsteps`) and use"
        ' `uses: ./mlsteps/actions/<step>`; README.md, "Using the actions", shows both.'
    )


@pytest.mark.parametrize("theirs", ["their own project", "no project"])
def test_actions_copied_into_another_repository_stop_with_the_two_forms_that_work(
    tmp_path: Path, theirs: str
) -> None:
    # Their pyproject.toml must not be installed in mlsteps' place.
    repo = tmp_path / "their-repo"
    if theirs == "their own project":
        write_project(repo, "their-app")
    (repo / "actions" / "train").mkdir(parents=True)
    temp = tmp_path / "runner-temp"
    proc, output = install(repo / "actions" / "train", temp)
    assert proc.returncode == 2
    assert proc.stdout.splitlines() == [not_a_checkout_message(repo / "actions" / "train", repo)]
    assert proc.stderr == ""
    assert output == ""
    assert sorted(p.name for p in temp.iterdir()) == ["github-output"]


def test_a_path_cannot_end_the_error_or_smuggle_in_an_escape(tmp_path: Path) -> None:
    repo = tmp_path / "100%0Aof\n::warning::it"
    (repo / "actions" / "train").mkdir(parents=True)
    proc, _ = install(repo / "actions" / "train", tmp_path / "runner-temp")
    assert proc.returncode == 2
    (line,) = proc.stdout.splitlines()
    assert "100%250Aof%0A::warning::it" in line and "100%0Aof" not in line


# ------------------------------------------------------------------------------ under act

# What a later step of the job sees: where the venv got mlsteps from (this repository, which the
# step fails unless), and the mlsteps module that venv runs.
WHERE = """\
venv="$RUNNER_TEMP/mlsteps-venv"
echo "workspace=$GITHUB_WORKSPACE" >> "$GITHUB_OUTPUT"
echo "venv=$venv" >> "$GITHUB_OUTPUT"
if [ -d "$venv" ]; then
  source_dir="$(cat "$venv/.mlsteps-source")"
  echo "source=$source_dir" >> "$GITHUB_OUTPUT"
  for file in pyproject.toml actions/install.sh; do
    cmp "$source_dir/$file" "$MLSTEPS_ACT_SOURCE/$file"  # this repository's
  done
  echo "module=$("$venv/bin/python" -c 'import steps; print(steps.__file__)')" >> "$GITHUB_OUTPUT"
fi
"""
# The cheapest real action run: secrets revoke with nothing to revoke (no service needed).
SECRETS = {"id": "secrets", "with": {"revoke": True}}
LOOK = {"id": "where", "if": "always()", "shell": "bash", "run": WHERE}


def workflow(*steps: dict[str, Any]) -> str:
    job = {"runs-on": "ubuntu-latest", "steps": list(steps)}
    doc = {"name": "faces-install", "on": "workflow_dispatch", "permissions": {}}
    return yaml.safe_dump({**doc, "jobs": {"install": job}}, sort_keys=False)


def assert_ran_from_the_venv_installed_from(result: Any, source_dir: Path) -> None:
    assert result.returncode == 0, result.log + result.stderr
    assert result.results["secrets"] == "success", result.results
    assert result.outputs["secrets"]["revoked"] == "0"
    where = result.outputs["where"]
    assert f"mlsteps: installing {source_dir} into this job's venv {where['venv']}" in result.log
    assert "nothing to revoke: no lease record found" in result.log
    assert where["source"] == str(source_dir)
    module = Path(where["module"])
    assert module.is_relative_to(where["venv"]) and "site-packages" in module.parts, module
    assert result.results["where"] == "success"  # and that source is this repository


@pytest.mark.faces
@pytest.mark.slow
def test_uses_owner_mlsteps_actions_at_a_ref_installs_from_that_repository(
    run_act: Any, tmp_path: Path
) -> None:
    result = run_act(
        workflow({**SECRETS, "uses": "OWNER/mlsteps/actions/secrets@v0"}, LOOK),
        checkout=False,
        remote=["OWNER/mlsteps@v0"],
    )
    source_dir = Path(result.outputs["where"]["source"])
    # Fetched as the action's repository, not taken from the workflow's workspace.
    assert source_dir.is_relative_to(tmp_path / "act-cache"), source_dir
    assert not source_dir.is_relative_to(result.outputs["where"]["workspace"])
    assert_ran_from_the_venv_installed_from(result, source_dir)


@pytest.mark.faces
@pytest.mark.slow
def test_a_checkout_of_mlsteps_beside_the_workflow_installs_from_that_checkout(
    run_act: Any,
) -> None:
    checkout = {
        "uses": "actions/checkout@v4",
        "with": {"repository": "OWNER/mlsteps", "path": "mlsteps", "persist-credentials": False},
    }
    result = run_act(workflow(checkout, {**SECRETS, "uses": "./mlsteps/actions/secrets"}, LOOK))
    source_dir = Path(result.outputs["where"]["workspace"]) / "mlsteps"
    assert_ran_from_the_venv_installed_from(result, source_dir)


@pytest.mark.faces
@pytest.mark.slow
def test_actions_copied_into_a_repository_fail_the_step_with_the_two_forms(
    run_act: Any,
) -> None:
    copy = {
        "name": "Copy only actions/ in, beside the repository's own project",
        "shell": "bash",
        "run": 'cp -a "$MLSTEPS_ACT_SOURCE/actions" .\n'
        "printf '[project]\\nname = \"their-app\"\\n' > pyproject.toml",
    }
    result = run_act(workflow(copy, {**SECRETS, "uses": "./actions/secrets"}, LOOK), checkout=False)
    assert result.returncode != 0
    assert result.results["secrets"] == "failure", result.results
    assert result.exits == {"secrets/install": 2, "secrets": 2}
    workspace = Path(result.outputs["where"]["workspace"])
    (error,) = [a for a in result.annotations if a["level"] == "error"]
    expected = not_a_checkout_message(workspace / "actions" / "secrets", workspace)
    assert error == {"step": "secrets", "level": "error", "message": expected.split("::", 2)[2]}
    # Nothing was installed: no venv, and their project was not taken for mlsteps.
    assert "venv" in result.outputs["where"] and "source" not in result.outputs["where"]
