"""Jenkins: plain console lines; outputs as a JSON file the Groovy step reads back with
``readJSON``; the summary as a markdown file to ``archiveArtifacts``."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from steps.ci.base import Face
from steps.core.secret import Secret


def _write_atomically(path: Path, text: str) -> None:
    # The Groovy side reads the file after the process exits; a half-written file would
    # make readJSON fail with a confusing parse error, so write a sibling and rename.
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, path)


class JenkinsFace(Face):
    name = "jenkins"

    def outputs_path(self, step: str) -> Path:
        return Path(self.environ.get("MLSTEPS_OUTPUTS_FILE") or f".mlsteps/outputs/{step}.json")

    def summary_path(self, step: str) -> Path:
        return Path(self.environ.get("MLSTEPS_SUMMARY_FILE") or f".mlsteps/summary/{step}.md")

    def set_outputs(self, step: str, outputs: Mapping[str, str | Secret]) -> None:
        super().set_outputs(step, outputs)
        clean = {name: self.scrub(str(value)) for name, value in outputs.items()}
        _write_atomically(self.outputs_path(step), json.dumps(clean, indent=2) + "\n")

    def summary(self, step: str, markdown: str) -> None:
        _write_atomically(self.summary_path(step), self.scrub(markdown).rstrip("\n") + "\n")
