"""Malformed values for every option of every step, through each way an option arrives (a flag,
its MLSTEPS_* variable, mlsteps.yaml as a scalar or as raw YAML text), in a dry run: the CLI
exits 0 or 2, never 1 with "unexpected error", never a traceback; on 2 one short paragraph
names the option; every case ends within its time bound.

The options come from the tables (registry → each step's SECTION and click command), so a new
option is fuzzed without a word here. Fixed seed and a modest count by default (CI); more with
MLSTEPS_FUZZ_EXAMPLES=2000 (per command).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steps import registry
from steps.core.options import MLFLOW, MODEL, Option, Section
from tests.unit.core.test_values import BOMB, DEEP, METRICS_BOMB
from tests.unit.run_cli import base_env, run

EXAMPLES = int(os.environ.get("MLSTEPS_FUZZ_EXAMPLES", "100"))
# Per case: the CPU this process spent (the "under a second"), and a wall-clock bound
# that only a hang exceeds (the machine may be busy with other work).
CPU_SECONDS = 1.0
WALL_SECONDS = 15.0
MESSAGE_CHARS = 1500  # one paragraph, whatever the value's size


@dataclass(frozen=True)
class Command:
    """A step command, the arguments a dry run of it needs, and its options."""

    path: tuple[str, ...]  # ("secrets", "fetch")
    needs: tuple[str, ...]  # flags a dry run needs to get to its plan
    tail: tuple[str, ...]  # after "--": the command train and secrets exec run
    options: tuple[tuple[Section, Option], ...]


NEEDS: dict[tuple[str, ...], tuple[tuple[str, ...], tuple[str, ...]]] = {
    ("train",): (("--image", "x"), ("t",)),
    ("secrets", "fetch"): (("--secrets", "secret/a k", "--file", "out.env"), ()),
    ("secrets", "exec"): (("--secrets", "secret/a k"), ("true",)),
    ("secrets", "revoke"): ((), ()),
    ("package",): (("--model-uri", "m"), ()),
    ("gate",): (("--name", "m", "--model-uri", "models:/m/1"), ()),
    ("promote",): (
        ("--name", "m", "--version", "1", "--gate-report-digest", "sha256:" + "0" * 64),
        (),
    ),
    ("rollback",): (("--name", "m"), ()),
    ("deploy",): (("--image", "registry.example/m:1", "--endpoint", "m"), ()),
}


def commands() -> list[Command]:
    found = []
    for step in registry.step_commands():
        section: Section = registry.options(step).SECTION
        root = registry.command(step)
        subs = (
            [((step, name), cmd) for name, cmd in root.commands.items()]
            if isinstance(root, click.Group)
            else [((step,), root)]
        )
        for path, cmd in subs:
            by_flag = {o.flag: (s, o) for s in (section, MLFLOW, MODEL) for o in s.options}
            options = [
                by_flag[param.opts[0]]
                for param in cmd.params
                if isinstance(param, click.Option) and param.opts[0] in by_flag
            ]
            # Options that come only from the environment or the file (train's command).
            options += [(section, o) for o in section.options if not o.cli]
            needs, tail = NEEDS[path]
            found.append(Command(path, needs, tail, tuple(options)))
    return found


COMMANDS = commands()

# Values people and attackers type: each form the issue met, and the edges of every parser.
CURATED = [
    "",
    " ",
    "inf",
    "-inf",
    "nan",
    "NaN",
    "1e-12",
    "-1",
    "0",
    "0.0",
    "1" * 400,
    "1e308",
    "10" + "0" * 20,
    "0x10",
    "1_000",
    "true",
    "false",
    "null",
    "~",
    "yes",
    "[",
    "]",
    "{",
    "}",
    "'",
    '"',
    "a'b",
    'a"b',
    "${{ secrets.X }}",
    "$(id)",
    "`id`",
    "\n",
    "a\nb",
    "\t",
    "x" * 100_000,
    "n" * 300,
    "/" + "a/" * 2100,
    "../../etc/passwd",
    "/dev/zero",
    "/etc/passwd",
    "/",
    ".",
    "~nosuchuser/x",
    "\u202e",
    "é",
    "\x1b[31m",
    "a b c",
    "1.5h",
    "90s",
    "2000t",
    "-5m",
    "!!python/object/apply:os.system ['id']",
    "!!binary aGk=",
    BOMB,
    METRICS_BOMB,
    DEEP,
    "{a: 1}",
    "[1, 2]",
    "- a\n- b",
    "? [a]\n: 1",
    "&a [*a]",
    "*a",
    "%YAML 1.1\n---\nx",
    "---",
    ":",
    "key=value",
    "=x",
    "A=",
    "0,1,2",
    "GPU-xyz",
    "all",
    "none",
    "auto",
    "linux/amd64",
    "garbage/zz",
    "http://u:p@h",
    "http://[::1",
    "http://127.0.0.1:9",
    "models:/",
    "runs:/",
    "s3://",
    "secret/a k",
    "secret/a k | 1BAD",
    "[{path: a, key: b, version: -1}]",
    "{accuracy: {min: .nan}}",
    "{accuracy: {min: [1]}}",
    "{x: {min: 1e999}}",
    "docker",
    "local",
]
ODD_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",))
    | st.sampled_from("\x00:/={}[]'\" \n-.*&!"),
    max_size=30,
)
VALUES = st.one_of(
    st.sampled_from(CURATED), ODD_TEXT, st.sampled_from(CURATED).map(lambda v: v + "\x00")
)
ROUTES = ("flag", "env", "file", "raw-file")


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    """A directory holding a model (package reads its MLmodel in a dry run)."""
    with tempfile.TemporaryDirectory() as where:
        model = Path(where) / "m"
        model.mkdir()
        (model / "MLmodel").write_text(
            "flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n"
            "    python_version: 3.11.7\n    env:\n      virtualenv: python_env.yaml\n"
        )
        (model / "python_env.yaml").write_text("python: 3.11.7\ndependencies: [scikit-learn]\n")
        yield Path(where)


def environment() -> dict[str, str]:
    # Enough for each dry run to reach its plan; nothing listens on port 9.
    return {
        **base_env(),
        "VAULT_TOKEN": "fuzz-token",
        "VAULT_ADDR": "http://127.0.0.1:9",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
    }


def case(cmd: Command, section: Section, opt: Option, route: str, value: str, cwd: Path):
    """The arguments and environment of one case, or None when the route cannot carry the
    value (an environment variable holds no NUL; a flag of an option that has none)."""
    import yaml

    env = environment()
    needs = list(cmd.needs)
    if opt.flag in needs:  # the option under test replaces the value a dry run needed
        at = needs.index(opt.flag)
        del needs[at : at + 2]
    config = cwd / "mlsteps.yaml"
    config.unlink(missing_ok=True)
    args = ["--dry-run", *cmd.path, *needs]
    if route == "flag":
        if not opt.cli:
            return None
        args += [opt.flag, value]
    elif route == "env":
        if "\x00" in value:
            return None
        env[opt.env_var(section.name)] = value
    elif route == "file":
        config.write_text(yaml.safe_dump({section.name: {opt.name: value}}))
    else:
        config.write_text(f"{section.name}:\n  {opt.name}: {value}\n")
    if cmd.tail:
        args += ["--", *cmd.tail]
    return args, env


def names_of(section: Section, opt: Option, route: str) -> list[str]:
    names = [opt.flag, f"{section.name}.{opt.name}", f"'{opt.name}'", opt.env_var(section.name)]
    names += list(opt.env_fallbacks)
    if route in ("file", "raw-file"):
        names.append("mlsteps.yaml:")  # a YAML error names the line of the file
    return names


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: "-".join(c.path))
def test_each_dry_run_reaches_its_plan_without_fuzz(cmd: Command, workdir: Path) -> None:
    """The base the cases start from is good: an exit 2 below is the fuzzed value's doing."""
    args = ["--dry-run", *cmd.path, *cmd.needs, *(["--", *cmd.tail] if cmd.tail else [])]
    ran = run(args, cwd=workdir, env=environment())
    assert ran.code == 0, ran.err
    assert not list(workdir.glob("out.env")), "a dry run wrote the secrets file"


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: "-".join(c.path))
def test_malformed_values_exit_0_or_2_naming_the_option(cmd: Command, workdir: Path) -> None:
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,  # the same cases on every run: CI failures reproduce
        deadline=None,  # the time bound below is the test's own, per case
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        index=st.integers(0, len(cmd.options) - 1),  # (an index: an Option's repr is long)
        route=st.sampled_from(ROUTES),
        value=VALUES,
    )
    def check(index: int, route: str, value: str) -> None:
        section, opt = cmd.options[index]
        built = case(cmd, section, opt, route, value, workdir)
        if built is None:
            return
        args, env = built
        ran = run(args, cwd=workdir, env=env)
        where = f"{' '.join(cmd.path)} {opt.flag} via {route} = {value[:80]!r}"
        assert ran.cpu_seconds < CPU_SECONDS, f"{where}: took {ran.cpu_seconds:.1f}s of CPU"
        assert ran.seconds < WALL_SECONDS, f"{where}: took {ran.seconds:.1f}s"
        assert "Traceback" not in ran.err + ran.out, f"{where}:\n{ran.err[-2000:]}"
        assert ran.code in (0, 2), f"{where}: exit {ran.code}:\n{ran.err[-2000:]}"
        if ran.code == 2:
            error = ran.err[ran.err.find("error:") :]
            assert error.startswith("error:"), f"{where}: no error line:\n{ran.err[-2000:]}"
            assert "\n\n" not in error.strip() and len(error) < MESSAGE_CHARS, (
                f"{where}: not one short paragraph ({len(error)} characters):\n{error[:2000]}"
            )
            names = names_of(section, opt, route)
            if opt.secret and value.strip():  # once masked, the value reads *** in the message
                names += [n.replace(value.strip("\r\n"), "***") for n in names]
            assert any(n in error for n in names), f"{where}: the option is not named:\n{error}"

    check()
