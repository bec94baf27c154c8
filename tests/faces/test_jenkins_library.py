"""The Jenkins side fits together: the JCasC snippet registers the library the example
Jenkinsfile loads, and the Jenkinsfile calls withVaultSecrets, mlTrain and mlPackage with keys
they know (tests/faces/test_examples_e2e.py runs it against real services)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.faces

REPO = Path(__file__).resolve().parents[2]
JENKINSFILE = (REPO / "examples" / "Jenkinsfile").read_text(encoding="utf-8")


def test_casc_registers_the_library_the_jenkinsfile_loads() -> None:
    casc = yaml.safe_load((REPO / "jenkins" / "casc-library.yaml").read_text(encoding="utf-8"))
    (library,) = casc["unclassified"]["globalLibraries"]["libraries"]
    assert library["name"] == "mlsteps"
    assert library["retriever"]["modernSCM"]["scm"]["git"]["remote"] == "${MLSTEPS_LIBRARY_REMOTE}"
    assert re.search(r"^@Library\('mlsteps(@[^']+)?'\) _$", JENKINSFILE, re.MULTILINE)


def call_keys(step: str) -> set[str]:
    """The keys of every `step(...)` call in the Jenkinsfile: of the Map literal it is given,
    or of the one a helper returns (`withVaultSecrets(vaultLogin())`)."""
    keys: set[str] = set()
    for found in re.finditer(rf"\b{step}\(", JENKINSFILE):
        args = _parenthesized(JENKINSFILE, found.end() - 1)
        helper = re.fullmatch(r"\s*(\w+)\(\)\s*", args)
        if helper:
            body = re.search(rf"\b{helper.group(1)}\(\) \{{\n(.*?)\n\}}", JENKINSFILE, re.DOTALL)
            assert body, f"no {helper.group(1)}() in examples/Jenkinsfile"
            args = body.group(1)
        keys |= set(re.findall(r"^\s*(\w+):", args, re.MULTILINE))
    return keys


def _parenthesized(text: str, start: int) -> str:
    depth = 0
    for end in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[end], 0)
        if depth == 0:
            return text[start + 1 : end]
    raise AssertionError(f"unbalanced parentheses from {text[start : start + 40]!r}")


@pytest.mark.parametrize("step", ["withVaultSecrets", "mlTrain", "mlPackage"])
def test_the_jenkinsfile_uses_only_keys_the_steps_know(run_jenkins: Any, step: str) -> None:
    used = call_keys(step)
    assert used, f"no {step}(...) call with keys in examples/Jenkinsfile"
    block = "return 1" if step == "withVaultSecrets" else None  # it takes a block
    run = run_jenkins(step, {"notAKey": 1}, body=block)
    known = run.error.split("known keys: ", 1)[1].split(", ")
    assert set(used) <= set(known), set(used) - set(known)


# --------------------------------------------------------------- one copy of each helper

VARS = sorted((REPO / "vars").glob("*.groovy"))
CLI = REPO / "src" / "mlsteps" / "jenkins" / "Cli.groovy"
# The helpers every var once held a copy of, now in mlsteps.jenkins.Cli (some renamed there).
MOVED = {"flagOf", "items", "shellQuote", "plainMap", "safeName", "workspacePath"}
MOVED |= {"invalidKeys", "failureMessage", "prefix", "flags"}


def defined_methods(groovy: str, indent: str = "") -> list[str]:
    """The names of the methods a Groovy file defines at this indentation (a var's at none,
    a class's at four spaces): `[private] [static] TYPE name(...) {` or `def name(...) {`."""
    head = rf"^{indent}(?:(?:private|protected|public|static|final)\s+)*"
    return re.findall(
        head + r"(?:def|[\w.]+(?:<[\w<>, .?]*>)?(?:\[\])?)\s+(\w+)\s*\(.*\{\s*$",
        groovy,
        re.MULTILINE,
    )


def copied_methods(files: dict[str, str]) -> dict[str, list[str]]:
    """Each method name defined in more than one of the files (name → the files), but call,
    which is how Jenkins finds a var's step."""
    where: dict[str, list[str]] = {}
    for name, groovy in files.items():
        for method in set(defined_methods(groovy)) - {"call"}:
            where.setdefault(method, []).append(name)
    return {method: sorted(names) for method, names in where.items() if len(names) > 1}


def test_the_method_finder_finds_definitions_and_copies() -> None:
    a = "def call(Map c = [:]) {\n}\n@NonCPS\nprivate static List<String> flagOf(String k) {\n}\n"
    b = "@NonCPS\nprivate static Map<String, String> flagOf(Object x) {\n    return [:]\n}\n"
    assert defined_methods(a) == ["call", "flagOf"]
    assert copied_methods({"a.groovy": a, "b.groovy": b}) == {"flagOf": ["a.groovy", "b.groovy"]}
    assert copied_methods({"a.groovy": a, "c.groovy": a.replace("flagOf", "other")}) == {}
    # On the real files: the vars' own helpers and the class's methods are found.
    vault = (REPO / "vars" / "withVaultSecrets.groovy").read_text(encoding="utf-8")
    assert {"call", "maskForms", "connectionKeys"} <= set(defined_methods(vault))
    cli = CLI.read_text(encoding="utf-8")
    assert {"shellQuote", "invalidKeys", "run"} <= set(defined_methods(cli, indent="    "))


def test_no_helper_is_copied_between_the_vars() -> None:
    files = {p.name: p.read_text(encoding="utf-8") for p in VARS}
    assert len(files) == 6  # mlTrain, mlPackage, mlGate, mlPromote, mlDeploy, withVaultSecrets
    assert copied_methods(files) == {}


def test_no_var_defines_a_helper_the_shared_class_holds() -> None:
    shared = set(defined_methods(CLI.read_text(encoding="utf-8"), indent="    ")) | MOVED
    defined = {
        p.name: sorted(shared & set(defined_methods(p.read_text(encoding="utf-8")))) for p in VARS
    }
    assert defined == {p.name: [] for p in VARS}
    # Each var uses the class, by the import Jenkins resolves from src/.
    assert all("\nimport mlsteps.jenkins.Cli\n" in p.read_text(encoding="utf-8") for p in VARS)
