"""The face interface every step talks through, and the parts the faces share."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

from steps.core.secret import Secret, encoded_forms, json_default, mask_lines


class Face:
    """Plain-line behaviour; the GitHub, Jenkins and local faces refine it.

    Human lines go to ``self.out``: stderr when ``--json`` owns stdout, else stdout.
    Warnings and errors go to ``self.err`` (stderr), so `2>` and `| tee` work as usual.
    """

    name = "plain"
    # How often a progress line may be printed where no terminal can redraw one.
    progress_interval = 10.0

    def __init__(
        self,
        environ: Mapping[str, str],
        *,
        json_mode: bool = False,
        verbose: bool = False,
        quiet: bool = False,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        self.environ = environ
        self.json_mode = json_mode
        self.verbose = verbose
        self.quiet = quiet
        self.out = out or (sys.stderr if json_mode else sys.stdout)
        self.err = err or (out if out is not None else sys.stderr)
        self._masked: list[str] = []
        self._last_progress: dict[str, float] = {}

    # ----- lines --------------------------------------------------------------------------
    def write(self, text: str, stream: TextIO | None = None) -> None:
        stream = stream or self.out
        try:
            if stream is not self.out:
                self.out.flush()  # keep the order of lines when both streams reach one console
            stream.write(self.scrub(text) + "\n")
            stream.flush()
        except BrokenPipeError:
            # Nobody reads any more (`mlsteps … | head`): the work goes on to its end (a
            # revoke, a cleanup) with its lines dropped, as the Python docs advise.
            for gone in {self.out, stream}:
                # A stream that is not a real file (a test's StringIO) has no descriptor.
                with contextlib.suppress(OSError, ValueError):
                    os.dup2(os.open(os.devnull, os.O_WRONLY), gone.fileno())

    def info(self, message: str) -> None:
        if not self.quiet:
            self.write(message)

    def detail(self, message: str) -> None:
        """Shown with --verbose only."""
        if self.verbose:
            self.write(message)

    def warning(self, message: str) -> None:
        self.write(f"warning: {message}", self.err)

    def error(self, message: str) -> None:
        self.write(f"error: {message}", self.err)

    @contextmanager
    def group(self, title: str) -> Iterator[None]:
        self.info(f"── {title}")
        yield

    @contextmanager
    def untrusted_lines(self) -> Iterator[None]:
        """Wraps output the step does not control (training logs)."""
        yield

    def log_line(self, line: str) -> None:
        """One line of the training's own output; shown even with --quiet (it is the work)."""
        self.write(line)

    def progress(self, key: str, message: str, *, final: bool = False) -> None:
        now = time.monotonic()
        if final or now - self._last_progress.get(key, 0.0) >= self.progress_interval:
            self._last_progress[key] = now
            self.info(message)

    # ----- secrets ------------------------------------------------------------------------
    def mask(self, value: str) -> None:
        """Never show this value again; faces with a log masker register it there too."""
        lines = mask_lines(value)
        for form in [*lines, *(f for line in [value, *lines] for f in encoded_forms(line))]:
            if form not in self._masked:
                self._masked.append(form)
        self._masked.sort(key=len, reverse=True)  # longest first: see _pattern_of

    def scrub(self, text: str) -> str:
        """text with every masked value shown as ***. Values that overlap (abcd and cdef in
        abcdef) are hidden as one: replacing one after the other would show the tail of the
        second (***ef)."""
        found_in = [secret for secret in self._masked if secret in text]  # fast, in C
        if not found_in:
            return text
        pattern = _pattern_of(tuple(found_in))
        pieces, shown_to = [], 0
        start, end = -1, -1
        for found in pattern.finditer(text):
            if found.start() >= end:  # a new masked stretch: close the last one
                if end > 0:
                    pieces += [text[shown_to:start], "***"]
                    shown_to = end
                start = found.start()
            end = max(end, found.start() + len(found.group(1)))
        if end > 0:
            pieces += [text[shown_to:start], "***"]
            shown_to = end
        pieces.append(text[shown_to:])
        return "".join(pieces)

    def cut_for_scrub(self, text: str) -> int:
        """Where a stream's text read so far can be cut: text[:cut] can be scrubbed and shown
        now, text[cut:] waits for what follows. No masked value crosses the cut, and the tail
        is long enough to hold the start of one that the rest of the stream may complete."""
        longest = max((len(s.encode("utf-8")) for s in self._masked), default=0)
        # In bytes: text decoded with surrogateescape has at most one character per byte.
        cut = max(0, len(text) - max(0, longest - 1))
        found_in = [secret for secret in self._masked if secret in text]
        moved = True
        while moved and cut > 0 and found_in:
            moved = False
            for found in _pattern_of(tuple(found_in)).finditer(text, max(0, cut - longest)):
                if found.start() >= cut:
                    break
                if found.start() + len(found.group(1)) > cut:
                    cut, moved = found.start(), True
                    break
        return cut

    # ----- results ------------------------------------------------------------------------
    def set_outputs(self, step: str, outputs: Mapping[str, str | Secret]) -> None:
        """Outputs for later steps. A Secret value (opt-in) shows as <redacted>; only a face
        that hands outputs to a masked store (GitHub) ever writes its value."""
        # Shown with --quiet too: outputs are what a quiet run is for.
        if not self.json_mode:
            for name, value in outputs.items():
                self.write(f"  {name}: {value}")

    def summary(self, step: str, markdown: str) -> None:
        """A markdown report; only faces with a summary page keep it."""

    def result(
        self,
        step: str,
        *,
        exit_code: int,
        outputs: Mapping[str, str | Secret],
        error: str | None,
        plan: Mapping[str, Any] | None = None,
        applied: Sequence[str] = (),
    ) -> None:
        """The one machine-readable line of ``--json`` mode, on stdout."""
        if self.json_mode:
            document: dict[str, Any] = {
                "step": step,
                "ok": exit_code == 0,
                "exit_code": exit_code,
                # Scrubbed as every other channel of outputs is (a terminal line, GitHub's
                # output file, Jenkins' JSON file); a Secret stays <redacted>.
                "outputs": {
                    name: value if isinstance(value, Secret) else self.scrub(value)
                    for name, value in outputs.items()
                },
                "error": self.scrub(error) if error else None,
            }
            if plan is not None:
                document["dry_run"] = True
                document["plan"] = plan["actions"]
            if applied:
                document["applied"] = list(applied)
            sys.stdout.write(json.dumps(document, default=json_default) + "\n")
            sys.stdout.flush()


@functools.lru_cache(maxsize=64)
def _pattern_of(secrets: tuple[str, ...]) -> re.Pattern[str]:
    """At each place the longest of secrets (given longest first) that starts there, found by
    a lookahead so that overlapping ones are all seen: a secret holding another
    (PREFIX-abc-SUFFIX and abc) is hidden whole, not as PREFIX-***-SUFFIX."""
    return re.compile("(?=(" + "|".join(re.escape(s) for s in secrets) + "))", re.DOTALL)
