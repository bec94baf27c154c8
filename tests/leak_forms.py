"""What a leak of a secret value looks like in a log, an output or a file: the value raw, or
base64-, URL- or JSON-escaped, or one of its lines long enough to be told apart from ordinary
text. Shared by the leak sweep (tests/integration/test_secrets_leaks.py) and the secrets faces
(tests/faces/secrets_setup.py)."""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Mapping


def escaped_forms(value: str) -> set[str]:
    """The value and its raw, base64, URL- and JSON-escaped shapes, and each line long enough
    to be told apart from ordinary text."""
    raw = value.encode()
    forms = {
        value,
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
    }
    forms |= {line.strip() for line in value.splitlines() if len(line.strip()) >= 8}
    return {f for f in forms if len(f) >= 6}


def leaked(text: str, values: Mapping[str, str]) -> list[str]:
    """Which values show in text, by name only: a failing test must not print them either."""
    return [name for name, value in values.items() if any(f in text for f in escaped_forms(value))]
