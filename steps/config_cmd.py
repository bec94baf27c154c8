"""``mlsteps config show`` and ``mlsteps config schema``."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click

from steps import registry
from steps.core.config_file import Value, resolve
from steps.core.options import Option, Section
from steps.core.runtime import Runtime
from steps.core.text import redact_url

# the tool's line in `mlsteps --help`, and its own help
HELP = "Show the effective configuration or its JSON Schema."


@click.group("config", help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
def command() -> None:
    pass


@command.command("show")
@click.pass_obj
def show(runtime: Runtime) -> None:
    """Every option's effective value and where it came from (flag, env, file:line, default).

    Secret values and credentials inside URLs are redacted.
    """
    cfg = runtime.config_file()
    sections = registry.all_sections()
    document: dict[str, dict[str, dict[str, object]]] = {}
    lines = [f"# file: {cfg.path or '(none: no ./mlsteps.yaml and no --config)'}"]
    for section in sections:
        values = resolve(section, {}, cfg, runtime.environ)
        lines.append(f"{section.name}:")
        document[section.name] = {}
        for opt in section.options:
            value = values[opt.name]
            shown = show_value(opt, value)
            lines.append(f"  {opt.name}: {shown}    # {value.source}")
            document[section.name][opt.name] = {"value": shown, "source": value.source}
    if runtime.json_mode:
        sys.stdout.write(
            json.dumps({"file": str(cfg.path) if cfg.path else None, **document}) + "\n"
        )
    else:
        sys.stdout.write("\n".join(lines) + "\n")


@command.command("schema")
@click.option(
    "--result",
    "result",
    metavar="STEP",
    type=click.Choice(sorted(registry.step_commands())),
    help="The schema of STEP's --json result instead (one JSON object: step, ok, exit_code, "
    "outputs, error, and dry_run/plan or applied).",
)
def schema(result: str | None) -> None:
    """A JSON Schema of mlsteps.yaml, for editors and linters (or of a step's --json result)."""
    if result:
        from steps.result_schema import result_schema

        document = result_schema(result)
    else:
        document = json_schema(registry.all_sections())
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


def show_value(opt: Option, value: Value) -> str:
    """A resolved value as users write it (the text given, or the default as the help says
    it), never Python's repr of the parsed form; secrets and URL credentials hidden."""
    written = value.raw if value.raw is not None else value.value
    if written is None:
        return "(unset)"
    if opt.secret:
        return "<redacted>"
    if value.raw is None:
        return redact_url(opt.shown_default)
    return redact_url(_as_written(written))


def _as_written(raw: Any) -> str:
    import json

    if isinstance(raw, bool):
        return str(raw).lower()
    if isinstance(raw, list | tuple) and all(isinstance(i, str) for i in raw):
        return "[" + ", ".join(raw) + "]" if len(raw) != 1 else raw[0]
    if isinstance(raw, dict | list | tuple):
        return json.dumps(raw, default=str)  # JSON is YAML's flow style
    return str(raw)


def json_schema(sections: Sequence[Section]) -> dict[str, Any]:
    """A JSON Schema of mlsteps.yaml, for editors (yaml-language-server) and CI linting."""
    types = {"int": "integer", "float": "number", "bool": "boolean"}

    def option_schema(opt: Option) -> dict[str, Any]:
        if opt.schema is not None:
            schema: dict[str, Any] = dict(opt.schema)
        elif opt.kind == "list":
            schema = {"type": "array", "items": {"type": "string"}}
        elif opt.kind == "choice":
            schema = {"type": "string", "enum": list(opt.choices)}
        elif opt.kind in types:
            schema = {"type": types[opt.kind]}
        else:
            schema = {
                "type": ["string", "number"] if opt.parse and opt.kind != "path" else "string"
            }
        schema["description"] = opt.help.replace("`", "")  # code marks: see steps/faces
        if opt.limits is not None:
            schema["minimum"], schema["maximum"] = opt.limits
        if opt.default is not None:
            primitive = isinstance(opt.default, str | int | float | bool)
            schema["default"] = opt.default if primitive else str(opt.default)
        return schema

    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "mlsteps.yaml",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            s.name: {
                "type": "object",
                "description": s.help,
                "additionalProperties": False,
                # Credentials come from the environment only: not keys of the file.
                "properties": {o.name: option_schema(o) for o in s.options if not o.secret},
            }
            for s in sections
        },
    }


# The commands of this tool, each with its line in `mlsteps --help` (read by steps/registry.py).
COMMANDS = {"config": (HELP, "steps.config_cmd:command")}
