"""The Jenkins side fits together: the JCasC snippet registers the library the example
Jenkinsfile loads, and the Jenkinsfile calls mlTrain and withVaultSecrets with keys they know."""

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


@pytest.mark.parametrize("step", ["mlTrain", "withVaultSecrets"])
def test_the_jenkinsfile_uses_only_keys_the_steps_know(run_jenkins: Any, step: str) -> None:
    found = re.search(rf"\b{step}\((.*?)\n\s*\)", JENKINSFILE, re.DOTALL)
    assert found, f"no {step}(...) call in examples/Jenkinsfile"
    used = re.findall(r"^\s*(\w+):", found.group(1), re.MULTILINE)
    assert used, f"no {step} keys found in examples/Jenkinsfile"
    block = "return 1" if step == "withVaultSecrets" else None  # it takes a block
    run = run_jenkins(step, {"notAKey": 1}, body=block)
    known = run.error.split("known keys: ", 1)[1].split(", ")
    assert set(used) <= set(known), set(used) - set(known)
