"""A value that never shows itself: secrets live in this type from the moment they are read.

str(), repr(), f-strings, logging and ``json.dumps(..., default=json_default)`` all give
``<redacted>``; only ``reveal()`` gives the value, and only the code that hands a secret to its
consumer (an environment, a 0600 file, a tmpfs file) calls it.
"""

from __future__ import annotations

import hmac
from typing import Any, NoReturn

from steps.core.errors import ConfigError
from steps.core.text import strip_escapes
from steps.core.values import MAX_TOKEN_BYTES

REDACTED = "<redacted>"
# Lines of a multi-line value made only of these are structure, not secret: `{`, `},`, `]`.
# Registered as masks they would star every brace in the rest of the job's log.
_STRUCTURE = set("{}[](),:;\"' \t")


def mask_lines(value: str) -> list[str]:
    """What a log masker must hide of value. Runners (GitHub, Jenkins) mask line by line, so
    every line of a multi-line value is registered on its own, except lines that are pure
    structure (a pretty-printed JSON's braces) or one or two characters long, each without its
    indentation; a single-line value is registered whole, however short. Each also without
    its surrounding spaces (a program may print the value trimmed) and without terminal escapes
    (a viewer may strip the colour)."""
    lines = [line for line in value.splitlines() if line.strip()]
    if len(lines) <= 1:
        whole = value.strip("\r\n")
        forms = [whole, whole.strip()] if value.strip() else []
    else:
        # Stripped: the indentation of a pretty-printed line is not there when it is printed
        # compact.
        forms = [line.strip() for line in lines]
    for form in list(forms):
        plain = strip_escapes(form)  # a tool that strips colour shows this form
        forms += [plain, plain.strip()]
    found: list[str] = []
    for form in forms:
        if form and form not in found and (len(lines) <= 1 or _telling(form)):
            found.append(form)
    return found


def encoded_forms(value: str) -> list[str]:
    """How a program commonly prints a value it holds, besides as is: JSON-escaped (a
    structured logger, with and without \\u escapes), as a Python repr, URL-encoded, base64.
    mlsteps' faces hide these too in what they show (GitHub's runner masks some encodings;
    Jenkins' Mask Passwords and a terminal mask none); they are not registered with the runners,
    whose maskers match the raw lines."""
    import base64
    import json
    import urllib.parse

    forms = [
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote(value),  # a path keeps its /
        urllib.parse.quote_plus(value),  # a form or query string
        base64.b64encode(value.encode("utf-8", "surrogateescape")).decode().rstrip("="),
    ]
    # Shorter ones would star ordinary text: a 4-character value's base64 is 6 letters.
    return [form for form in dict.fromkeys(forms) if form != value and len(form) >= 6]


def _telling(line: str) -> bool:
    """A line of a multi-line value that gives something away when shown."""
    return len(line) > 2 and not set(line) <= _STRUCTURE


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a Secret holds a str")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def mask_lines(self) -> list[str]:
        return mask_lines(self._value)

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> NoReturn:
        # Pickling would write the value in clear wherever the pickle goes (a cache, a queue).
        raise TypeError("a Secret cannot be pickled")


def json_default(value: Any) -> Any:
    """``json.dumps(doc, default=json_default)``: a Secret anywhere in doc becomes <redacted>."""
    if isinstance(value, Secret):
        return REDACTED
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# A token, a secret id or a JWT is at most a few KiB: a file much larger is the wrong file
# (or /dev/zero), and reading it whole would never end. The same cap the option's own check
# (steps/values.parse_token_file) applies before anything runs.
MAX_CREDENTIAL_BYTES = MAX_TOKEN_BYTES


def read_secret_file(option: str, path: str, fix: str = "Fix the path.") -> Secret:
    """The credential in a file, trimmed; exit 2 naming the option for anything else."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CREDENTIAL_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot read it ({exc.strerror}). {fix}") from None
    if len(data) > MAX_CREDENTIAL_BYTES:
        raise ConfigError(
            f"{option} {path}: longer than {MAX_CREDENTIAL_BYTES // 1024} KiB, so not a "
            "credential (a token, a secret id or a JWT is a few KiB at most). Give the file "
            "that holds the credential alone."
        )
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(
            f"{option} {path}: not UTF-8 text, so not a credential. Give the file that holds "
            "the credential alone, as text."
        ) from None
    if not text:
        raise ConfigError(f"{option} {path}: the file is empty. {fix}")
    return Secret(text)
