"""The option tables: every user-facing option of a step or a shared section, described once.

Every option has one kebab-case name that maps by a fixed rule onto each face:
``shm-size`` in section ``train`` is the flag ``--shm-size``, the environment variable
``MLSTEPS_TRAIN_SHM_SIZE``, the action input ``shm-size``, the Jenkins key ``shmSize`` and
the file key ``train: {shm-size: …}``. Reading values from those faces is
steps/core/config_file.py's job.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# kind → what a value looks like in the file (for messages and the JSON Schema)
KINDS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "list": "a list of strings",
    "choice": "one of the listed values",
    "path": "a path (relative paths in the file are relative to the file)",
    # A value with its own shape (text, or a YAML list of mappings), parsed whole by parse.
    "structured": "the form the option's help describes",
}


@dataclass(frozen=True, kw_only=True)
class Option:
    """One user-facing option of a config section (a step or a shared section)."""

    name: str
    help: str
    kind: str = "str"
    default: Any = None
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    # Turns a raw string into the typed value; raises ValueError naming the expected form.
    # ("structured" options get the raw YAML value: a string or a list.)
    parse: Callable[[Any], Any] | None = None
    # The parse function also takes the directory relative paths in the value start from
    # (the file's for file values, the working directory otherwise), e.g. mount host paths.
    parse_takes_base: bool = False
    secret: bool = False
    # Extra environment variables read when the MLSTEPS_ one is unset (e.g. MLFLOW_TRACKING_URI).
    env_fallbacks: tuple[str, ...] = ()
    # False for values that do not come as a flag (train's command comes after --).
    cli: bool = True
    # How a list arrives in one environment variable: "lines" (one item per line) or
    # "shell" (shell words, for a command line).
    env_format: str = "lines"
    # JSON Schema of a "structured" value, for `config schema`.
    schema: Mapping[str, Any] | None = None
    # How help and docs show the default when its parsed form reads badly (120.0 for "2m").
    default_text: str | None = None
    # The values a number may take (both ends included), said in --help and the schema;
    # unset: any finite number (an int: a 32-bit one).
    limits: tuple[float, float] | None = None
    # What the CI faces need beyond help (steps/faces generates them from this table):
    # the faces that offer it ("action", "jenkins"; the CLI offers every option that has a flag),
    faces: tuple[str, ...] = ("action", "jenkins")
    # a face's own words where that face really differs, used there instead of help,
    face_help: Mapping[str, str] | None = None
    # and for a list, whether the Jenkins step also takes a Map (its items become KEY=VALUE).
    jenkins_map: bool = False
    # A credential (secret, no flag) is a Jenkins credential id: the key naming it when it is not
    # the option's key + CredentialsId (a Username with password credential holds two values).
    jenkins_credential: str | None = None
    # The form a Jenkins key's value may take (a form of src/mlsteps/jenkins/Cli.groovy: WORDS,
    # RULES_OR_FALSE, …) where it is not the one its kind gives (steps/faces/jenkins.py FORMS).
    jenkins_form: str | None = None

    @property
    def range(self) -> tuple[float, float]:
        if self.limits is not None:
            return self.limits
        return (-(2**31), 2**31 - 1) if self.kind == "int" else (-math.inf, math.inf)

    @property
    def range_text(self) -> str:
        low, high = (int(x) if float(x).is_integer() else x for x in self.range)
        if math.isinf(low):
            return "" if math.isinf(high) else f" up to {high}"
        return f" from {low} to {high}"

    @property
    def shown_default(self) -> str:
        if self.default_text is not None:
            return self.default_text
        if isinstance(self.default, bool):
            return str(self.default).lower()
        return str(self.default)

    def env_var(self, section: str) -> str:
        return f"MLSTEPS_{section}_{self.name}".upper().replace("-", "_")

    @property
    def flag(self) -> str:
        return f"--{self.name}"

    @property
    def jenkins_key(self) -> str:
        head, *rest = self.name.split("-")
        return head + "".join(word.capitalize() for word in rest)


@dataclass(frozen=True)
class Output:
    """One value a step hands back: a GitHub step output, a key of the Jenkins step's Map."""

    name: str
    help: str


@dataclass(frozen=True)
class Section:
    name: str
    help: str
    options: tuple[Option, ...]

    def option(self, name: str) -> Option:
        return next(o for o in self.options if o.name == name)


MLFLOW = Section(
    "mlflow",
    "Where runs, metrics and models are tracked.",
    (
        Option(
            name="tracking-uri",
            help="MLflow tracking server, e.g. `http://127.0.0.1:5000` (none: nothing is tracked).",
            env_fallbacks=("MLFLOW_TRACKING_URI",),
        ),
        Option(name="experiment", help="MLflow experiment name.", default="Default"),
    ),
)
MODEL = Section(
    "model",
    "The model this pipeline delivers.",
    (Option(name="name", help="Registered model name in MLflow."),),
)
