"""Raw values from users and from files they do not control, made safe to parse and to show.

One YAML loader with limits serves mlsteps.yaml, option values written as YAML (``--metrics``,
``--secrets``) and the YAML files inside a model: an alias bomb, a 2,000-deep nesting, a
``!!python`` tag or a list as a mapping key is refused with a one-line reason before it costs
time or memory. ``clip`` keeps a huge value from turning into a huge message.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

# Far above any real pipeline file, option value or MLmodel; far below what hangs the parser
# (PyYAML in pure Python reads about 1 MB a second, and an alias bomb expands exponentially).
MAX_YAML_CHARS = 1_000_000
MAX_YAML_NODES = 20_000  # counted with every alias expanded, so a bomb is refused by its size
MAX_YAML_DEPTH = 50
# The longest string an option takes (a flag, an environment variable, a scalar in the file).
MAX_VALUE_CHARS = 65_536
CLIP_CHARS = 120

# The tags of plain data: everything else (!!python/…, !!binary, !!set, !foo) is refused.
_PLAIN = "tag:yaml.org,2002:"
ALLOWED_TAGS = frozenset(
    _PLAIN + name
    for name in ("null", "bool", "int", "float", "str", "seq", "map", "timestamp", "merge")
)


class YamlRefused(ValueError):
    """Not YAML, or YAML beyond the limits; ``line`` (1-based) when one can be named."""

    def __init__(self, problem: str, line: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.line = line


def _line(event: Any) -> int | None:
    return event.start_mark.line + 1 if event.start_mark else None


def clip(value: object, limit: int = CLIP_CHARS, *, plain: bool = False) -> str:
    """repr(value) (the text itself when ``plain``), cut to ``limit`` characters with the
    full length said, for messages."""
    text = value if plain and isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


def compose_yaml(text: str) -> Any:
    """The node tree of one YAML document (for messages that name lines), checked: size,
    depth, expanded node count, tags and scalar keys. None for an empty document."""
    import yaml

    if len(text) > MAX_YAML_CHARS:
        raise YamlRefused(f"{len(text):,} characters; at most {MAX_YAML_CHARS:,} are read")
    try:
        loader = _loader_class()(text)  # (the reader refuses control characters right here)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise YamlRefused(str(exc).splitlines()[0], line) from None
    try:
        return loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        problem = exc.problem or str(exc).splitlines()[0]
        # An unclosed bracket is found at the end of the text; the context names its start.
        if exc.context and exc.context_mark:
            problem += f", {exc.context} at line {exc.context_mark.line + 1}"
        mark = exc.problem_mark or exc.context_mark
        raise YamlRefused(problem, mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise YamlRefused(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    finally:
        loader.dispose()


def construct_yaml(node: Any) -> Any:
    """The Python value of a node ``compose_yaml`` returned (or of one of its children)."""
    import yaml

    if node is None:
        return None
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError as exc:  # e.g. a date that does not exist: 2024-02-30
        raise YamlRefused(str(exc).splitlines()[0], node.start_mark.line + 1) from None
    except ValueError as exc:
        raise YamlRefused(str(exc), node.start_mark.line + 1) from None
    finally:
        loader.dispose()


def load_yaml(text: str | bytes) -> Any:
    """The value of one YAML document, within the limits above (YamlRefused otherwise)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise YamlRefused(f"not UTF-8 text (byte {exc.start})") from None
    return construct_yaml(compose_yaml(text))


_LOADER: Any = None


def _loader_class() -> Any:
    """A SafeLoader whose composer counts and checks; built once, on first use (yaml is
    imported only when YAML is read)."""
    global _LOADER
    if _LOADER is not None:
        return _LOADER
    import yaml

    class Loader(yaml.SafeLoader):
        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self.depth = 0
            self.nodes = 0
            self.sizes: dict[int, int] = {}  # id(node) → its node count, aliases expanded

        def compose_node(self, parent: Any, index: Any) -> Any:
            event: Any = self.peek_event()  # type: ignore[no-untyped-call]
            if isinstance(event, yaml.AliasEvent):
                target = self.anchors.get(event.anchor)
                if target is not None:
                    size = self.sizes.get(id(target))
                    if size is None:
                        raise YamlRefused(
                            f"the alias *{event.anchor} refers to a node that contains it",
                            _line(event),
                        )
                    self._count(size, event)
                return super().compose_node(parent, index)
            self.depth += 1
            if self.depth > MAX_YAML_DEPTH:
                raise YamlRefused(
                    f"nested deeper than {MAX_YAML_DEPTH} levels", event.start_mark.line + 1
                )
            before = self.nodes
            self._count(1, event)
            node: Any = super().compose_node(parent, index)
            self.depth -= 1
            self.sizes[id(node)] = self.nodes - before
            if node.tag not in ALLOWED_TAGS:
                raise YamlRefused(
                    f"the tag {node.tag.replace(_PLAIN, '!!')} is not allowed (plain data "
                    "only: strings, numbers, booleans, lists and mappings)",
                    node.start_mark.line + 1,
                )
            return node

        def compose_mapping_node(self, anchor: Any) -> Any:
            node = super().compose_mapping_node(anchor)
            for key, _ in node.value:
                if not isinstance(key, yaml.ScalarNode):
                    raise YamlRefused(
                        "a mapping key must be a plain value, not a list or a mapping",
                        key.start_mark.line + 1,
                    )
            return node

        def _count(self, size: int, event: Any) -> None:
            self.nodes += size
            if self.nodes > MAX_YAML_NODES:
                raise YamlRefused(
                    f"more than {MAX_YAML_NODES:,} values (aliases counted expanded)",
                    _line(event),
                )

    _LOADER = Loader
    return Loader


def check_text(text: str) -> str:
    """A string option's value as given, or ValueError: no NUL (C APIs cut the value there),
    valid UTF-8 (an environment variable may hold any bytes), and a sane length."""
    if "\x00" in text:
        raise ValueError("text without a NUL character")
    if len(text) > MAX_VALUE_CHARS:
        raise ValueError(f"at most {MAX_VALUE_CHARS:,} characters (got {len(text):,})")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"UTF-8 text (character {exc.start} is not)") from None
    return text


def check_path(text: str) -> str:
    """A path as given, or ValueError when no file system would take it (Linux: 255 bytes a
    name, 4096 in all), so the message names the option instead of an OSError later."""
    check_text(text)
    size = len(text.encode("utf-8"))
    if size >= 4096:
        raise ValueError(f"a path shorter than 4096 bytes (got {size:,})")
    longest = max((len(part.encode("utf-8")) for part in text.split("/")), default=0)
    if longest > 255:
        raise ValueError(f"a path whose names are at most 255 bytes each (one has {longest:,})")
    return text


def absolute_path(text: str, base: Path) -> str:
    """A path option's value made absolute (relative to ``base``), or ValueError."""
    check_path(text)
    try:
        return str((base / Path(text).expanduser()).resolve())
    except RuntimeError as exc:  # ~nosuchuser, or a symlink loop
        raise ValueError(f"a path that can be resolved ({exc})") from None


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$", re.IGNORECASE)


MAX_DURATION = 30 * 24 * 3600.0  # 30 days: beyond that a timeout or a TTL is a typo
MAX_SIZE = 2**50  # 1024t


def parse_duration(text: str) -> float:
    """'90s', '30m', '2h', '1.5h' or plain seconds → seconds, from 1 ms to 30 days."""
    match = _DURATION.match(text.strip().lower())
    form = "a positive duration (1ms to 720h) such as 90s, 30m or 2h"
    if not match:
        raise ValueError(form)
    scale = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[match.group(2)]
    seconds = float(match.group(1)) * scale
    if not 0.001 <= seconds <= MAX_DURATION:
        raise ValueError(form)
    return seconds


def parse_version(text: str) -> str:
    """A model version of the MLflow registry: a number from 1, as text."""
    if not re.fullmatch(r"[1-9][0-9]*", text):
        raise ValueError("a model version number such as 3")
    return text


def parse_size(text: str) -> int:
    """'64m', '2g', '512k', '1GiB' or plain bytes → bytes (binary units, as Docker reads them),
    from 1 byte to 1024t."""
    match = _SIZE.match(text.strip())
    form = "a positive size (up to 1024t) such as 512m or 4g"
    if not match:
        raise ValueError(form)
    power = "bkmgt".index(match.group(2).lower() or "b")
    size = float(match.group(1)) * 1024**power
    if not 1 <= size <= MAX_SIZE:
        raise ValueError(form)
    return int(size)


MAX_PEM_BYTES = 10 * 2**20  # a CA bundle of every public CA is about 200 KiB
MAX_TOKEN_BYTES = 64 * 2**10  # a JWT or a Kubernetes token is a few KiB


def _read_head(path: str, limit: int, what: str) -> bytes:
    """Up to limit + 1 bytes of a regular file, or ValueError saying why it cannot be."""
    try:
        if os.path.exists(path) and not os.path.isfile(path):  # (opening a pipe would block)
            raise ValueError(f"a {what} (this is not a regular file)")
        with open(path, "rb") as handle:
            return handle.read(limit + 1)
    except FileNotFoundError:
        raise ValueError(f"an existing {what} (there is none at that path)") from None
    except PermissionError:
        raise ValueError(f"a {what} this user can read (permission denied)") from None
    except OSError as exc:
        raise ValueError(f"a readable {what} ({exc.strerror or exc})") from None


def parse_pem_file(text: str, base: Path | None = None) -> str:
    """A PEM file (CA bundle, certificate, key) that exists and can be read now, so that a
    typo, a directory or an unreadable file is named with its option, not deep inside the TLS
    library at the first request."""
    path = absolute_path(text, base or Path.cwd())
    head = _read_head(path, MAX_PEM_BYTES, "PEM file")
    if len(head) > MAX_PEM_BYTES or b"-----BEGIN " not in head:
        raise ValueError("a PEM file (-----BEGIN … blocks); this one is not")
    return path


def parse_token_file(text: str, base: Path | None = None) -> str:
    """A file holding a credential (token, role id, JWT): when it exists, a small UTF-8 text
    file (not /dev/zero, a directory or a binary). A missing one is left to the step, which
    says what it needed it for."""
    path = absolute_path(text, base or Path.cwd())
    if not os.path.lexists(path):
        return path
    head = _read_head(path, MAX_TOKEN_BYTES, "small text file")
    if len(head) > MAX_TOKEN_BYTES:
        raise ValueError(
            f"a small text file (at most {MAX_TOKEN_BYTES // 1024} KiB; this is larger)"
        )
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"a UTF-8 text file (byte {exc.start} is not)") from None
    return path


_OS = ("linux", "windows")
_ARCH = ("amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", "mips64le", "loong64")


def parse_platform(text: str) -> str:
    """An image platform, os/arch[/variant], as Docker and registries name them."""
    parts = text.strip().split("/")
    if (
        2 <= len(parts) <= 3
        and parts[0] in _OS
        and parts[1] in _ARCH
        and (len(parts) == 2 or re.fullmatch(r"v[5-9]", parts[2]))
    ):
        return text.strip()
    raise ValueError(
        f"os/arch[/variant], such as linux/amd64 or linux/arm64/v8 (os: {', '.join(_OS)}; "
        f"arch: {', '.join(_ARCH)})"
    )
