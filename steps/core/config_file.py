"""mlsteps.yaml + ``MLSTEPS_*`` environment + flags → validated option values, in one place.

The options themselves (``Option``, ``Section``, the shared sections) are in
steps/core/options.py. Precedence: flags > environment > file > defaults.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steps.core.errors import ConfigError
from steps.core.options import KINDS, Option, Section
from steps.core.values import (
    MAX_YAML_CHARS,
    YamlRefused,
    absolute_path,
    check_path,
    check_text,
    clip,
    compose_yaml,
    construct_yaml,
)

DEFAULT_CONFIG_FILE = "mlsteps.yaml"


@dataclass(frozen=True)
class Value:
    value: Any
    source: str  # "flag --gpus", "env MLSTEPS_TRAIN_GPUS", "mlsteps.yaml:12", "default"
    raw: Any = None  # as the user wrote it (None for a default), for `config show`


@dataclass
class ConfigFile:
    """A parsed mlsteps.yaml with the line of every key, for messages that point at it."""

    path: Path | None
    data: dict[str, Any] = field(default_factory=dict)
    lines: dict[tuple[str, ...], int] = field(default_factory=dict)

    def where(self, *key_path: str) -> str:
        if self.path is None:
            return "(no file)"
        line = self.lines.get(tuple(key_path))
        return f"{self.path}:{line}" if line else str(self.path)


def find_config_file(explicit: str | None, cwd: Path | None = None) -> Path | None:
    """The file named by --config / MLSTEPS_CONFIG, else ./mlsteps.yaml when present."""
    if explicit:
        try:
            path = Path(check_path(explicit))
        except ValueError as exc:
            raise ConfigError(f"--config {clip(explicit)} is not valid: expected {exc}.") from None
        if not path.is_file():
            what = "not a regular file" if path.exists() else "no such file"
            raise ConfigError(
                f"--config {clip(explicit, plain=True)}: {what}. Give the path of an mlsteps.yaml, "
                "or leave --config out to use ./mlsteps.yaml when present."
            )
        return path
    default = (cwd or Path.cwd()) / DEFAULT_CONFIG_FILE
    try:
        return default if default.is_file() else None
    except OSError as exc:  # a directory on the way this user may not enter
        raise ConfigError(
            f"{default}: cannot be read ({exc.strerror or exc}). Run where this user can read "
            "it, or give another file with --config."
        ) from None


def load_config_file(path: Path | None, sections: Sequence[Section]) -> ConfigFile:
    """Parse and check the file's shape: known sections, known keys, each with its line."""
    if path is None:
        return ConfigFile(None)
    import yaml  # only when a file is there; pyyaml is light but not free

    try:
        with path.open("rb") as handle:  # bounded: the file could be /dev/zero or huge
            data = handle.read(MAX_YAML_CHARS + 1)
        if len(data) > MAX_YAML_CHARS:
            raise ConfigError(
                f"{path}: larger than {MAX_YAML_CHARS:,} bytes; a pipeline file is far smaller. "
                "Give the right file."
            )
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot be read ({exc.strerror or exc}). Give a readable mlsteps.yaml "
            "(check its permissions), or leave --config out."
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start}). Save the file as UTF-8."
        ) from None
    try:
        root = compose_yaml(text)
    except YamlRefused as exc:
        where = f"{path}:{exc.line}" if exc.line else str(path)
        raise ConfigError(f"{where}: not valid YAML ({exc.problem}). Fix it there.") from None
    cfg = ConfigFile(path)
    if root is None:
        return cfg
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(
            f"{path}:{root.start_mark.line + 1}: the file must be a mapping of sections "
            f"({', '.join(s.name for s in sections)})."
        )
    known = {s.name: s for s in sections}
    for key_node, value_node in root.value:
        name = key_node.value
        line = key_node.start_mark.line + 1
        if name not in known:
            raise ConfigError(_unknown(f"{path}:{line}", "section", name, list(known)))
        section = known[name]
        cfg.lines[(name,)] = line
        if value_node.tag.endswith(":null"):
            cfg.data[name] = {}
            continue
        if not isinstance(value_node, yaml.MappingNode):
            raise ConfigError(
                f"{path}:{line}: '{name}' must be a mapping of options, "
                f"e.g. {name}: {{{section.options[0].name}: …}}."
            )
        values: dict[str, Any] = {}
        option_names = [o.name for o in section.options]
        for opt_key, opt_value in value_node.value:
            opt_line = opt_key.start_mark.line + 1
            if opt_key.value not in option_names:
                raise ConfigError(
                    _unknown(f"{path}:{opt_line}", "key", opt_key.value, option_names, name)
                )
            cfg.lines[(name, opt_key.value)] = opt_line
            if section.option(opt_key.value).secret:
                raise ConfigError(_committed_credential(cfg, section, opt_key.value))
            try:
                values[opt_key.value] = construct_yaml(opt_value)
            except YamlRefused as exc:
                raise ConfigError(
                    f"{path}:{exc.line}: {name}.{opt_key.value} is not valid ({exc.problem})."
                ) from None
        cfg.data[name] = values
    return cfg


def _committed_credential(cfg: ConfigFile, section: Section, name: str) -> str:
    """Refused whether or not the environment sets it too: a pipeline file is committed and
    read by everyone with the repository, so the credential has leaked already."""
    opt = section.option(name)
    ways = [opt.env_var(section.name), *opt.env_fallbacks]
    has_file = any(o.name == f"{name}-file" for o in section.options)
    return (
        f"{cfg.where(section.name, name)}: {section.name}.{name} is a credential and does not "
        "belong in a file that is committed. Remove it (and rotate it: everyone with the "
        f"repository has read it), and give it through the environment ({' or '.join(ways)})"
        + (f" or the --{name}-file option." if has_file else ".")
    )


def _unknown(where: str, what: str, name: str, known: list[str], section: str = "") -> str:
    guess = difflib.get_close_matches(name.replace("_", "-"), known, n=1, cutoff=0.6)
    hint = f" Did you mean '{guess[0]}'?" if guess else ""
    inside = f" in section '{section}'" if section else ""
    return f"{where}: unknown {what} '{name}'{inside}.{hint} Known: {', '.join(known)}."


def resolve(
    section: Section,
    flags: Mapping[str, Any],
    cfg: ConfigFile,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Value]:
    """Each option's value and where it came from: flags > environment > file > default.

    ``flags`` holds only the flags the user actually gave (raw strings, tuples for lists).
    """
    env = os.environ if environ is None else environ
    file_values = cfg.data.get(section.name, {})
    base_dir = cfg.path.parent if cfg.path else Path.cwd()
    resolved: dict[str, Value] = {}
    for opt in section.options:
        if opt.name in flags and flags[opt.name] not in (None, ()):
            raw, source, base = flags[opt.name], f"flag {opt.flag}", Path.cwd()
            label = opt.flag
        elif env_name := _first_set(env, (opt.env_var(section.name), *opt.env_fallbacks)):
            source, base = f"env {env_name}", Path.cwd()
            label = f"environment variable {env_name}"
            if env.get("GITHUB_ACTIONS") == "true" and env_name == opt.env_var(section.name):
                # The composite actions map each input to this variable: name what the user wrote.
                label = f"input '{opt.name}' (env {env_name})"
            try:
                raw = _from_env(opt, env[env_name])
            except ValueError as exc:  # shell words with an unclosed quote
                shown = "<redacted>" if opt.secret else clip(env[env_name])
                raise ConfigError(
                    f"{label} {shown} is not valid: expected shell words ({exc}). Close the "
                    "quote, or escape it with a backslash."
                ) from None
        elif opt.name in file_values:  # (never a credential: load_config_file refuses those)
            raw = file_values[opt.name]
            source, base = cfg.where(section.name, opt.name), base_dir
            label = f"{source}: {section.name}.{opt.name}"
        else:
            resolved[opt.name] = Value(opt.default, "default")
            continue
        resolved[opt.name] = Value(_convert(opt, raw, label, base), source, raw)
    return resolved


def _first_set(env: Mapping[str, str], names: Sequence[str]) -> str | None:
    # An empty variable counts as unset: GitHub passes "" for every input the user left out.
    return next((n for n in names if env.get(n, "") != ""), None)


def _from_env(opt: Option, text: str) -> Any:
    if opt.kind == "list" and opt.env_format == "shell":
        import shlex

        return shlex.split(text)
    if opt.kind == "list":
        return [line.strip() for line in text.splitlines() if line.strip()]
    return text


def _convert(opt: Option, raw: Any, label: str, base: Path) -> Any:
    def bad(expected: str, value: Any = raw, *, said: str = "expected ") -> ConfigError:
        if isinstance(value, tuple | list) and all(isinstance(v, str) for v in value):
            value = "; ".join(value)  # repeated flags of a structured option
        shown = "<redacted>" if opt.secret else clip(value)
        # A parser's own words may quote the value again: they are cut the same way.
        expected = clip(expected.rstrip("."), 300, plain=True)
        return ConfigError(f"{label} {shown} is not valid: {said}{expected}.")

    if raw is None:
        return opt.default
    try:
        _check_texts(raw)
    except ValueError as exc:
        raise bad(str(exc)) from None
    if opt.kind == "structured":
        assert opt.parse is not None, "a structured option parses its own shape"
        try:
            return opt.parse(list(raw) if isinstance(raw, tuple) else raw)
        except ValueError as exc:  # the parser's message names the key and what it wants
            raise bad(str(exc), said="") from None
    if opt.kind == "list":
        if isinstance(raw, str | int | float):
            raw = [raw]
        if not isinstance(raw, list | tuple) or any(isinstance(i, dict | list) for i in raw):
            raise bad(KINDS["list"])
        items = [str(i) for i in raw]
        parsed = []
        for item in items:
            try:
                parsed.append(_parse(opt, item, base) if opt.parse else item)
            except ValueError as exc:
                raise bad(str(exc), item) from None
        return parsed
    if isinstance(raw, dict | list | tuple):
        raise bad(KINDS.get(opt.kind, "a single value"))
    text = str(raw).strip() if not isinstance(raw, bool) else str(raw).lower()
    try:
        if opt.parse:
            return _in_range(opt, _parse(opt, text, base))
        if opt.kind in ("int", "float"):
            try:
                number = int(text) if opt.kind == "int" else float(text)
            except ValueError:  # Python's own words ("invalid literal for int()") help nobody
                raise ValueError(KINDS[opt.kind]) from None
            return _in_range(opt, number)
        if opt.kind == "bool":
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(KINDS["bool"])
        if opt.kind == "choice":
            if text not in opt.choices:
                raise ValueError("one of " + ", ".join(opt.choices))
            return text
        if opt.kind == "path":
            return absolute_path(text, base)
        return text
    except ValueError as exc:
        raise bad(str(exc) or KINDS.get(opt.kind, "a valid value")) from None


def _check_texts(raw: Any) -> None:
    """Every string in a value (a flag, a variable, or what the file nests) is sane text."""
    if isinstance(raw, str):
        check_text(raw)
    elif isinstance(raw, list | tuple):
        for item in raw:
            _check_texts(item)
    elif isinstance(raw, dict):
        for key, item in raw.items():
            _check_texts(key)
            _check_texts(item)


def _in_range(opt: Option, value: Any) -> Any:
    """Numbers are finite and within the option's range (a float with no range: any finite)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    low, high = opt.range
    if not math.isfinite(value):
        raise ValueError(f"a finite number{opt.range_text}")
    if not low <= value <= high:
        raise ValueError(f"{KINDS.get(opt.kind, 'a number')}{opt.range_text}")
    return value


def _parse(opt: Option, text: str, base: Path) -> Any:
    assert opt.parse is not None
    return opt.parse(text, base) if opt.parse_takes_base else opt.parse(text)  # type: ignore[call-arg]
