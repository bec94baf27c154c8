"""The terminal face: a redrawn progress line on a TTY, plain periodic lines otherwise."""

from __future__ import annotations

from typing import TextIO

from steps.ci.base import Face


class LocalFace(Face):
    name = "local"

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.tty = self.out.isatty()
        self._live = False  # a progress line is on screen and must be cleared first
        if self.tty:
            self.progress_interval = 0.1

    def write(self, text: str, stream: TextIO | None = None) -> None:
        if self._live:
            self.out.write("\r\033[K")
            self._live = False
        super().write(text, stream)

    def progress(self, key: str, message: str, *, final: bool = False) -> None:
        if not self.tty or final:
            super().progress(key, message, final=final)
            return
        if not self.quiet:
            self.out.write("\r\033[K" + self.scrub(message)[:200])
            self.out.flush()
            self._live = True

    def error(self, message: str) -> None:
        prefix = "\033[31merror:\033[0m" if self.err.isatty() else "error:"
        self.write(f"{prefix} {message}", self.err)
