"""The Jenkins side fits together: the JCasC snippet registers the library the example
Jenkinsfile loads, and the Jenkinsfile calls mlTrain with keys mlTrain knows."""

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


def test_the_jenkinsfile_uses_only_keys_mltrain_knows(run_jenkins: Any) -> None:
    call = JENKINSFILE.split("mlTrain(", 1)[1].split("\n                )", 1)[0]
    used = re.findall(r"^\s*(\w+):", call, re.MULTILINE)
    assert used, "no mlTrain keys found in examples/Jenkinsfile"
    run = run_jenkins("mlTrain", {"notAKey": 1})
    known = run.error.split("known keys: ", 1)[1].split(", ")
    assert set(used) <= set(known), set(used) - set(known)
