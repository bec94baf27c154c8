"""What the Jenkins tests of mlGate and mlPromote share: a probe that stands in for mlsteps.

The probe records the argv and the MLSTEPS_* environment the shell handed it (probe.json in the
workspace), writes the outputs file from PROBE_OUTPUTS, the report files named by PROBE_REPORT
(the path of report.md; report.json and report.png beside it) and the summary from
PROBE_SUMMARY, then exits with PROBE_EXIT: what mlsteps does on a pass, a rejection (exit 3,
outputs and report written) or a failure, without a model or a server.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

PROBE = """\
import json, os, sys
from pathlib import Path

Path("probe.json").write_text(json.dumps({
    "argv": sys.argv[1:],
    "env": {k: v for k, v in os.environ.items() if k.startswith("MLSTEPS_")},
}))
for variable, content in (("MLSTEPS_OUTPUTS_FILE", "PROBE_OUTPUTS"),
                          ("MLSTEPS_SUMMARY_FILE", "PROBE_SUMMARY")):
    if os.environ.get(content):
        path = Path(os.environ[variable])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(os.environ[content])
if os.environ.get("PROBE_REPORT"):
    report = Path(os.environ["PROBE_REPORT"])
    report.parent.mkdir(parents=True, exist_ok=True)
    for name in ("report.md", "report.json", "report.png"):
        (report.parent / name).write_text(name)
sys.exit(int(os.environ.get("PROBE_EXIT", "0")))
"""

# Quotes, a shell expansion, a backslash and separators: what a shell might mangle.
AWKWARD = 'it\'s "quoted" $HOME `id` \\ ; | & *'


def write_probe(directory: Path) -> list[str]:
    """The `mlsteps` key's value that runs the probe: [python, probe.py]."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "probe.py"
    path.write_text(PROBE, encoding="utf-8")
    return [sys.executable, str(path)]


def probed(workspace: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((workspace / "probe.json").read_text(encoding="utf-8"))
    return result
