"""The layout's rules, read from the source with ast (top-level and function-level imports,
``TYPE_CHECKING`` blocks included): no import circle in steps/; a step imports core, ci,
services, locks, the checks library and itself, never another step; services import core, ci
and services; core imports core only (runtime.py, which makes a step's face and finds its
config file, also ci and the registry); a step's plan never reaches its run; every module is
in a part the rules name (a step's folder needs its registry line). Relative imports count.

And the one way to add a step: a package plus one line in registry.STEPS is enough for
``mlsteps --help`` and the mlsteps.yaml schema to know it.
"""

from __future__ import annotations

import ast
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from steps import registry
from tests.unit.run_cli import run

STEPS_DIR = Path(__file__).resolve().parents[2] / "steps"

# Which top-level parts of steps/ each part may import ("step" is the step's own package).
LIBRARIES = {"core", "ci", "services", "locks", "checks"}
ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "ci": {"core", "ci"},
    "services": {"core", "ci", "services"},  # ci: a service may report through the step's face
    "locks": {"core", "services", "locks"},
    "checks": {"core", "checks"},
    "serve": set(),  # copied into images alone: it imports nothing of steps
    "registry": {"core"},  # it loads the steps by name, never by import
    "step": LIBRARIES | {"step"},
}
# The one module of core that reaches past it, and why: a Runtime makes the step's CI face
# (ci) and reads mlsteps.yaml against every step's section (registry).
EXCEPTIONS = {"steps.core.runtime": {"ci", "registry"}}
# Free for all: the package root holds only the version.
NEUTRAL = {"steps"}
# The modules that put the steps together (the CLI, the registry's tools, the faces generator):
# they may import anything. Any other top-level name in steps/ is a part the rules must know.
TOP = {"cli", "__main__", "config_cmd", "result_schema", "faces"}


def module_name(path: Path) -> str:
    parts = path.relative_to(STEPS_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str], name: str) -> set[str]:
    """The steps modules a file imports anywhere in it (a function's imports count: a lazy
    import still runs, and a circle through one is still a circle). A relative import counts
    as the module it names (`from . import run` in steps/train/plan.py is steps.train.run)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, *([base] if base else [])])
            for alias in node.names:
                # `from steps.services import containers` imports the module containers
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in modules else base)
    return found & modules


def steps_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in STEPS_DIR.rglob("*.py")}
    return {name: imports_of(path, set(files), name) - {name} for name, path in files.items()}


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One import circle, as the list of modules around it, or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def part_of(module: str, steps: set[str]) -> tuple[str, str]:
    """(the rule a module follows, the part it belongs to): a step's modules follow "step"."""
    parts = module.split(".")
    if len(parts) == 1:
        return "neutral", module
    top = parts[1]
    if top in steps:
        return "step", top
    if top in TOP:
        return "top", top
    return (top if top in ALLOWED else "unknown"), top


def unknown_parts(graph: Mapping[str, set[str]], steps: set[str]) -> list[str]:
    """Modules in no part of the layout: a step's folder without its registry line, or a new
    shared library the rules do not name yet (add it to ALLOWED with what it may import)."""
    return sorted(m for m in graph if part_of(m, steps)[0] == "unknown")


def forbidden_edges(graph: Mapping[str, set[str]], steps: set[str]) -> list[str]:
    bad = []
    for module, targets in sorted(graph.items()):
        rule, own = part_of(module, steps)
        if rule in ("top", "neutral", "unknown"):  # unknown: see unknown_parts
            continue  # cli.py, config_cmd.py, result_schema.py: they put the steps together
        for target in sorted(targets):
            if target in NEUTRAL:
                continue
            kind, part = part_of(target, steps)
            if kind == "step":
                allowed = rule == "step" and part == own
            else:
                allowed = part in ALLOWED.get(rule, set()) | EXCEPTIONS.get(module, set())
            if not allowed:
                bad.append(f"{module} imports {target}")
    return bad


def reachable(graph: Mapping[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def plans_reaching_runs(graph: Mapping[str, set[str]], steps: set[str]) -> list[str]:
    return [
        f"steps.{step}.plan reaches {target}"
        for step in sorted(steps)
        for target in sorted(reachable(graph, f"steps.{step}.plan"))
        if target.startswith(f"steps.{step}.run")
    ]


STEP_NAMES = set(registry.STEPS)


def test_the_graph_is_read_from_the_source() -> None:
    """Not vacuous: the graph holds the edges the rules are about."""
    graph = steps_graph()
    assert "steps.core.errors" in graph["steps.train.run"]
    assert "steps.services.containers" in graph["steps.train.command"]  # in a function
    assert "steps.ci" in graph["steps.services.model_code.runner"]  # a TYPE_CHECKING import
    assert {f"steps.{step}" for step in STEP_NAMES} <= set(graph)


def test_every_module_is_in_a_part_of_the_layout() -> None:
    assert unknown_parts(steps_graph(), STEP_NAMES) == []


def test_a_relative_import_is_read_as_the_module_it_names(tmp_path: Path) -> None:
    plan = tmp_path / "plan.py"
    plan.write_text("from . import run\nfrom .run import go\nfrom ..core import errors\n")
    modules = {"steps.train.run", "steps.core.errors", "steps.core"}
    assert imports_of(plan, modules, "steps.train.plan") == {"steps.train.run", "steps.core.errors"}
    init = tmp_path / "__init__.py"
    init.write_text("from .run import go\n")
    assert imports_of(init, modules, "steps.train") == {"steps.train.run"}


def test_no_import_circle_in_steps() -> None:
    assert find_cycle(steps_graph()) is None


def test_each_part_imports_only_what_it_may() -> None:
    assert forbidden_edges(steps_graph(), STEP_NAMES) == []


def test_a_steps_plan_never_reaches_its_run() -> None:
    graph = steps_graph()
    assert all(f"steps.{step}.plan" in graph for step in STEP_NAMES)
    assert plans_reaching_runs(graph, STEP_NAMES) == []


def test_the_checks_fail_on_a_bad_graph() -> None:
    """The checks above can fail: a circle, a step importing another step, a service importing a
    step, core importing a service, a plan reaching its run through a helper and a folder in no
    part of the layout are all found."""
    graph = {
        "steps.train.plan": {"steps.train.helper"},
        "steps.train.helper": {"steps.train.run"},
        "steps.train.run": {"steps.gate.options", "steps.core.errors"},
        "steps.gate.options": {"steps.checks.metrics"},
        "steps.checks.metrics": {"steps.gate.options"},
        "steps.services.vault": {"steps.promote.options"},
        "steps.core.values": {"steps.services.vault"},
        "steps.core.runtime": {"steps.ci", "steps.registry"},
        "steps.deploy.plan": {"steps.core.errors"},  # a step's folder without its registry line
    }
    steps = {"train", "gate", "promote"}
    assert unknown_parts(graph, steps) == ["steps.deploy.plan"]
    assert find_cycle(graph) == [
        "steps.checks.metrics",
        "steps.gate.options",
        "steps.checks.metrics",
    ]
    assert forbidden_edges(graph, steps) == [
        "steps.checks.metrics imports steps.gate.options",
        "steps.core.values imports steps.services.vault",
        "steps.services.vault imports steps.promote.options",
        "steps.train.run imports steps.gate.options",
    ]
    assert plans_reaching_runs(graph, steps) == ["steps.train.plan reaches steps.train.run"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


# ----- adding a step -----------------------------------------------------------------------

# A step made the way README's Development section says: its package and one registry line
# (tests/faces/test_new_step.py generates its faces).
FAKE_STEP = {
    "__init__.py": """
HELP = "Say hello (a step added by the layout test)."
COMMANDS = {"hello": (HELP, "hello_step.command:command")}
JENKINS_VAR = "mlHello"
""",
    "options.py": """
from steps.core.options import Option, Output, Section
from hello_step import HELP

SECTION = Section("hello", HELP, (Option(name="greeting", help="What to say.", default="hello"),))
OUTPUTS = (Output("said", "What was said."),)
""",
    "command.py": """
from collections.abc import Mapping
from typing import Any

from steps.core.runtime import Runtime, StepResult, step_command
from hello_step import HELP
from hello_step.options import SECTION


@step_command(SECTION, help=HELP)
def command(runtime: Runtime, flags: Mapping[str, Any], _: list[str]) -> StepResult:
    return StepResult({"said": str(flags.get("greeting", "hello"))})
""",
}


@pytest.fixture
def fake_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    package = tmp_path / "lib" / "hello_step"
    package.mkdir(parents=True)
    for name, text in FAKE_STEP.items():
        (package / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    monkeypatch.setitem(registry.STEPS, "hello", "hello_step")  # the one line
    # `config schema --result` lists the steps when config_cmd is imported: import it afresh.
    monkeypatch.delitem(sys.modules, "steps.config_cmd", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    yield work
    for name in [m for m in sys.modules if m.split(".")[0] == "hello_step"]:
        del sys.modules[name]


def test_a_new_step_is_its_package_plus_one_registry_line(fake_step: Path) -> None:
    helped = run(["--help"], cwd=fake_step)
    assert helped.code == 0, helped.err
    assert "  hello     Say hello (a step added by the layout test)." in helped.out

    ran = run(["--json", "hello", "--greeting", "hi"], cwd=fake_step)
    assert ran.code == 0, ran.err
    assert json.loads(ran.out)["outputs"] == {"said": "hi"}

    schema = run(["config", "schema"], cwd=fake_step)
    assert schema.code == 0, schema.err
    hello = json.loads(schema.out)["properties"]["hello"]
    assert set(hello["properties"]) == {"greeting"}

    result = run(["config", "schema", "--result", "hello"], cwd=fake_step)
    assert result.code == 0, result.err
    assert set(json.loads(result.out)["properties"]["outputs"]["properties"]) == {"said"}


def test_without_its_registry_line_the_step_is_unknown(tmp_path: Path) -> None:
    """The fake step's visibility comes from the registry line, not from anything else."""
    helped = run(["--help"], cwd=tmp_path)
    assert helped.code == 0 and "hello" not in helped.out
    assert run(["hello"], cwd=tmp_path).code == 2
