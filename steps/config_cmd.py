"""``mlsteps config show`` and ``mlsteps config schema``."""

from __future__ import annotations

import json
import sys

import click

from steps import registry
from steps.cli import Runtime
from steps.config import json_schema, resolve, show_value


@click.group("config", context_settings={"help_option_names": ["-h", "--help"]})
def command() -> None:
    """Show the effective configuration or its JSON Schema."""


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
            shown = show_value(opt, value.value)
            lines.append(f"  {opt.name}: {shown}    # {value.source}")
            document[section.name][opt.name] = {"value": shown, "source": value.source}
    if runtime.json_mode:
        sys.stdout.write(
            json.dumps({"file": str(cfg.path) if cfg.path else None, **document}) + "\n"
        )
    else:
        sys.stdout.write("\n".join(lines) + "\n")


@command.command("schema")
def schema() -> None:
    """A JSON Schema of mlsteps.yaml, for editors and linters."""
    sys.stdout.write(json.dumps(json_schema(registry.all_sections()), indent=2) + "\n")
