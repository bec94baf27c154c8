"""GitHub Actions: workflow commands on stdout, outputs and summary in the runner's files.

Formats: https://docs.github.com/actions/using-workflows/workflow-commands-for-github-actions
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from steps.ci.base import Face
from steps.core.secret import Secret, mask_lines


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def append_file_command(path: str, name: str, value: str) -> None:
    """Append NAME<<DELIM … DELIM to $GITHUB_OUTPUT or $GITHUB_ENV; multi-line safe.

    The delimiter is random per value so no value can end the block early and inject
    a variable of its own.
    """
    delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
    while delimiter in value:  # pragma: no cover - 128 random bits
        delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


class GitHubFace(Face):
    name = "github"

    def __init__(self, environ: Mapping[str, str], **kwargs) -> None:  # type: ignore[no-untyped-def]
        # Workflow commands are read from stdout, so the human stream is stdout even with --json.
        kwargs.setdefault("out", sys.stdout)
        kwargs.setdefault("err", kwargs["out"])
        super().__init__(environ, **kwargs)

    def mask(self, value: str) -> None:
        # Every line separately: the runner masks line by line, and a multi-line value
        # registered whole would leave its lines visible when printed one at a time.
        super().mask(value)
        for line in mask_lines(value):
            self.out.write(f"::add-mask::{_escape_data(line)}\n")
        self.out.flush()

    def warning(self, message: str) -> None:
        self.write(f"::warning::{_escape_data(self.scrub(message))}")

    def error(self, message: str) -> None:
        self.write(f"::error::{_escape_data(self.scrub(message))}")

    @contextmanager
    def group(self, title: str) -> Iterator[None]:
        self.write(f"::group::{title}")
        try:
            yield
        finally:
            self.write("::endgroup::")

    @contextmanager
    def untrusted_lines(self) -> Iterator[None]:
        # Training output could print "::set-output" or "::add-mask" lines of its own;
        # stop-commands makes the runner ignore workflow commands until the token returns.
        token = secrets.token_hex(16)
        self.write(f"::stop-commands::{token}")
        try:
            yield
        finally:
            self.write(f"::{token}::")

    def set_outputs(self, step: str, outputs: Mapping[str, str | Secret]) -> None:
        super().set_outputs(step, outputs)
        path = self.environ.get("GITHUB_OUTPUT")
        if not path:
            self.warning("GITHUB_OUTPUT is not set: step outputs are not recorded")
            return
        for name, value in outputs.items():
            # A Secret is here only by opt-in (secrets --export-outputs), masked already.
            text = value.reveal() if isinstance(value, Secret) else self.scrub(value)
            append_file_command(path, name, text)

    def set_env(self, name: str, value: str) -> None:
        path = self.environ.get("GITHUB_ENV")
        if path:
            append_file_command(path, name, value)

    def summary(self, step: str, markdown: str) -> None:
        path = self.environ.get("GITHUB_STEP_SUMMARY")
        if path:
            with Path(path).open("a", encoding="utf-8") as handle:
                handle.write(self.scrub(markdown).rstrip("\n") + "\n\n")
