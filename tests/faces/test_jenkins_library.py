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
