"""Reading a Jenkins var's `defaultConfig` map as Groovy sees it, for the test that holds every
face to the option tables (tests/faces/test_faces_contract.py)."""

from __future__ import annotations

import re
from pathlib import Path

VARS = Path(__file__).resolve().parents[1] / "vars"


def camel(name: str) -> str:
    """The Jenkins key of a kebab-case option: shm-size → shmSize."""
    head, *rest = name.split("-")
    return head + "".join(word.capitalize() for word in rest)


def default_config_entries(var: str, vars_dir: Path = VARS) -> list[tuple[str, str]]:
    """(key, comment) of each line of the `defaultConfig` map of vars/<var>.groovy."""
    groovy = (vars_dir / f"{var}.groovy").read_text(encoding="utf-8")
    body = groovy.split("Map defaultConfig = [", 1)[1].split("\n    ]", 1)[0]
    entries = []
    for line in body.strip().splitlines():
        match = re.fullmatch(r"\s*(\w+): .*?,\s*(?://\s*(.*))?", line)
        assert match, f"defaultConfig line not of the form `key: value,  // comment`: {line!r}"
        entries.append((match.group(1), match.group(2) or ""))
    return entries
