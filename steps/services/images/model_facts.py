"""What a model's own files say: the MLmodel facts and requirements the image build needs,
checked before any of it reaches a Dockerfile, a shell line or pip. The files are written by
whoever logged the model, with less trust than the pipeline that packages it: a value of the
wrong form refuses the model (exit 2), naming the file and the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from steps.core.errors import ConfigError
from steps.core.text import redact_url
from steps.core.values import YamlRefused, load_yaml
from steps.services.mlflow.model_source import Artifacts, ModelRef


@dataclass(frozen=True)
class ModelFacts:
    """What the build needs from MLmodel and the environment files."""

    python_version: str  # e.g. 3.11.7; "" when the model does not say
    requirements: tuple[str, ...]
    requirements_source: str  # which file they came from
    mlflow_version: str
    flavors: tuple[str, ...]
    loader_module: str  # python_function's loader, e.g. mlflow.sklearn
    serving_example: str | None  # relative path of serving_input_example.json
    input_example: str | None
    created: str  # MLmodel utc_time_created
    model_uuid: str  # MLmodel model_uuid: one per saved model

    @property
    def python_minor(self) -> str:
        return ".".join(self.python_version.split(".")[:2])


def read_facts(ref: ModelRef, artifacts: Artifacts) -> ModelFacts:
    """The facts of the model's files; a file that cannot be parsed is bad input (exit 2)."""
    try:
        return _read_facts(ref, artifacts)
    except (YamlRefused, UnicodeDecodeError, AttributeError, TypeError, PermissionError) as exc:
        raise ConfigError(
            f"--model-uri {ref.uri}: its MLmodel or environment files cannot be read "
            f"({type(exc).__name__}: {str(exc)[:200]}). Save the model again with MLflow."
        ) from None


def _read_facts(ref: ModelRef, artifacts: Artifacts) -> ModelFacts:
    mlmodel_text = artifacts.read(ref.artifact_uri, "MLmodel")
    if mlmodel_text is None:
        raise ConfigError(
            f"--model-uri {ref.uri}: no MLmodel file at {redact_url(ref.artifact_uri)}. Is it an "
            "MLflow model (saved with mlflow.<flavor>.log_model or save_model)?"
        )
    mlmodel = load_yaml(mlmodel_text) or {}
    flavors = mlmodel.get("flavors") or {}
    pyfunc = flavors.get("python_function")
    if not pyfunc:
        raise ConfigError(
            f"--model-uri {ref.uri}: the model has no python_function flavor (flavors: "
            f"{', '.join(flavors) or 'none'}), so it cannot be served. Log it with a flavor "
            "that provides one."
        )
    env = pyfunc.get("env") or {}
    env_files = env if isinstance(env, dict) else {"conda": env}
    check = _Check(ref.uri)
    python_version = str(pyfunc.get("python_version") or "")
    check.field("MLmodel", "flavors.python_function.python_version", python_version,
                PYTHON_VERSION, "a Python version")  # fmt: skip
    requirements: list[str] | None = None
    source = ""
    text = artifacts.read(ref.artifact_uri, "requirements.txt")
    if text is not None:
        requirements, source = _requirement_lines(text.decode()), "requirements.txt"
    if (name := env_files.get("virtualenv")) and (text := artifacts.read(ref.artifact_uri, name)):
        python_env = load_yaml(text) or {}
        if python_env.get("python"):
            python_version = str(python_env["python"])
            check.field(name, "python", python_version, PYTHON_VERSION, "a Python version")
        if requirements is None:
            deps = [d for d in python_env.get("dependencies") or [] if not d.startswith("-r")]
            requirements, source = deps, name
    if requirements is None and (name := env_files.get("conda")):
        conda = load_yaml(artifacts.read(ref.artifact_uri, name) or b"") or {}
        for dep in conda.get("dependencies") or []:
            if isinstance(dep, dict) and "pip" in dep:
                requirements, source = [str(d) for d in dep["pip"]], name
            elif isinstance(dep, str) and dep.startswith("python=") and not python_version:
                python_version = dep.split("=", 1)[1]
                check.field(name, "python=", python_version, PYTHON_VERSION, "a Python version")
    example_info = mlmodel.get("saved_input_example_info") or {}
    loader_module = str(pyfunc.get("loader_module") or "")
    serving_example = example_info.get("serving_input_path")
    check.field(
        "MLmodel", "flavors.python_function.loader_module", loader_module, MODULE_NAME,
        "a dotted Python module name",
    )  # fmt: skip
    # Read from the model's directory on this machine and posted to the image: a path out of
    # the directory would hand a file of this machine to the model's code.
    check.field(
        "MLmodel", "saved_input_example_info.serving_input_path", str(serving_example or ""),
        RELATIVE_PATH, "a path inside the model's directory",
    )  # fmt: skip
    # Pinned as mlflow-skinny==VERSION in requirements.txt when the requirements do not name
    # mlflow: a newline in it would add a line of its own (a pip option, an index).
    mlflow_version = str(mlmodel.get("mlflow_version") or "")
    check.field("MLmodel", "mlflow_version", mlflow_version, PACKAGE_VERSION, "a version")
    # The default image tag is made of it (model-HEX): the engine would refuse other characters.
    model_uuid = str(mlmodel.get("model_uuid") or "")
    check.field("MLmodel", "model_uuid", model_uuid, MODEL_UUID, "a model uuid (hex digits)")
    for line in requirements or ():
        check.requirement(source, line)
    return ModelFacts(
        python_version=python_version,
        requirements=tuple(requirements or ()),
        requirements_source=source or "(none: MLflow only)",
        mlflow_version=mlflow_version,
        flavors=tuple(flavors),
        loader_module=loader_module,
        serving_example=serving_example,
        input_example=example_info.get("artifact_path"),
        created=str(mlmodel.get("utc_time_created") or ""),
        model_uuid=model_uuid,
    )


PYTHON_VERSION = re.compile(r"\d+\.\d+(\.\d+)?")
PACKAGE_VERSION = re.compile(r"[0-9][0-9A-Za-z.!+_-]{0,63}")  # PEP 440's characters, no spaces
MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
MODEL_UUID = re.compile(r"(m-)?[0-9a-fA-F-]{1,64}")
RELATIVE_PATH = re.compile(r"(?!/)(?!.*(^|/)\.\.(/|$))[^\x00-\x1f\\]+")


class _Check:
    def __init__(self, uri: str) -> None:
        self.uri = uri

    def refuse(self, what: str) -> ConfigError:
        return ConfigError(
            f"--model-uri {self.uri}: refused, {what}. The model's files are written by whoever "
            "logged the model and are checked before anything is built: save the model again "
            "with MLflow, or correct the file."
        )

    def field(self, where: str, name: str, value: str, form: re.Pattern[str], what: str) -> None:
        if value and not form.fullmatch(value):
            raise self.refuse(f"its {where} gives {name}: {value[:200]!r}, which is not {what}")

    def requirement(self, where: str, line: str) -> None:
        """A requirement specifier only: no pip option (an index, a file, an editable) and no
        control character (a newline would make two lines of requirements.txt)."""
        if any(ord(c) < 32 or ord(c) == 127 for c in line):
            raise self.refuse(
                f"its {where} has the requirement {line[:200]!r}, which holds a control character"
            )
        # An option after a specifier (`numpy --index-url URL`): pip ignores it and uv
        # refuses it, but neither is left to decide; --hash pins are requirement data.
        options = [w for w in line.split()[1:] if w.startswith("-") and not w.startswith("--hash")]
        if line.startswith("-") or options:
            raise self.refuse(
                f"its {where} has the line {line[:200]!r}, a pip option (package installs "
                "requirement specifiers only; an index is given with --pip-index-url or "
                "--pip-extra-index-url)"
            )


def _requirement_lines(text: str) -> list[str]:
    lines = (line.split(" #", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]
