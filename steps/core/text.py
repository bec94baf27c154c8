"""Text as a log shows it."""

from __future__ import annotations

import re

# Terminal control sequences (colours, cursor moves, titles): CSI, OSC and the two-character
# escapes. Tools print them even when piped; a log viewer, `less -R` or a CI page that strips
# them shows the text without them.
TERMINAL_ESCAPES = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[ -/]*[0-~])"
)


def strip_escapes(text: str) -> str:
    return TERMINAL_ESCAPES.sub("", text)


def redact_url(url: str) -> str:
    """Hide credentials in a URL (https://user:pass@host → https://***@host) before showing it.
    The user part ends at the last @ before the path: a password may hold an @ of its own."""
    return re.sub(r"(?<=://)[^/?#\s]*@", "***@", url)
