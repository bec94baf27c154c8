"""What every step is handed and returns, and how a step becomes a click command.

A step is ``run(runtime, flags, command) -> StepResult``: ``Runtime`` carries the global
options of one invocation (and finds the step's CI face and the config file on demand),
``flags`` are the options given on the command line, ``command`` what came after ``--``.
``step_command`` turns such a function into a click command whose options come from the
step's option table.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import click

from steps import registry
from steps.ci import Face, make_face
from steps.core.config_file import ConfigFile, find_config_file, load_config_file
from steps.core.options import Option, Section
from steps.core.plan import Plan
from steps.core.secret import Secret


@dataclass
class Runtime:
    """The global options of one invocation, handed to every step."""

    config: str | None = None
    dry_run: bool = False
    json_mode: bool = False
    ci: str = "auto"
    verbose: bool = False
    quiet: bool = False
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    face: Face | None = None
    step: str = "mlsteps"  # the command being run, for results and summaries
    # What a failing step could still tell (run id, exit code), reported with the error.
    partial_outputs: Mapping[str, str] = field(default_factory=dict)
    _config_file: ConfigFile | None = None

    def get_face(self) -> Face:
        if self.face is None:
            self.face = make_face(
                self.ci,
                self.environ,
                json_mode=self.json_mode,
                verbose=self.verbose,
                quiet=self.quiet,
            )
        return self.face

    def config_file(self) -> ConfigFile:
        if self._config_file is None:
            path = find_config_file(self.config)
            self._config_file = load_config_file(path, registry.all_sections())
        return self._config_file


@dataclass(frozen=True)
class StepResult:
    outputs: Mapping[str, str | Secret]
    summary: str = ""
    plan: Plan | None = None  # set by a dry run: the plan is the result
    applied: tuple[str, ...] = ()  # the plan actions a run applied, in order


def step_command(
    section: Section,
    *,
    help: str,
    epilog: str = "",
    takes_command: bool = False,
    shared: tuple[Section, ...] = (),
    name: str | None = None,
    only: tuple[str, ...] | None = None,
) -> Callable[[Callable[..., StepResult]], click.Command]:
    """Turn ``run(runtime, flags, command)`` into a click command whose options come from the
    section and the shared sections it uses (one source for the flag, its help and its
    environment variable).

    A step with subcommands (``secrets fetch|exec|revoke``) makes one command per ``name``,
    each taking ``only`` the options it uses.
    """

    def decorate(run: Callable[..., StepResult]) -> click.Command:
        @click.pass_context
        def callback(
            ctx: click.Context,
            /,
            command: tuple[str, ...] = (),
            step_dry_run: bool = False,
            step_json: bool = False,
            **raw: Any,
        ) -> None:
            runtime: Runtime = ctx.find_object(Runtime) or Runtime()
            runtime.step = section.name
            # `mlsteps train --dry-run` is what people type; it means the global flag.
            runtime.dry_run = runtime.dry_run or step_dry_run
            runtime.json_mode = runtime.json_mode or step_json
            given = {
                name.replace("_", "-"): value
                for name, value in raw.items()
                if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
            }
            result = run(runtime, given, list(command))
            face = runtime.get_face()
            if result.plan is not None:
                face.info("dry run: nothing below is done (no container, login or write):")
                for line in result.plan.lines():
                    face.info("  " + line)
                face.result(
                    section.name, exit_code=0, outputs={}, error=None, plan=result.plan.to_json()
                )
                return
            if result.summary:
                face.summary(section.name, result.summary)
            face.set_outputs(section.name, result.outputs)
            face.result(
                section.name,
                exit_code=0,
                outputs=result.outputs,
                error=None,
                applied=result.applied,
            )

        params: list[click.Parameter] = [
            _click_option(s.name, o)
            for s in (section, *shared)
            for o in s.options
            if o.cli and (only is None or o.name in only)
        ]
        params += [
            click.Option(
                ["--dry-run", "step_dry_run"], is_flag=True, help="Same as mlsteps --dry-run."
            ),
            click.Option(["--json", "step_json"], is_flag=True, help="Same as mlsteps --json."),
        ]
        if takes_command:
            params.append(click.Argument(["command"], nargs=-1, type=click.UNPROCESSED))
        return click.Command(
            name or section.name,
            callback=callback,
            params=params,
            help=help,
            epilog=epilog,
            # Everything after the first positional word belongs to the command it runs.
            context_settings={
                "allow_interspersed_args": False,
                "help_option_names": ["-h", "--help"],
            },
        )

    return decorate


def _click_option(section: str, option: Option) -> click.Option:
    # Backticks mark code for the faces that render it (steps/faces); a terminal shows it plain.
    env = " or ".join((option.env_var(section), *option.env_fallbacks))
    help_text = f"{option.help.replace('`', '')} Env: {env}."
    if option.choices:
        help_text += f" One of: {', '.join(option.choices)}."
    if option.default not in (None, (), []):
        help_text += f" Default: {option.shown_default}."
    if option.limits is not None:
        help_text += f" Range:{option.range_text}."
    # Values stay strings here: config.resolve parses flags, env and file the same way,
    # so a bad value gets the same message whichever way it came in. That is also why an
    # on/off option takes a value (--tls-skip-verify true): every face passes it the same way.
    choices = ("true", "false") if option.kind == "bool" else option.choices
    return click.Option(
        [option.flag],
        multiple=option.kind in ("list", "structured"),
        metavar=option.metavar or ("[" + "|".join(choices) + "]" if choices else "TEXT"),
        help=help_text,
    )
