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

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import uv
import yaml

from steps import registry

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "actions" / "install.sh"
STEPS = tuple(registry.STEPS)
# The pip extras each step imports at run time (pyproject.toml), named by its package.
EXTRAS = {step: list(registry.install_extras(step)) for step in STEPS}
# The uv install.sh bootstraps where the runner has none.
(UV_PIN,) = re.findall(r"^uv_version=(\S+)$", SCRIPT.read_text("utf-8"), re.M)


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
    """A checkout of a project named mlsteps: an `mlsteps` command, steps/ (part of the cache
    key), the actions beside it, and a gate extra (default: the local project `probe`, so no
    index is asked)."""
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
        gate = ["{gate or "probe @ " + probe.as_uri()}"]
        [project.scripts]
        mlsteps = "fake_mlsteps:main"
        [tool.setuptools]
        py-modules = ["fake_mlsteps"]
        """,
        **{"fake_mlsteps.py": "def main() -> None:\n    print('fake mlsteps')\n"},
    )
    (checkout / "steps").mkdir()
    (checkout / "steps" / "__init__.py").write_text('__version__ = "0.1"\n')
    for step in STEPS:
        (checkout / "actions" / step).mkdir(parents=True)
    (checkout / "actions" / "install.sh").write_bytes(SCRIPT.read_bytes())
    return checkout


@pytest.fixture(scope="module")
def uv_on_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dir holding only `uv` (the one in this venv), as setup-uv puts it on PATH."""
    bin_dir = tmp_path_factory.mktemp("uv-bin")
    (bin_dir / "uv").symlink_to(Path(uv.find_uv_bin()))
    return bin_dir


def install(
    action_dir: Path,
    runner_temp: Path,
    *extras: str,
    tool_cache: Path | None = None,
    path: Path | None = None,
    env: dict[str, str] | None = None,
) -> tuple[Any, str]:
    """Run the repository's install.sh as the action at action_dir would: (process, output).
    tool_cache: $RUNNER_TOOL_CACHE (unset: none, the cache lives in runner_temp); path: a dir
    put first on PATH (e.g. holding uv)."""
    runner_temp.mkdir(exist_ok=True)
    output = runner_temp / "github-output"
    output.write_text("")
    proc = subprocess.run(
        ["bash", str(SCRIPT), *extras],
        env={
            "PATH": f"{path}:/usr/local/bin:/usr/bin:/bin"
            if path
            else "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(Path.home()),
            "GITHUB_ACTION_PATH": str(action_dir),
            "RUNNER_TEMP": str(runner_temp),
            "GITHUB_OUTPUT": str(output),
            # A runner whose owner shares the tool cache across jobs (install.sh says why it is
            # opt-in); test_the_tool_cache_is_shared_only_where_the_runner_says_so without it.
            **(
                {"RUNNER_TOOL_CACHE": str(tool_cache), "MLSTEPS_INSTALL_CACHE": "shared"}
                if tool_cache
                else {}
            ),
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc, output.read_text()


def install_ok(action_dir: Path, runner_temp: Path, *extras: str, **options: Any) -> Any:
    """install(), which must succeed: its process."""
    proc, _ = install(action_dir, runner_temp, *extras, **options)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def job_record(runner_temp: Path) -> list[str]:
    """What install.sh vouches for in this job: [venv, source, extras]."""
    return (runner_temp / "mlsteps-job").read_text().splitlines()


def installed_at(venv: Path) -> float:
    """When mlsteps was last installed into venv (the mtime of its command)."""
    return (venv / "bin" / "mlsteps").stat().st_mtime_ns


def uv_line(spec: Path | str, venv: Path, uv_from: str = "uv on PATH") -> str:
    return (
        f"mlsteps: installing {spec} into the cached venv {venv} with {uv_from} (later mlsteps"
        " actions of the job, and of later jobs where the runner shares its tool cache, reuse it)"
    )


def pip_lines(spec: Path | str, runner_temp: Path, why: str) -> list[str]:
    return [
        f"mlsteps: not using uv: {why}; installing with pip",
        f"mlsteps: installing {spec} into this job's venv {runner_temp / 'mlsteps-venv'} with"
        " pip (later mlsteps actions of the job reuse it)",
    ]


def cached_venvs(tool_cache: Path) -> list[Path]:
    return sorted((tool_cache / "mlsteps").glob("venv-*"))


@pytest.mark.slow  # uv builds and installs (about a second each)
def test_the_first_action_installs_with_uv_and_the_next_reuses_the_venv(
    tmp_path: Path, uv_on_path: Path
) -> None:
    checkout, temp, cache = fake_mlsteps(tmp_path), tmp_path / "runner-temp", tmp_path / "tool"
    proc, output = install(checkout / "actions" / "train", temp, tool_cache=cache, path=uv_on_path)
    assert proc.returncode == 0, proc.stderr
    (venv,) = cached_venvs(cache)
    assert output == f"venv={temp / 'mlsteps-venv'}\n"
    assert proc.stdout.splitlines() == [uv_line(checkout, venv)]
    assert job_record(temp) == [str(venv), str(checkout), ""]
    ran = subprocess.run([venv / "bin" / "mlsteps"], capture_output=True, text=True)
    assert ran.stdout == "fake mlsteps\n"
    assert (temp / "mlsteps-venv").resolve() == venv  # the job's name for it, a link
    installed = installed_at(venv)

    started = time.monotonic()
    proc, output = install(checkout / "actions" / "package", temp, tool_cache=cache)
    assert time.monotonic() - started < 1
    assert proc.returncode == 0, proc.stderr
    assert output == f"venv={temp / 'mlsteps-venv'}\n"
    assert proc.stdout.splitlines() == [
        f"mlsteps: reusing this job's venv {temp / 'mlsteps-venv'} (mlsteps from {checkout})"
    ]
    assert installed_at(venv) == installed


@pytest.mark.slow
def test_a_later_action_needing_an_extra_gets_a_venv_with_it_and_keeps_it(
    tmp_path: Path, uv_on_path: Path
) -> None:
    checkout, temp, cache = fake_mlsteps(tmp_path), tmp_path / "runner-temp", tmp_path / "tool"
    install_ok(checkout / "actions" / "train", temp, tool_cache=cache, path=uv_on_path)
    (plain,) = cached_venvs(cache)
    probe = ["-c", "import probe"]
    assert subprocess.run([plain / "bin" / "python", *probe], capture_output=True).returncode == 1

    proc, output = install(
        checkout / "actions" / "gate", temp, "gate", tool_cache=cache, path=uv_on_path
    )
    assert proc.returncode == 0, proc.stderr
    (venv,) = set(cached_venvs(cache)) - {plain}
    assert output == f"venv={temp / 'mlsteps-venv'}\n"
    assert proc.stdout.splitlines() == [uv_line(f"{checkout}[gate]", venv)]
    assert subprocess.run([venv / "bin" / "python", *probe], capture_output=True).returncode == 0
    installed = installed_at(venv)

    # The extra stays: neither an action without it nor another gate installs again.
    for step, extras in (("promote", ()), ("gate", ("gate",))):
        proc, _ = install(checkout / "actions" / step, temp, *extras, tool_cache=cache)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines() == [
            f"mlsteps: reusing this job's venv {temp / 'mlsteps-venv'} (mlsteps from {checkout},"
            " extras: gate)"
        ]
    assert installed_at(venv) == installed


@pytest.mark.slow
def test_a_venv_of_another_checkout_is_not_reused_nor_its_extras_claimed(
    tmp_path: Path, uv_on_path: Path
) -> None:
    first, temp, cache = fake_mlsteps(tmp_path / "a"), tmp_path / "runner-temp", tmp_path / "tool"
    second = fake_mlsteps(tmp_path / "b")
    (second / "fake_mlsteps.py").write_text("def main() -> None:\n    print('second')\n")
    install_ok(first / "actions" / "gate", temp, "gate", tool_cache=cache, path=uv_on_path)
    proc, _ = install(second / "actions" / "train", temp, tool_cache=cache, path=uv_on_path)
    assert proc.returncode == 0, proc.stderr
    # Another key (its pyproject.toml differs), so a's venv is not reused; the job's record now
    # names the second checkout, with no extras.
    assert proc.stdout.startswith(f"mlsteps: installing {second} into the cached venv")
    assert job_record(temp)[1:] == [str(second), ""]
    proc, _ = install(second / "actions" / "gate", temp, "gate", tool_cache=cache)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"mlsteps: installing {second}[gate] into the cached venv")
    assert len(cached_venvs(cache)) == 3  # a[gate], b, b[gate]


@pytest.mark.slow
def test_a_new_job_reuses_the_cached_venv_and_a_changed_source_does_not(
    tmp_path: Path, uv_on_path: Path
) -> None:
    checkout, cache = fake_mlsteps(tmp_path), tmp_path / "tool"
    first = install(checkout / "actions" / "gate", tmp_path / "job-1", "gate", tool_cache=cache,
                    path=uv_on_path)[0]  # fmt: skip
    assert first.returncode == 0, first.stderr
    (venv,) = cached_venvs(cache)
    installed = installed_at(venv)

    # A new job: a fresh $RUNNER_TEMP, the same tool cache; no uv needed at all.
    started = time.monotonic()
    proc, output = install(checkout / "actions" / "gate", tmp_path / "job-2", "gate",
                           tool_cache=cache)  # fmt: skip
    assert time.monotonic() - started < 1
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"mlsteps: reusing the cached venv {venv} (mlsteps from {checkout}, same version, source"
        " and Python; extras: gate)"
    ]
    assert output == f"venv={tmp_path / 'job-2' / 'mlsteps-venv'}\n"
    assert installed_at(venv) == installed

    # A branch changed a step's code without changing the version: a venv of its own.
    (checkout / "steps" / "__init__.py").write_text('__version__ = "0.1"\nCHANGED = 1\n')
    proc, output = install(checkout / "actions" / "gate", tmp_path / "job-3", "gate",
                           tool_cache=cache, path=uv_on_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (changed,) = set(cached_venvs(cache)) - {venv}
    assert proc.stdout.splitlines() == [uv_line(f"{checkout}[gate]", changed)]
    assert installed_at(venv) == installed


@pytest.mark.slow
def test_cached_venvs_no_job_used_for_a_week_go_when_another_is_published(
    tmp_path: Path, uv_on_path: Path
) -> None:
    checkout, cache = fake_mlsteps(tmp_path), tmp_path / "tool"
    for job, extras in (("job-1", ()), ("job-2", ("gate",))):
        proc = install(checkout / "actions" / "gate", tmp_path / job, *extras, tool_cache=cache,
                       path=uv_on_path)[0]  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    plain, gate = sorted(cached_venvs(cache), key=lambda v: (v / ".mlsteps-extras").read_text())
    week_ago = time.time() - 8 * 86400
    for venv in (plain, gate):
        os.utime(venv / ".mlsteps-key", (week_ago, week_ago))
    # A job uses the gate venv (touching it), then a changed source publishes a new venv.
    assert (
        "reusing the cached venv"
        in install(checkout / "actions" / "gate", tmp_path / "job-3", "gate", tool_cache=cache)[
            0
        ].stdout
    )
    (checkout / "steps" / "__init__.py").write_text('__version__ = "0.1"\nCHANGED = 1\n')
    proc = install(checkout / "actions" / "train", tmp_path / "job-4", tool_cache=cache,
                   path=uv_on_path)[0]  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert not plain.exists() and gate.exists()
    assert len(cached_venvs(cache)) == 2


def plant(cache: Path, how: str, real: Path) -> None:
    """Make the one cached venv in cache (real, a real venv of this key) untrustworthy."""
    if how == "group-writable":
        real.chmod(0o775)
    elif how == "world-writable":
        real.chmod(0o757)
    elif how == "symlinked":
        elsewhere = cache.parent / "elsewhere"
        real.rename(elsewhere)
        real.symlink_to(elsewhere)
    elif how == "another key":
        marker = real / ".mlsteps-key"
        marker.write_text(marker.read_text().replace("mlsteps 0.1", "mlsteps 0.2"))
    elif how == "a shared cache dir":
        (cache / "mlsteps").chmod(0o777)


@pytest.mark.slow
@pytest.mark.parametrize(
    "how", ["group-writable", "world-writable", "symlinked", "another key", "a shared cache dir"]
)
def test_a_planted_cached_venv_is_not_used(tmp_path: Path, uv_on_path: Path, how: str) -> None:
    checkout, cache = fake_mlsteps(tmp_path), tmp_path / "tool"
    first = install(checkout / "actions" / "train", tmp_path / "job-1", tool_cache=cache,
                    path=uv_on_path)[0]  # fmt: skip
    assert first.returncode == 0, first.stderr
    (planted,) = cached_venvs(cache)
    plant(cache, how, planted)
    # What an attacker's venv would run: their mlsteps.
    (planted / "bin" / "mlsteps").write_text("#!/bin/sh\necho planted\n")

    proc, output = install(checkout / "actions" / "train", tmp_path / "job-2", tool_cache=cache,
                           path=uv_on_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "reusing" not in proc.stdout
    assert proc.stdout.splitlines()[-1].startswith(
        f"mlsteps: installing {checkout} into the cached"
    )
    venv = Path(output.removeprefix("venv=").strip()).resolve()
    assert venv not in (planted, planted.resolve())
    assert (planted / "bin" / "mlsteps").read_text() == "#!/bin/sh\necho planted\n"  # not replaced
    if how == "a shared cache dir":  # the whole tool cache is passed over, for this job's own
        assert proc.stdout.splitlines()[0] == (
            f"mlsteps: not using the tool cache's {cache / 'mlsteps'}: it is not a directory"
            " private to this user"
        )
        assert venv.is_relative_to(tmp_path / "job-2" / "mlsteps-cache")
    ran = subprocess.run([venv / "bin" / "mlsteps"], capture_output=True, text=True)
    assert ran.stdout == "fake mlsteps\n"


@pytest.mark.slow
def test_uv_is_bootstrapped_into_the_tool_cache_once(tmp_path: Path) -> None:
    # No uv on PATH: pip installs the pinned uv into the tool cache; the next job finds it.
    checkout, cache = fake_mlsteps(tmp_path), tmp_path / "tool"
    uv_dir = cache / "mlsteps" / f"uv-{UV_PIN}"
    proc, _ = install(checkout / "actions" / "train", tmp_path / "job-1", tool_cache=cache)
    assert proc.returncode == 0, proc.stderr
    (venv,) = cached_venvs(cache)
    assert proc.stdout.splitlines() == [
        uv_line(checkout, venv, f"uv {UV_PIN} bootstrapped into {cache / 'mlsteps'}")
    ]
    assert (uv_dir / "bin" / "uv").is_file()
    assert [p.name for p in (cache / "mlsteps").iterdir() if p.name.startswith("boot")] == []

    proc, _ = install(checkout / "actions" / "gate", tmp_path / "job-2", "gate", tool_cache=cache)
    assert proc.returncode == 0, proc.stderr
    (gate,) = set(cached_venvs(cache)) - {venv}
    assert proc.stdout.splitlines() == [
        uv_line(
            f"{checkout}[gate]", gate, f"uv {UV_PIN} bootstrapped earlier into {cache / 'mlsteps'}"
        )
    ]


def test_the_bootstrapped_uv_is_the_one_ci_pins() -> None:
    pins = (REPO / ".ci" / "constraints.txt").read_text().splitlines()
    assert f"uv=={UV_PIN}" in pins


@pytest.mark.slow
def test_a_failed_bootstrap_leaves_nothing_in_the_tool_cache_and_pip_installs(
    tmp_path: Path,
) -> None:
    checkout, cache, temp = fake_mlsteps(tmp_path), tmp_path / "tool", tmp_path / "runner-temp"
    # The runner's pip can install the project but not the pinned uv.
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("uv==0.0.1\n")
    proc, output = install(checkout / "actions" / "train", temp, tool_cache=cache,
                           env={"PIP_CONSTRAINT": str(constraints)})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(
        f"mlsteps: not using uv: uv is not on PATH and pip could not bootstrap uv=={UV_PIN} ("
    )
    assert "(ERROR: Cannot install uv==" in lines[0]  # pip's line saying why
    assert lines[1:] == pip_lines(checkout, temp, "")[1:]
    assert output == f"venv={temp / 'mlsteps-venv'}\n"
    assert list((cache / "mlsteps").iterdir()) == []


@pytest.mark.slow
def test_a_uv_that_fails_falls_back_to_pip_with_one_line(tmp_path: Path) -> None:
    checkout, cache, temp = fake_mlsteps(tmp_path), tmp_path / "tool", tmp_path / "runner-temp"
    broken = tmp_path / "broken-uv"
    broken.mkdir()
    (broken / "uv").write_text("#!/bin/sh\necho 'error: no space left on device' >&2\nexit 1\n")
    (broken / "uv").chmod(0o755)
    proc, output = install(checkout / "actions" / "train", temp, tool_cache=cache, path=broken)
    assert proc.returncode == 0, proc.stderr
    # The line of uv's try, then the one saying why not, then pip's.
    tried, *rest = proc.stdout.splitlines()
    assert tried.startswith(f"mlsteps: installing {checkout} into the cached venv {cache}")
    assert rest == pip_lines(checkout, temp, "uv failed: error: no space left on device")
    assert output == f"venv={temp / 'mlsteps-venv'}\n"
    assert job_record(temp) == [str(temp / "mlsteps-venv"), str(checkout), ""]
    assert cached_venvs(cache) == []
    assert [p.name for p in (cache / "mlsteps").iterdir()] == []  # no build dir left
    ran = subprocess.run([temp / "mlsteps-venv" / "bin" / "mlsteps"], capture_output=True,
                         text=True)  # fmt: skip
    assert ran.stdout == "fake mlsteps\n"


@pytest.mark.slow
def test_pip_after_uv_in_one_job_installs_into_its_own_venv_not_the_cached_one(
    tmp_path: Path, uv_on_path: Path
) -> None:
    checkout, cache, temp = fake_mlsteps(tmp_path), tmp_path / "tool", tmp_path / "runner-temp"
    install_ok(checkout / "actions" / "train", temp, tool_cache=cache, path=uv_on_path)
    (cached,) = cached_venvs(cache)
    installed = installed_at(cached)
    broken = tmp_path / "broken-uv"
    broken.mkdir()
    (broken / "uv").write_text("#!/bin/sh\nexit 1\n")
    (broken / "uv").chmod(0o755)
    proc, output = install(
        checkout / "actions" / "gate", temp, "gate", tool_cache=cache, path=broken
    )
    assert proc.returncode == 0, proc.stderr
    why = "uv failed: no message"
    assert proc.stdout.splitlines()[1:] == pip_lines(f"{checkout}[gate]", temp, why)
    own = temp / "mlsteps-venv"
    assert output == f"venv={own}\n" and own.is_dir() and not own.is_symlink()
    assert subprocess.run([own / "bin" / "python", "-c", "import probe"]).returncode == 0
    # The cached venv, which other jobs may run, was not touched.
    assert installed_at(cached) == installed
    assert subprocess.run([cached / "bin" / "python", "-c", "import probe"],
                          capture_output=True).returncode == 1  # fmt: skip


def local_index(root: Path, name: str) -> Path:
    """A simple index (PEP 503, as files) holding only the project name, built from source."""
    project = write_project(root / "src", name, "[tool.setuptools]\npy-modules = ['probe']\n",
                            **{"probe.py": ""})  # fmt: skip
    page = root / "simple" / name
    page.mkdir(parents=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(page), str(project)],
        check=True,
    )
    (wheel,) = page.glob("*.whl")
    (page / "index.html").write_text(f'<a href="{wheel.name}">{wheel.name}</a>\n')
    return root / "simple"


@pytest.mark.slow
def test_the_index_the_runner_gives_pip_is_the_one_uv_uses(
    tmp_path: Path, uv_on_path: Path
) -> None:
    # A project only the runner's private index has: were the index not handed on, uv would
    # ask the public one (dependency confusion), not find it, and fall back to pip.
    name = "mlsteps-private-probe-7f3a"
    index = local_index(tmp_path / "index", name)
    checkout, temp, cache = fake_mlsteps(tmp_path, gate=name), tmp_path / "rt", tmp_path / "tool"
    proc, _ = install(checkout / "actions" / "gate", temp, "gate", tool_cache=cache,
                      path=uv_on_path, env={"PIP_INDEX_URL": index.as_uri()})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (venv,) = cached_venvs(cache)
    assert proc.stdout.splitlines() == [uv_line(f"{checkout}[gate]", venv)]
    assert subprocess.run([venv / "bin" / "python", "-c", "import probe"]).returncode == 0


@pytest.mark.slow
def test_pip_settings_uv_would_not_honour_make_it_pip_saying_which(
    tmp_path: Path, uv_on_path: Path
) -> None:
    checkout, temp, cache = fake_mlsteps(tmp_path), tmp_path / "rt", tmp_path / "tool"
    config = tmp_path / "pip.conf"
    config.write_text("[install]\nprefer-binary = true\n")
    proc, output = install(checkout / "actions" / "train", temp, tool_cache=cache,
                           path=uv_on_path, env={"PIP_CONFIG_FILE": str(config)})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == pip_lines(
        checkout, temp,
        "the runner's pip configuration sets prefer-binary, which this script does not hand on"
        " to uv",
    )  # fmt: skip
    assert output == f"venv={temp / 'mlsteps-venv'}\n"
    assert cached_venvs(cache) == []


@pytest.mark.slow
def test_a_failed_install_leaves_no_venv_and_no_output(tmp_path: Path, uv_on_path: Path) -> None:
    checkout = fake_mlsteps(tmp_path, gate="probe @ " + (tmp_path / "no-such-project").as_uri())
    temp, cache = tmp_path / "runner-temp", tmp_path / "tool"
    proc, output = install(checkout / "actions" / "gate", temp, "gate", tool_cache=cache,
                           path=uv_on_path)  # fmt: skip
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("mlsteps: installing")  # uv's try, then pip's
    assert lines[1].startswith("mlsteps: not using uv: uv failed: ")
    assert lines[-1] == (
        "::error title=mlsteps install failed::mlsteps: pip could not install"
        f" {checkout}[gate] into {temp / 'mlsteps-venv'} (its messages are above)"
    )
    assert "no-such-project" in proc.stderr  # pip's own reason
    assert output == ""
    assert sorted(p.name for p in temp.iterdir()) == ["github-output"]
    assert [p.name for p in (cache / "mlsteps").iterdir()] == []


@pytest.mark.slow
def test_a_failed_extra_leaves_the_venv_unvouched_for(tmp_path: Path, uv_on_path: Path) -> None:
    # The venv of an earlier action stays, but no record claims the half-installed extras:
    # the next action installs again instead of trusting it.
    checkout = fake_mlsteps(tmp_path, gate="probe @ " + (tmp_path / "no-such-project").as_uri())
    temp, cache = tmp_path / "runner-temp", tmp_path / "tool"
    assert install(checkout / "actions" / "train", temp, tool_cache=cache,
                   path=uv_on_path)[0].returncode == 0  # fmt: skip
    assert install(checkout / "actions" / "gate", temp, "gate", tool_cache=cache,
                   path=uv_on_path)[0].returncode == 1  # fmt: skip
    assert not (temp / "mlsteps-job").exists()
    proc, _ = install(checkout / "actions" / "train", temp, tool_cache=cache, path=uv_on_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("mlsteps: reusing the cached venv")  # the tool cache's


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
record="$RUNNER_TEMP/mlsteps-job"
echo "workspace=$GITHUB_WORKSPACE" >> "$GITHUB_OUTPUT"
echo "record=$record" >> "$GITHUB_OUTPUT"
if [ -f "$record" ]; then
  venv="$(sed -n 1p "$record")"
  source_dir="$(sed -n 2p "$record")"
  echo "venv=$venv" >> "$GITHUB_OUTPUT"
  echo "source=$source_dir" >> "$GITHUB_OUTPUT"
  echo "job_cache=$RUNNER_TEMP/mlsteps-cache" >> "$GITHUB_OUTPUT"
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
    # uv (on PATH here, or bootstrapped) into a venv of the job's own cache (the runner does not
    # share its tool cache: MLSTEPS_INSTALL_CACHE is unset).
    assert f"mlsteps: installing {source_dir} into the cached venv {where['venv']} with uv" in (
        result.log
    )
    assert Path(where["venv"]).is_relative_to(where["job_cache"])
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
    assert "record" in result.outputs["where"] and "source" not in result.outputs["where"]


# ----- attacks from the review of the uv install: each kept as a test --------------------------


@pytest.mark.slow
def test_the_tool_cache_is_shared_only_where_the_runner_says_so(
    tmp_path: Path, uv_on_path: Path
) -> None:
    """Every job on a runner runs as one user: a job running untrusted code could write into a
    venv later jobs run. Without MLSTEPS_INSTALL_CACHE=shared the cache is the job's own."""
    checkout, cache = fake_mlsteps(tmp_path), tmp_path / "tool"
    for job in ("job-1", "job-2"):
        proc, _ = install(checkout / "actions" / "train", tmp_path / job, path=uv_on_path,
                          env={"RUNNER_TOOL_CACHE": str(cache)})  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        (venv,) = sorted((tmp_path / job / "mlsteps-cache").glob("venv-*"))
        assert proc.stdout.splitlines() == [uv_line(checkout, venv)]  # job-2 installs again
    assert not (cache / "mlsteps").exists()


@pytest.mark.slow
def test_the_runners_uv_variables_do_not_reach_uv_and_a_multi_line_index_is_read(
    tmp_path: Path, uv_on_path: Path
) -> None:
    """UV_INDEX_URL / UV_EXTRA_INDEX_URL pointing nowhere would make uv fail or take packages
    from elsewhere than pip would: they are dropped with a line. And an index listed over
    several lines in a pip.conf (pip prints it with \\n between the items) is handed on whole:
    the private project is found there by uv, not missed for the public index."""
    name = "mlsteps-private-probe-9c1d"
    index = local_index(tmp_path / "index", name)
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nextra-index-url =\n    {index.as_uri()}\n    {index.as_uri()}/\n")
    checkout, temp = fake_mlsteps(tmp_path, gate=name), tmp_path / "rt"
    proc, _ = install(checkout / "actions" / "gate", temp, "gate", path=uv_on_path,
                      env={"PIP_CONFIG_FILE": str(conf), "UV_INDEX_URL": "http://127.0.0.1:9/x",
                           "UV_EXTRA_INDEX_URL": "http://127.0.0.1:9/y"})  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (venv,) = sorted((temp / "mlsteps-cache").glob("venv-*"))
    assert proc.stdout.splitlines() == [
        "mlsteps: uv is not given the runner's UV_EXTRA_INDEX_URL UV_INDEX_URL (it installs what"
        " pip's configuration says)",
        uv_line(f"{checkout}[gate]", venv),
    ]
    assert subprocess.run([venv / "bin" / "python", "-c", "import probe"]).returncode == 0


@pytest.mark.slow
def test_a_runner_path_with_a_space_loses_nothing_beside_it(
    tmp_path: Path, uv_on_path: Path
) -> None:
    """The cleanup of the temp dirs is quoted: a tool cache under "My Tools" must not remove a
    dir "My" beside it (it did), nor leave its build dir behind."""
    beside = tmp_path / "My"
    beside.mkdir()
    (beside / "precious.txt").write_text("keep")
    checkout, cache = fake_mlsteps(tmp_path), tmp_path / "My Tools"
    proc, _ = install(checkout / "actions" / "train", tmp_path / "job", tool_cache=cache,
                      path=uv_on_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (beside / "precious.txt").read_text() == "keep"
    assert not list((cache / "mlsteps").glob("build.*"))


@pytest.mark.slow
def test_python_modules_in_the_working_directory_are_not_imported(
    tmp_path: Path, uv_on_path: Path
) -> None:
    """The workflow's working directory is the repository's: a sysconfig.py or a pip/ there must
    not run in place of Python's own (python3 -I)."""
    work = tmp_path / "repo"
    (work / "pip").mkdir(parents=True)
    marker = tmp_path / "ran"
    for module in (work / "sysconfig.py", work / "pip" / "__main__.py"):
        module.write_text(f"open({str(marker)!r}, 'a').write('x')\n")
    checkout = fake_mlsteps(tmp_path)
    proc = subprocess.run(
        ["bash", str(SCRIPT)], cwd=work, capture_output=True, text=True, timeout=300,
        env={"PATH": f"{uv_on_path}:/usr/local/bin:/usr/bin:/bin", "HOME": str(Path.home()),
             "GITHUB_ACTION_PATH": str(checkout / "actions" / "train"),
             "RUNNER_TEMP": str(tmp_path / "job"), "GITHUB_OUTPUT": str(tmp_path / "out")},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not marker.exists()


@pytest.mark.slow
def test_a_pip_setting_uv_is_not_told_is_not_skipped_by_a_cached_venv(
    tmp_path: Path, uv_on_path: Path
) -> None:
    """A venv cached before the runner's pip configuration gained a setting uv is not told (one
    that may say what to refuse) is not reused: pip installs, saying why."""
    checkout, cache = fake_mlsteps(tmp_path), tmp_path / "tool"
    proc, _ = install(checkout / "actions" / "train", tmp_path / "job-1", tool_cache=cache,
                      path=uv_on_path)  # fmt: skip
    assert proc.returncode == 0 and len(cached_venvs(cache)) == 1, proc.stderr
    config = tmp_path / "pip.conf"
    config.write_text("[install]\nprefer-binary = true\n")
    temp = tmp_path / "job-2"
    proc, _ = install(checkout / "actions" / "train", temp, tool_cache=cache, path=uv_on_path,
                      env={"PIP_CONFIG_FILE": str(config)})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == pip_lines(
        checkout, temp,
        "the runner's pip configuration sets prefer-binary, which this script does not hand on"
        " to uv",
    )  # fmt: skip
