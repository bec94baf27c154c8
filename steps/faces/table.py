"""What each face of a step offers, read from the step's option table (``SECTION``, the shared
sections its command takes, ``OUTPUTS``) plus the few names a face has of its own.

One naming rule maps an option onto every face: option ``shm-size`` of section ``train`` is the
flag ``--shm-size``, the variable ``MLSTEPS_TRAIN_SHM_SIZE``, the action input ``shm-size`` and
the Jenkins key ``shmSize``. A credential has no flag; in Jenkins its key names the credential
that holds it (``tokenCredentialsId``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import click

from steps import registry
from steps.core.options import MLFLOW, MODEL, Option, Output

ACTION = "action"
JENKINS = "jenkins"
FACES = (ACTION, JENKINS)


def steps() -> list[str]:
    """The steps with faces: every step of the registry, in its order (rollback is a second
    command of promote's faces)."""
    return list(registry.STEPS)


def jenkins_var(step: str) -> str:
    """The step's Jenkins var, named by ``JENKINS_VAR`` in its package's ``__init__``."""
    package = importlib.import_module(registry.STEPS[step])
    name = getattr(package, "JENKINS_VAR", None)
    if not isinstance(name, str) or not name:
        raise LookupError(
            f"{package.__name__}: name the step's Jenkins var in its __init__, "
            f'e.g. JENKINS_VAR = "ml{step.capitalize()}"'
        )
    return name


def jenkins_vars() -> dict[str, str]:
    """step → its Jenkins var, for every step."""
    return {step: jenkins_var(step) for step in steps()}


@dataclass(frozen=True)
class Entry:
    """One name a step's faces offer: an option, or a face's own (``config``, ``mlsteps``)."""

    name: str  # kebab-case: the option, the action input
    help: str
    faces: tuple[str, ...]
    jenkins_key: str
    env: str | None  # the variable the action sets from the input
    option: Option | None = None  # None: not an option of a section
    action_default: str = ""
    jenkins_default: str = "null"
    # A face's own words where it differs (face → text), used instead of help.
    face_help: tuple[tuple[str, str], ...] = ()
    # The form of its Jenkins value (a Cli.groovy form) where its kind does not give it.
    jenkins_form: str | None = None

    def text(self, face: str) -> str:
        return dict(self.face_help).get(face, self.help)


CONFIG = Entry(
    name="config",
    help="Path of an mlsteps.yaml. Default: ./mlsteps.yaml when present.",
    faces=FACES,
    jenkins_key="config",
    env="MLSTEPS_CONFIG",
)
MLSTEPS = Entry(
    name="mlsteps",
    help="The mlsteps executable: a path, or a List of words, e.g. ['python3', '-m', 'steps'].",
    faces=(JENKINS,),
    jenkins_key="mlsteps",
    env=None,
    jenkins_default="'mlsteps'",
    jenkins_form="WORDS",
)
# Names a face has of its own, per step, in the order the faces list them (after the options);
# a step not named here has `config` (and Jenkins' `mlsteps`).
EXTRAS: dict[str, tuple[Entry, ...]] = {
    "secrets": (
        CONFIG,
        Entry(
            name="revoke",
            help="`true`: run `mlsteps secrets revoke` instead of fetch: revoke the leases and "
            "the login token earlier fetches of this job left, and remove their files. Use it in "
            "a last step with `if: always()`.",
            faces=(ACTION,),
            jenkins_key="revoke",
            env="MLSTEPS_ACTION_REVOKE",
            action_default="false",
        ),
        MLSTEPS,
    ),
    "promote": (
        Entry(
            name="rollback",
            help="`true` runs `mlsteps rollback` instead: the alias goes back to the version "
            "under --previous-alias (leave --version, --require-gate, --gate-report-digest, "
            "--require-approval, --approval-environment and --approved-by unset). "
            "Default: `false`.",
            faces=FACES,
            jenkins_key="rollback",
            env="MLSTEPS_ROLLBACK",
            action_default="false",
            jenkins_default="false",
            jenkins_form="BOOLEAN",
        ),
        Entry(
            name="approvers",
            help="Who may answer the `input` step: user or group names, comma-separated. "
            "Default: anyone who may build the job.",
            faces=(JENKINS,),
            jenkins_key="approvers",
            env=None,
        ),
        CONFIG,
        MLSTEPS,
    ),
}
# Outputs of a face's own command (the secrets action's revoke).
EXTRA_OUTPUTS: dict[str, tuple[Output, ...]] = {
    "secrets": (Output("revoked", "With `revoke`, how many leases and tokens were revoked."),),
}


def _command_params(step: str) -> set[str]:
    command = registry.command(step)
    commands = command.commands.values() if isinstance(command, click.Group) else [command]
    return {p.name or "" for c in commands for p in c.params}


def _entry(section: str, option: Option) -> Entry:
    credential = option.secret and not option.cli
    key = option.jenkins_key  # the naming rule lives with the option (core/options.py)
    if credential:
        key = option.jenkins_credential or f"{key}CredentialsId"
    return Entry(
        name=option.name,
        help=option.help,
        faces=option.faces,
        jenkins_key=key,
        env=option.env_var(section),
        option=option,
        jenkins_default="[]" if option.kind == "list" else "null",
        face_help=tuple((option.face_help or {}).items()),
        jenkins_form=option.jenkins_form,
    )


def entries(step: str) -> list[Entry]:
    """Every name the step's faces offer, in the faces' order: the step's options, the shared
    options its command takes, then the faces' own."""
    section = registry.options(step).SECTION
    takes = _command_params(step)
    found = [_entry(section.name, o) for o in section.options]
    for shared in (MLFLOW, MODEL):
        found += [
            _entry(shared.name, o) for o in shared.options if o.name.replace("-", "_") in takes
        ]
    return found + list(EXTRAS.get(step, (CONFIG, MLSTEPS)))


def outputs(step: str) -> list[Output]:
    return [*registry.options(step).OUTPUTS, *EXTRA_OUTPUTS.get(step, ())]


def in_face(step: str, face: str) -> list[Entry]:
    return [e for e in entries(step) if face in e.faces]
