"""The serving image of a model, in two builds so that a new model rebuilds only its own layer.

1. The dependencies image, ``REPO:deps-KEY``: the base image, a venv with the model's
   requirements plus the serving runtime (steps/serve/server.py on mlflow-skinny), the user
   and the entrypoint. KEY is a digest of everything that goes into it (its Dockerfile, the
   requirements, the server), so a model with the same requirements finds it already built.
2. The model image, ``REPO:TAG``: the dependencies image plus one layer of model files, and the
   labels.

``mlflow models build-docker`` does it in one Dockerfile that starts with nginx and all of
MLflow and puts the model before its requirements, so every new model reinstalls everything.

The texts (Dockerfiles, requirements, key) are pure functions: ``--dry-run`` prints them. The
builds go through the Docker SDK's low-level build API, whose JSON stream gives the progress.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steps.core.errors import ConfigError
from steps.core.text import strip_escapes
from steps.services.images.model_facts import ModelFacts

SERVER_FILE = Path(__file__).parents[2] / "serve" / "server.py"
SYSTEM_LIBRARIES_FILE = Path(__file__).with_name("system_libraries.py")
INSTALL_REQUIREMENTS_FILE = Path(__file__).with_name("install_requirements.py")
DEPS_DIR = "/opt/mlsteps"
# What fills the venv (install_requirements.py), as the plan says it.
INSTALLER = (
    "uv, fetched with the base's pip for the build step and removed in it (pip instead, with "
    "a line saying why, where the base configures pip in a way uv does not read — a pip.conf, "
    "PIP_* settings other than the index and CA — or uv cannot be had, run or install there)"
)
# The serving runtime beside the model's own requirements: MLflow's model loading and request
# parsing without its tracking server, UI and database libraries; uvicorn serves HTTP.
# mlflow-skinny leaves out numpy and pandas, which mlflow.pyfunc imports: a model whose
# requirements do not name them (one logged from code, a PythonModel without an input example)
# would not load. They are added unpinned when the model does not pin them, so pip picks the
# versions that fit the model's other pins.
RUNTIME_REQUIREMENTS = ("uvicorn>=0.20,<1", "numpy", "pandas")
# A CUDA runtime base for --gpu: NVIDIA's image, with the distribution's Python added on top
# (Ubuntu 24.04's is 3.12; a model of another Python needs --base-image with that Python).
GPU_BASE_IMAGE = "nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04"
SERVE_UID = 10001
PORT = 8080


# The image reference grammar of the OCI distribution spec (distribution/reference's regexp):
# [domain[:port]/]path[:tag][@digest]. Nothing else may follow FROM: a newline would add
# instructions, a $ would expand a build argument.
_DOMAIN_COMPONENT = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REFERENCE = re.compile(
    rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)


def parse_image_reference(text: str) -> str:
    if len(text) > 255 or not IMAGE_REFERENCE.fullmatch(text):
        raise ValueError(
            "an image reference such as python:3.11-slim, ghcr.io/org/image:tag or "
            "image@sha256:DIGEST (no spaces, newlines or $)"
        )
    return text


def default_base_image(facts: ModelFacts, gpu: bool) -> str:
    if gpu:
        return GPU_BASE_IMAGE
    if not facts.python_version:
        raise ConfigError(
            "the model's MLmodel names no Python version, so there is no default base image: "
            "give --base-image with the Python the model needs (e.g. python:3.11-slim)."
        )
    return f"python:{facts.python_minor}-slim"


def serving_requirements(facts: ModelFacts) -> list[str]:
    """The model's requirements with ``mlflow`` swapped for ``mlflow-skinny`` at the same
    version (the same pyfunc loader and scoring code, a fraction of the size)."""
    lines, has_mlflow = [], False
    for line in facts.requirements:
        match = re.match(r"mlflow(\[[^\]]*\])?(?=\s*(?:[<>=!~;@ ]|$))", line)
        if match:
            lines.append("mlflow-skinny" + (match.group(1) or "") + line[match.end() :])
            has_mlflow = True
            continue
        has_mlflow = has_mlflow or re.match(r"mlflow-skinny\b", line) is not None
        lines.append(line)
    if not has_mlflow:
        pin = f"=={facts.mlflow_version}" if facts.mlflow_version else ""
        lines.append(f"mlflow-skinny{pin}")
    return lines + [r for r in RUNTIME_REQUIREMENTS if _name(r) not in {_name(x) for x in lines}]


def _name(requirement: str) -> str:
    """A requirement's project name, normalized as pip compares them (PEP 503)."""
    name = re.split(r"[\s\[<>=!~;@]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class DepsBuild:
    """Everything that goes into the dependencies image; its digest is the cache key."""

    base_image: str
    requirements: tuple[str, ...]
    pip_index_url: str | None = None
    pip_extra_index_urls: tuple[str, ...] = ()
    ca_bundle: bytes | None = None
    install_python: bool = False  # a base without Python (the CUDA one) gets Debian's/Ubuntu's
    platform: str | None = None
    build_args: tuple[str, ...] = ()
    # Modules imported once at build time so their bytecode is in the image: the model's
    # loader (e.g. mlflow.sklearn, which imports scikit-learn).
    warm_modules: tuple[str, ...] = ()
    # Debian/Ubuntu packages asked for with --system-package, installed beside the ones the
    # installed packages' shared libraries need (system_libraries.py finds those in the build).
    system_packages: tuple[str, ...] = ()

    def dockerfile(self) -> str:
        parse_image_reference(self.base_image)  # FROM takes it as it is: checked once more
        lines = [
            "# mlsteps package: the dependencies image (the model's requirements and the server)",
            f"FROM {self.base_image}",
            *(f"ARG {arg.split('=', 1)[0]}" for arg in self.build_args),
            "USER root",
        ]
        if self.install_python:
            lines.append(
                "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
                "--no-install-recommends python3 python3-venv python3-pip "
                "&& rm -rf /var/lib/apt/lists/*"
            )
        lines += [
            "COPY requirements.txt warm-modules.json system-packages.json system_libraries.py "
            f"install_requirements.py install-settings.json {DEPS_DIR}/",
            *([f"COPY ca-bundle.pem {DEPS_DIR}/ca-bundle.pem"] if self.ca_bundle else []),
            # One RUN, one layer, and what it leaves out is most of the image's size: no
            # installer (uv is fetched into /tmp and removed in this same step, so no layer
            # holds it) and no installer cache; no pip/setuptools in the venv (nothing installs
            # at serving time); no test suites of the installed packages (scipy, pandas and
            # numpy ship 100 MB of them); bytecode only for the modules serving imports
            # (compiled by importing them), not for every module installed (which doubles the
            # pure-Python size).
            f"RUN python3 -I {DEPS_DIR}/install_requirements.py \\\n"
            " && find /opt/venv/lib -depth -type d -name tests -path '*/site-packages/*/*' "
            "-exec rm -rf {} + \\\n"
            # The system libraries the venv's extension modules need and the base lacks, with
            # the --system-package ones, installed in this layer; before the imports below,
            # which would fail on a missing one. The names are data in a JSON file; -I -S:
            # no .pth file or environment variable of the installed packages runs in it.
            f" && /opt/venv/bin/python -I -S {DEPS_DIR}/system_libraries.py /opt/venv "
            f"{DEPS_DIR}/system-packages.json \\\n"
            # The module names (one is the model's loader_module) are data Python reads,
            # never words of this shell line.
            ' && /opt/venv/bin/python -c "import importlib, json; [importlib.import_module(m) '
            f"for m in json.load(open('{DEPS_DIR}/warm-modules.json'))]\" \\\n"
            f" && (getent passwd {SERVE_UID} >/dev/null || useradd --system --uid {SERVE_UID} "
            "--user-group --no-create-home --home-dir /tmp model)",
            f"COPY server.py {DEPS_DIR}/server.py",
            f"ENV PATH=/opt/venv/bin:$PATH PORT={PORT} MLSTEPS_MODEL_DIR=/opt/ml/model "
            "HOME=/tmp PYTHONUNBUFFERED=1",
            "WORKDIR /opt/ml",
            f"USER {SERVE_UID}:{SERVE_UID}",
            f"EXPOSE {PORT}",
            "HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 "
            f'CMD ["/opt/venv/bin/python", "{DEPS_DIR}/server.py", "healthcheck"]',
            f'ENTRYPOINT ["/opt/venv/bin/python", "{DEPS_DIR}/server.py"]',
            # SageMaker starts serving images with the argument `serve`.
            'CMD ["serve"]',
        ]
        return "\n".join(lines) + "\n"

    def install_settings(self) -> dict[str, Any]:
        """The index and CA settings, as data install_requirements.py reads (never words of a
        shell line)."""
        return {
            "index_url": self.pip_index_url,
            "extra_index_urls": list(self.pip_extra_index_urls),
            "cert": f"{DEPS_DIR}/ca-bundle.pem" if self.ca_bundle else None,
        }

    def files(self) -> dict[str, bytes]:
        files = {
            "Dockerfile": self.dockerfile().encode(),
            "requirements.txt": ("\n".join(self.requirements) + "\n").encode(),
            "warm-modules.json": json.dumps(
                ["mlflow.pyfunc.scoring_server", "uvicorn", *self.warm_modules]
            ).encode(),
            "server.py": SERVER_FILE.read_bytes(),
            "system_libraries.py": SYSTEM_LIBRARIES_FILE.read_bytes(),
            "system-packages.json": json.dumps(list(self.system_packages)).encode(),
            "install_requirements.py": INSTALL_REQUIREMENTS_FILE.read_bytes(),
            "install-settings.json": json.dumps(self.install_settings()).encode(),
        }
        if self.ca_bundle:
            files["ca-bundle.pem"] = self.ca_bundle
        return files

    def cache_key(self) -> str:
        digest = hashlib.sha256()
        for name, body in sorted(self.files().items()):
            digest.update(f"{name}\0{hashlib.sha256(body).hexdigest()}\0".encode())
        digest.update(json.dumps([self.platform, sorted(self.build_args)]).encode())
        return digest.hexdigest()[:20]


def model_dockerfile(deps_image: str) -> str:
    return (
        "# mlsteps package: the model image (the model files on the dependencies image)\n"
        f"FROM {deps_image}\n"
        "COPY model/ /opt/ml/model/\n"
    )


def model_files_digest(model_dir: Path) -> str:
    from steps.services.lineage import data_digest

    return data_digest(str(model_dir))


# ----- building ------------------------------------------------------------------------------


def context_tar(files: Mapping[str, bytes], trees: Mapping[str, Path] = {}) -> io.BytesIO:
    """A build context with fixed owners, modes and times, so the same files give the same
    layer (and the classic builder's cache hits on content)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:

        def add(name: str, body: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(body), 0o644, 0
            tar.addfile(info, io.BytesIO(body))

        for name, body in files.items():
            add(name, body)
        for prefix, root in trees.items():
            for path in sorted(root.rglob("*")):
                name = f"{prefix}/{path.relative_to(root).as_posix()}"
                if path.is_symlink():
                    continue
                if path.is_dir():
                    info = tarfile.TarInfo(name)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                    tar.addfile(info)
                else:
                    add(name, path.read_bytes())
    buffer.seek(0)
    return buffer


def plain(line: str) -> str:
    """A build's line as a CI log should show it: no terminal escapes, no carriage returns."""
    return strip_escapes(line).replace("\r", "")


class BuildFailed(Exception):
    def __init__(self, message: str, tail: list[str], step: str = "") -> None:
        super().__init__(message)
        self.message, self.tail, self.step = message, tail, step

    @property
    def at_from(self) -> bool:
        """Whether the base image failed (it could not be pulled), not a later step."""
        return " : FROM " in self.step


def build(
    client: Any,
    context: io.BytesIO,
    tag: str,
    *,
    say: Callable[[str], None],
    nocache: bool = False,
    labels: Mapping[str, str] | None = None,
    platform: str | None = None,
    build_args: Iterable[str] = (),
    heartbeat: float = 30.0,
) -> str:
    """Build, printing each Dockerfile step and the pip lines worth seeing; return the image
    id. A failed build raises BuildFailed with the last lines of its output."""
    from docker.errors import APIError

    kwargs: dict[str, Any] = {
        "fileobj": context,
        "custom_context": True,
        "tag": tag,
        "rm": True,
        "forcerm": True,  # intermediate containers go even when a step fails
        "pull": False,
        "nocache": nocache,
        "decode": True,
        "labels": dict(labels or {}),
        "buildargs": dict(arg.split("=", 1) for arg in build_args),
    }
    if platform:
        kwargs["platform"] = platform
    tail: list[str] = []
    step = ""  # the Dockerfile step running: a failure names it
    image_id = ""
    last_said = time.monotonic()
    try:
        for chunk in client.api.build(**kwargs):
            if "error" in chunk:
                raise BuildFailed(plain(str(chunk["error"])).strip(), tail[-25:], step)
            if aux := chunk.get("aux"):
                image_id = aux.get("ID", image_id)
            for line in str(chunk.get("stream", "")).splitlines():
                line = plain(line).rstrip()
                if not line:
                    continue
                tail = (tail + [line])[-40:]
                if line.startswith("Step "):
                    step = line
                shown = line.startswith(("Step ", "ERROR:", "Successfully installed", "mlsteps"))
                if shown and " : LABEL " not in line:  # labels: one step each, all alike
                    if line.startswith("Successfully installed"):
                        line = f"Successfully installed {len(line.split()) - 2} packages"
                    say("  " + line.strip())
                    last_said = time.monotonic()
                elif time.monotonic() - last_said > heartbeat:
                    say(f"  … {line.strip()[:100]}")
                    last_said = time.monotonic()
    except APIError as exc:
        raise BuildFailed(plain(str(exc.explanation or exc)), tail[-25:], step) from None
    if not image_id:
        image_id = client.images.get(tag).id
    return image_id
