"""The ``mlsteps`` root command: global options, lazy step loading, and the one error handler.

Nothing heavy is imported here: ``mlsteps --help`` and every ``--dry-run`` stay fast.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from steps import __version__, registry
from steps.ci import KINDS, Face
from steps.core import signals
from steps.core.errors import MlstepsError
from steps.core.runtime import Runtime


class LazyGroup(click.Group):
    """The commands come from the registry: a step's package is loaded when the command list,
    its help or its run asks for it; its run's libraries load only when it runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(registry.commands())

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in registry.commands():
            return None
        return registry.command(name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # One line per command, the one its package gives (not click's cut of its help).
        rows = [(name, registry.help_line(name)) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


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
