"""A value that never shows itself: secrets live in this type from the moment they are read.

str(), repr(), f-strings, logging and ``json.dumps(..., default=json_default)`` all give
``<redacted>``; only ``reveal()`` gives the value, and only the code that hands a secret to its
consumer (an environment, a 0600 file, a tmpfs file) calls it.
"""

from __future__ import annotations

import hmac
from typing import Any, NoReturn

REDACTED = "<redacted>"


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a Secret holds a str")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def mask_lines(self) -> list[str]:
        """What a log masker must hide: every non-blank line, since runners mask line by line."""
        return [line for line in self._value.splitlines() if line.strip()] or (
            [self._value] if self._value.strip() else []
        )

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
