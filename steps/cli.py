"""The ``mlsteps`` root command: global options, lazy step loading, and the one error handler.

Nothing heavy is imported here: ``mlsteps --help`` and every ``--dry-run`` stay fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import click

from steps import __version__, registry
from steps.ci import KINDS, Face, make_face
from steps.core import signals
from steps.core.config_file import ConfigFile, Option, Section, find_config_file, load_config_file
from steps.core.errors import MlstepsError
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


class LazyGroup(click.Group):
    """Loads a step's module only when that step runs or its help is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*registry.STEP_MODULES, *registry.TOOL_MODULES})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in registry.STEP_MODULES and name not in registry.TOOL_MODULES:
            return None
        command: click.Command = registry.command(name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help without importing each step: the lines live here, next to the registry.
        rows = [(name, STEP_HELP.get(name, "")) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


STEP_HELP = {
    "train": "Run training in a container (or a local process), tracked in MLflow.",
    "secrets": "Read secrets from Vault and hand them on masked: exec, fetch, revoke.",
    "package": "Build an MLflow model into a serving image; smoke-test, push and register it.",
    "gate": "Judge a candidate model against thresholds, the champion, slices and its data.",
    "promote": "Move the champion alias to a gated version (compare-and-set under a lock).",
    "rollback": "Move the champion alias back to the previous champion (one level of undo).",
    "config": "Show the effective configuration or its JSON Schema.",
}


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config",
    metavar="PATH",
    envvar="MLSTEPS_CONFIG",
    help="Pipeline file (default: ./mlsteps.yaml when present). Env: MLSTEPS_CONFIG.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    envvar="MLSTEPS_DRY_RUN",
    help="Print the plan and touch nothing (no container, no MLflow run). Env: MLSTEPS_DRY_RUN.",
)
@click.option(
    "--json",
    "json_mode",
    is_flag=True,
    envvar="MLSTEPS_JSON",
    help="Print one JSON result object on stdout; human lines go to stderr. Env: MLSTEPS_JSON.",
)
@click.option(
    "--ci",
    type=click.Choice(KINDS),
    default="auto",
    envvar="MLSTEPS_CI",
    show_default=True,
    help="Which CI face to use; auto reads GITHUB_ACTIONS / JENKINS_URL. Env: MLSTEPS_CI.",
)
@click.option("-v", "--verbose", is_flag=True, help="More detail; tracebacks on errors.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors, outputs and training logs.")
@click.version_option(__version__, "--version", prog_name="mlsteps")
@click.pass_context
def cli(ctx: click.Context, /, **options: Any) -> None:
    """mlsteps: reusable ML delivery steps for the CLI, GitHub Actions and Jenkins.

    Exit codes: 0 done, 1 the step failed, 2 bad input or configuration,
    3 a gate said no, 130/143 interrupted.
    """
    runtime: Runtime = ctx.ensure_object(Runtime)
    for name, value in options.items():
        setattr(runtime, name, value)


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
    help_text = (
        f"{option.help} Env: {' or '.join((option.env_var(section), *option.env_fallbacks))}."
    )
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


def main(argv: list[str] | None = None) -> None:
    """Entry point: parse, dispatch, and turn every failure into its exit code and message."""
    signals.install()
    runtime = Runtime()
    args = sys.argv[1:] if argv is None else argv
    try:
        with cli.make_context("mlsteps", list(args), obj=runtime) as ctx:
            cli.invoke(ctx)
        sys.exit(0)
    except click.exceptions.Exit as exc:  # --help, --version
        sys.exit(exc.exit_code)
    except click.ClickException as exc:  # usage errors: bad flag, missing argument
        exc.message = _shorten(exc.message)  # type: ignore[misc]  # (Final in the stubs only)
        exc.show()
        _report(runtime, runtime.step, 2, exc.format_message())
        sys.exit(2)
    except MlstepsError as exc:
        _fail(runtime, exc.exit_code, exc.message, exc.summary)
    except signals.Cancelled as exc:
        _fail(runtime, exc.exit_code, f"cancelled by {exc}")
    except (KeyboardInterrupt, click.exceptions.Abort):
        _fail(runtime, 130, "interrupted")
    except Exception as exc:  # noqa: BLE001 - the last line of defence, written down in full
        log = _write_traceback(runtime.get_face())
        _fail(
            runtime,
            1,
            f"unexpected error: {type(exc).__name__}: {exc}. The traceback is in {log}; "
            "please attach it to a bug report.",
        )


MESSAGE_CHARS = 1200


def _shorten(message: str) -> str:
    """The last guard on a message that quotes a huge value somewhere: its start (what is
    wrong) and its end (the fix) stay, the middle goes."""
    if len(message) <= MESSAGE_CHARS:
        return message
    cut = len(message) - MESSAGE_CHARS + 100
    return f"{message[:800]} … ({cut:,} characters cut) … {message[-300:]}"


def _fail(runtime: Runtime, code: int, message: str, summary: str = "") -> None:
    face, step = runtime.get_face(), runtime.step
    message = _shorten(message)
    if runtime.partial_outputs:
        face.set_outputs(step, runtime.partial_outputs)
    face.error(message)
    if step != "mlsteps":  # a step ran: its summary page says how it ended
        # A step's own report (gate's table) comes first, then how it ended.
        face.summary(
            step,
            (summary.rstrip("\n") + "\n\n" if summary else "")
            + f"### mlsteps {step} failed (exit {code})\n\n```text\n{message}\n```\n",
        )
    if runtime.verbose and sys.exc_info()[0] is not None:
        import traceback

        # Through the face: an exception's message can hold what the work printed (train's
        # last log lines), secrets included, and only the face knows what to mask.
        face.write(traceback.format_exc().rstrip("\n"), face.err)
    face.result(step, exit_code=code, outputs=runtime.partial_outputs, error=message)
    sys.exit(code)


def _report(runtime: Runtime, step: str, code: int, message: str) -> None:
    if runtime.json_mode:
        runtime.get_face().result(step, exit_code=code, outputs={}, error=message)


def _write_traceback(face: Face) -> str:
    """The traceback in a private log file, masked like every line shown (it may be attached
    to a public bug report)."""
    import tempfile
    import time
    import traceback

    handle, path = tempfile.mkstemp(
        prefix=f"mlsteps-{time.strftime('%Y%m%d-%H%M%S')}-", suffix=".log"
    )
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(face.scrub(traceback.format_exc()))
    return path
