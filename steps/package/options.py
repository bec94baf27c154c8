"""package's options: the section every face maps, the resolved config and the checks across
options. steps/package/plan.py builds the plan from a PackageConfig.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from steps.core.config_file import resolve
from steps.core.errors import ConfigError
from steps.core.options import MLFLOW, MODEL, Option, Output, Section
from steps.core.runtime import Runtime
from steps.core.secret import Secret
from steps.core.text import redact_url
from steps.core.values import parse_duration, parse_pem_file, parse_platform
from steps.package import HELP
from steps.services.images.build import parse_image_reference
from steps.services.images.system_libraries import DEBIAN_PACKAGE


def parse_build_arg(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", text, flags=re.DOTALL):
        raise ValueError("KEY=VALUE")
    return text


def parse_system_package(text: str) -> str:
    if not DEBIAN_PACKAGE.fullmatch(text):
        raise ValueError(
            "a Debian package name such as libgomp1 (lower-case letters, digits and + - ., "
            "optionally =VERSION)"
        )
    return text


def parse_registry(text: str) -> str:
    """host[:port][/namespace], without a scheme (what `docker push` takes before the name)."""
    text = text.strip().rstrip("/")
    if "://" in text or not re.fullmatch(r"[A-Za-z0-9.-]+(:\d+)?(/[a-z0-9._/-]+)?", text):
        raise ValueError("a registry host such as registry.example:5000 or ghcr.io/my-org")
    return text


def parse_repository(text: str) -> str:
    if not re.fullmatch(r"[a-z0-9]+([._/-][a-z0-9]+)*", text):
        raise ValueError(
            "an image repository name: lower-case letters, digits and . _ - / between them"
        )
    return text


def parse_tag(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", text):
        raise ValueError("a Docker tag: letters, digits, _ . -, at most 128, not starting . or -")
    return text


SECTION = Section(
    "package",
    HELP,
    (
        Option(
            name="model-uri",
            help="The MLflow model: `runs:/RUN_ID/PATH`, `models:/NAME/VERSION`, "
            "`models:/NAME@ALIAS`, `models:/MODEL_ID` (train's `model-uri` output), "
            "an `s3://` URI or a local directory.",
        ),
        Option(
            name="registry",
            parse=parse_registry,
            metavar="HOST[:PORT][/NAMESPACE]",
            help="Registry to push to, `HOST[:PORT][/NAMESPACE]` without a scheme, e.g. "
            "`ghcr.io/my-org` or `123456789012.dkr.ecr.eu-west-1.amazonaws.com`. "
            "Unset: the image is built and smoke-tested here, not pushed.",
        ),
        Option(
            name="repository",
            parse=parse_repository,
            help="Image repository name (without registry or tag). Default: the "
            "registered model name (--name), lower-cased, else `mlsteps-model`.",
        ),
        Option(
            name="tag",
            parse=parse_tag,
            help="Image tag. Default: `vVERSION` for a registered model version, else "
            "`model-` and the first 12 digits of the model's uuid in MLmodel (the "
            "same model, the same tag).",
        ),
        Option(
            name="base-image",
            parse=parse_image_reference,
            help="Base image of the build. Default: `python:X.Y-slim` for the model's "
            "Python version; with --gpu `true`, a CUDA runtime image.",
        ),
        Option(
            name="gpu",
            kind="bool",
            default=False,
            metavar="true|false",
            help="`true` builds on a CUDA runtime base image (when --base-image is not given).",
        ),
        Option(
            name="platform",
            parse=parse_platform,
            help="Target platform of the build, e.g. `linux/amd64`.",
        ),
        Option(
            name="build-arg",
            jenkins_map=True,
            kind="list",
            parse=parse_build_arg,
            metavar="KEY=VALUE",
            help="Build argument, `KEY=VALUE`. Recorded in the image's history, so never a secret.",
        ),
        Option(
            name="system-package",
            kind="list",
            parse=parse_system_package,
            metavar="NAME",
            help="Debian/Ubuntu package to install in the image (repeatable), e.g. "
            "`fonts-dejavu-core`. "
            "The packages of the shared libraries the model's Python packages need and the base "
            "lacks are found and installed without it; this adds what they load at run time "
            "(a font, a tool). The base image needs apt-get.",
        ),
        Option(
            name="pip-index-url",
            metavar="URL",
            help="Package index uv (or pip) installs the model's requirements from (a mirror or "
            "proxy). Without credentials in it: build settings are recorded in the image "
            "(/opt/mlsteps/install-settings.json). `HTTP(S)_PROXY` and `NO_PROXY` from the "
            "environment reach the build as `docker build` passes them (not recorded).",
        ),
        Option(
            name="pip-extra-index-url",
            kind="list",
            metavar="URL",
            help="Extra package index URL for the requirements, without credentials. Each "
            "requirement gets its best version from all the indexes, as with pip.",
        ),
        Option(
            name="ca-bundle",
            kind="path",
            parse=parse_pem_file,
            parse_takes_base=True,
            metavar="PATH",
            help="CA bundle (PEM file) uv and pip trust during the build, for a proxy that "
            "re-signs TLS.",
        ),
        Option(
            name="no-cache",
            kind="bool",
            default=False,
            metavar="true|false",
            help="`true` rebuilds the dependencies image even when one for the same "
            "requirements exists (e.g. to pick up a new base image under the same "
            "tag).",
        ),
        Option(
            name="push",
            kind="bool",
            metavar="true|false",
            help="Push the image to --registry. Default: `true` when --registry is set.",
        ),
        Option(
            name="load",
            kind="bool",
            default=True,
            metavar="true|false",
            help="Keep the built image in the local Docker Engine. `false` removes it "
            "after the push (a CI machine that only ships images stays clean).",
        ),
        Option(
            name="smoke-test",
            kind="bool",
            default=True,
            metavar="true|false",
            help="Smoke-test the image before pushing: serve it and check its answer to "
            "the model's input example against the model's own prediction.",
        ),
        Option(
            name="smoke-timeout",
            parse=parse_duration,
            default=120.0,
            default_text="2m",
            metavar="DURATION",
            help="How long the smoke test waits for the server to answer /ping, e.g. `2m`.",
        ),
        Option(
            name="register",
            kind="bool",
            default=True,
            metavar="true|false",
            help="Register the model version (for `runs:/` and `models:/MODEL_ID` models;"
            " needs --name) and tag it with the image and its lineage.",
        ),
        Option(
            name="registry-username",
            help="User name for --registry, its password in "
            "`MLSTEPS_PACKAGE_REGISTRY_PASSWORD`. Unset: the Docker config's login "
            "(`docker login`), or for ECR a token from the AWS credentials.",
        ),
        Option(
            name="registry-password",
            secret=True,
            cli=False,
            # On GitHub it comes from the step's env: (an input's empty default would shadow
            # it); Jenkins binds it from a Username with password credential.
            faces=("jenkins",),
            jenkins_credential="registryCredentialsId",
            face_help={
                "jenkins": "Username with password credential for the registry: its user name "
                "and password, bound for the mlsteps process only."
            },
            help="Password or token for --registry-username. From the environment only "
            "(e.g. set by the secrets step), never a flag or the file.",
        ),
    ),
)

OUTPUTS = (
    Output("image", "The image built, `[REGISTRY/]NAME:TAG`."),
    Output("digest", "Registry digest of the pushed image, `sha256:…` (empty when not pushed)."),
    Output(
        "image-ref",
        "The pushed image by digest, `REGISTRY/NAME@sha256:…`, for deploying exactly what was "
        "tested (empty when not pushed).",
    ),
    Output(
        "model-version",
        "The MLflow model version registered or tagged with the image (empty when none was).",
    ),
    Output("cache-hit", "`true` when the dependencies image was reused instead of built."),
)


@dataclass(frozen=True, kw_only=True)
class PackageConfig:
    model_uri: str
    registry: str | None
    repository: str | None
    tag: str | None
    base_image: str | None
    gpu: bool
    platform: str | None
    build_args: tuple[str, ...]
    system_packages: tuple[str, ...]
    pip_index_url: str | None
    pip_extra_index_urls: tuple[str, ...]
    ca_bundle: str | None
    no_cache: bool
    push: bool
    load: bool
    smoke_test: bool
    smoke_timeout: float
    register: bool
    registry_username: str | None
    registry_password: Secret | None
    model_name: str | None
    tracking_uri: str | None

    def __repr__(self) -> str:  # the password is a Secret already; keep the repr short too
        return f"PackageConfig(model_uri={self.model_uri!r}, registry={self.registry!r})"


def load_config(runtime: Runtime, flags: Mapping[str, Any]) -> PackageConfig:
    cfg = runtime.config_file()
    resolved = resolve(SECTION, flags, cfg, runtime.environ)
    values = {k: v.value for k, v in resolved.items()}
    tracking = {k: v.value for k, v in resolve(MLFLOW, flags, cfg, runtime.environ).items()}
    model = {k: v.value for k, v in resolve(MODEL, flags, cfg, runtime.environ).items()}
    password = values["registry-password"]
    push = values["push"]
    config = PackageConfig(
        model_uri=values["model-uri"] or "",
        registry=values["registry"],
        repository=values["repository"],
        tag=values["tag"],
        base_image=values["base-image"],
        gpu=values["gpu"],
        platform=values["platform"],
        build_args=tuple(values["build-arg"] or ()),
        # Sorted: the order they are given in changes neither the image nor its cache key.
        system_packages=tuple(sorted(set(values["system-package"] or ()))),
        pip_index_url=values["pip-index-url"],
        pip_extra_index_urls=tuple(values["pip-extra-index-url"] or ()),
        ca_bundle=values["ca-bundle"],
        no_cache=values["no-cache"],
        push=bool(values["registry"]) if push is None else push,
        load=values["load"],
        smoke_test=values["smoke-test"],
        smoke_timeout=values["smoke-timeout"],
        register=values["register"],
        registry_username=values["registry-username"],
        registry_password=Secret(password) if password else None,
        model_name=model["name"],
        tracking_uri=tracking["tracking-uri"],
    )
    _check(config)
    if config.register and not config.push and resolved["register"].source != "default":
        # Asked for in so many words; the default only registers what it pushes.
        raise ConfigError(
            f"--register true ({resolved['register'].source}) tags the model version with the "
            "pushed image's digest, but nothing is pushed: give --registry to push to, or drop "
            "--register to build and test the image here only."
        )
    return config


def _check(config: PackageConfig) -> None:
    """Cross-option checks: each names the option and the fix."""
    if not config.model_uri:
        raise ConfigError(
            "package needs a model: give --model-uri (env MLSTEPS_PACKAGE_MODEL_URI, or "
            "package.model-uri in mlsteps.yaml), e.g. models:/my-model@champion, runs:/RUN_ID/"
            "model, or the model-uri output of the train step."
        )
    if config.push and not config.registry:
        raise ConfigError(
            "--push true needs --registry HOST[:PORT][/NAMESPACE] to push to. Give one, or "
            "leave --push unset to build and test without pushing."
        )
    if not config.load and not config.push:
        raise ConfigError(
            "--load false removes the image after the push, but nothing is pushed: the image "
            "would be lost. Give --registry, or drop --load false."
        )
    for option, url in (
        ("--pip-index-url", config.pip_index_url),
        *(("--pip-extra-index-url", u) for u in config.pip_extra_index_urls),
    ):
        if not url:
            continue
        # An @ may end a credential that redact_url cannot tell apart in a malformed URL.
        shown = repr(url) if "@" not in url else "(not shown: it holds an @)"
        if not re.match(r"https?://", url):
            raise ConfigError(f"{option} {shown}: not an http(s) URL. Give the index's full URL.")
        if redact_url(url) != url:
            raise ConfigError(
                f"{option} {redact_url(url)}: holds credentials, and build settings are "
                "recorded in the image's history where anyone who pulls it reads them. Use an "
                "index (or proxy) this build reaches without credentials, or a base image "
                "with the dependencies already in it (--base-image)."
            )
        # pip's arguments are a shell line in the Dockerfile: quoted there, and refused here
        # when they hold what no index URL needs (space, newline, quote, $, `, ;, &, |, …).
        if bad := sorted(set(re.sub(r"[A-Za-z0-9._~:/?#\[\]@%+=,-]", "", url))):
            raise ConfigError(
                f"{option} {shown}: holds {' '.join(repr(c) for c in bad)}, which no index URL "
                "needs (spaces, newlines, quotes and shell characters such as $ ` ; & | are "
                "refused). Give the index's URL alone, percent-encoding any such character."
            )
    if config.registry_password is not None and not config.registry_username:
        raise ConfigError(
            "MLSTEPS_PACKAGE_REGISTRY_PASSWORD is set but no user name: give "
            "--registry-username (env MLSTEPS_PACKAGE_REGISTRY_USERNAME) as well."
        )
    if config.registry_username and config.registry_password is None:
        raise ConfigError(
            f"--registry-username {config.registry_username} needs its password in the "
            "environment variable MLSTEPS_PACKAGE_REGISTRY_PASSWORD (the secrets step can set it)."
        )
