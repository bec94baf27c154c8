"""What ``mlsteps package`` will do, as a ``Plan`` (``--dry-run`` prints it, with the
Dockerfiles and tags), and the image layout it is made of. Light: it imports no heavy library
and never the run (steps/package/run.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from steps import __version__
from steps.core.errors import ConfigError
from steps.core.plan import Plan
from steps.core.text import redact_url
from steps.package.options import PackageConfig
from steps.services.images.build import (
    INSTALLER,
    DepsBuild,
    default_base_image,
    model_dockerfile,
    serving_requirements,
)
from steps.services.images.model_facts import ModelFacts
from steps.services.mlflow.model_source import COMMIT_TAG, DATA_DIGEST_TAG, ModelRef

DEPS_CACHE_REPOSITORY = "mlsteps-deps"


@dataclass(frozen=True)
class Layout:
    """The names and texts of what gets built, derived from the config and the model."""

    repository: str  # [registry/]image
    tag: str
    deps: DepsBuild
    cache_key: str
    labels: Mapping[str, str]

    @property
    def image(self) -> str:
        return f"{self.repository}:{self.tag}"

    @property
    def deps_tag(self) -> str:
        return f"deps-{self.cache_key}"

    @property
    def deps_image(self) -> str:
        return f"{self.repository}:{self.deps_tag}"

    @property
    def deps_cache(self) -> str:
        """The engine-wide name of the dependencies image: any repository's build finds it."""
        return f"{DEPS_CACHE_REPOSITORY}:{self.cache_key}"


def _repository_name(config: PackageConfig, ref: ModelRef) -> str:
    if config.repository:
        return config.repository
    name = ref.name or config.model_name or ""
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("._-")
    return cleaned or "mlsteps-model"


def _default_tag(ref: ModelRef, facts: ModelFacts) -> str:
    if ref.version:
        return f"v{ref.version}"
    if facts.model_uuid:
        # MLflow 3 uses the logged model's id (m-…) as the uuid: its hex digits name it.
        return f"model-{facts.model_uuid.removeprefix('m-').replace('-', '')[:12]}"
    return "latest"


def image_labels(
    config: PackageConfig, ref: ModelRef, facts: ModelFacts, base: str, tag: str,
    environ: Mapping[str, str],
) -> dict[str, str]:  # fmt: skip
    from steps.services.lineage import git_commit

    labels = {
        "org.opencontainers.image.title": _repository_name(config, ref),
        "org.opencontainers.image.description": f"MLflow model {ref.uri} served by mlsteps",
        "org.opencontainers.image.version": tag,
        "org.opencontainers.image.base.name": base,
        "io.mlsteps.model.uri": ref.uri,
        "io.mlsteps.model.flavors": ",".join(facts.flavors),
        "io.mlsteps.version": __version__,
    }
    # The model's own time, not the build's: the same model gives the same image.
    if facts.created:
        labels["org.opencontainers.image.created"] = facts.created.replace(" ", "T") + "Z"
    if server := environ.get("GITHUB_SERVER_URL"):
        if repo := environ.get("GITHUB_REPOSITORY"):
            labels["org.opencontainers.image.source"] = f"{server}/{repo}"
    elif url := environ.get("GIT_URL"):
        labels["org.opencontainers.image.source"] = redact_url(url)
    # revision: the commit this image was built from (the pipeline's checkout); the model's
    # own training commit, from its run, is a label of its own.
    if commit := git_commit(environ):
        labels["org.opencontainers.image.revision"] = commit
    if model_commit := ref.run_tags.get(COMMIT_TAG):
        labels["io.mlsteps.model.commit"] = model_commit
    if data := ref.run_tags.get(DATA_DIGEST_TAG):
        labels["io.mlsteps.data-digest"] = data
    for key, value in (
        ("io.mlsteps.model.name", ref.name or config.model_name),
        ("io.mlsteps.model.version", ref.version),
        ("io.mlsteps.model.run-id", ref.run_id),
        ("io.mlsteps.model.id", ref.model_id),
    ):
        if value:
            labels[key] = value
    return labels


def layout(
    config: PackageConfig, ref: ModelRef, facts: ModelFacts, environ: Mapping[str, str]
) -> Layout:
    base = config.base_image or default_base_image(facts, config.gpu)
    deps = DepsBuild(
        base_image=base,
        requirements=tuple(serving_requirements(facts)),
        pip_index_url=config.pip_index_url,
        pip_extra_index_urls=config.pip_extra_index_urls,
        ca_bundle=Path(config.ca_bundle).read_bytes() if config.ca_bundle else None,
        install_python=config.gpu and not config.base_image,
        platform=config.platform,
        build_args=config.build_args,
        warm_modules=(facts.loader_module,) if facts.loader_module else (),
        system_packages=config.system_packages,
    )
    name = _repository_name(config, ref)
    repository = f"{config.registry}/{name}" if config.registry else name
    tag = config.tag or _default_tag(ref, facts)
    labels = image_labels(config, ref, facts, base, tag, environ)
    return Layout(repository, tag, deps, deps.cache_key(), labels)


def registers(config: PackageConfig, ref: ModelRef) -> bool:
    return config.register and config.push and (ref.registrable or ref.kind == "version")


def reuses_pushed_image(config: PackageConfig, ref: ModelRef) -> bool:
    """Whether a version tagged with an image of the same content is looked for first."""
    return registers(config, ref) and not config.no_cache


def build_plan(config: PackageConfig, ref: ModelRef, facts: ModelFacts, lay: Layout) -> Plan:
    from steps.services.images.push import describe_auth

    plan = Plan("package")
    plan.add(
        "model.download",
        f"download the model files of {ref.uri} (from {redact_url(ref.artifact_uri)}) into a "
        "temporary directory",
        model_uri=ref.uri,
        artifact_uri=redact_url(ref.artifact_uri),
        model_kind=ref.kind,
        python_version=facts.python_version,
        requirements_source=facts.requirements_source,
    )
    where = f" here (as {lay.deps_cache})" + (
        f" or in {config.registry}" if config.registry and config.push else ""
    )
    reuse = (
        f"pull {lay.repository}@DIGEST if a version of the model is tagged with it for the same "
        "content (mlsteps.image.content: this cache key and the model files) and reuse it "
        "(no build: the same digest) if the image's own io.mlsteps.image.content label says "
        "so too; else "
        if reuses_pushed_image(config, ref)
        else ""
    )
    plan.add(
        "image.dependencies",
        f"{reuse}use the dependencies image {lay.deps_image} (cache key {lay.cache_key}) if it is"
        f"{where}"
        + (" (--no-cache true: rebuild it)" if config.no_cache else "")
        + f"; else build it FROM {lay.deps.base_image}: a venv with "
        f"{len(lay.deps.requirements)} requirements ({facts.requirements_source}, mlflow as "
        "mlflow-skinny, plus uvicorn, numpy and pandas where the model names none) installed "
        f"by {INSTALLER}; then the "
        "Debian packages of the shared libraries they need and the base lacks (read from their "
        "ELF NEEDED entries)"
        + (
            f" and the system packages {', '.join(lay.deps.system_packages)} (--system-package)"
            if lay.deps.system_packages
            else ""
        ),
        image=lay.deps_image,
        cache_image=lay.deps_cache,
        cache_key=lay.cache_key,
        base_image=lay.deps.base_image,
        requirements=list(lay.deps.requirements),
        system_packages=list(lay.deps.system_packages),
        installer=INSTALLER,
        dockerfile=lay.deps.dockerfile(),
        no_cache=config.no_cache,
    )
    plan.add(
        "image.build",
        f"build {lay.image} FROM the dependencies image: one layer of model files, "
        f"{len(lay.labels)} labels and one of its content (io.mlsteps.image.content)",
        image=lay.image,
        dockerfile=model_dockerfile(lay.deps_image),
        labels=dict(lay.labels),
        platform=config.platform,
    )
    if config.smoke_test:
        example = facts.serving_example or "no input example: /ping only"
        plan.add(
            "image.smoke-test",
            f"serve {lay.image} on a loopback port, wait for /ping (up to "
            f"{config.smoke_timeout:g}s), post {example} to /invocations and compare with the "
            "model's own prediction; remove the container",
            serving_example=facts.serving_example,
            timeout=config.smoke_timeout,
        )
    if config.push:
        assert config.registry
        plan.add(
            "image.push",
            f"push {lay.image} and {lay.deps_image} to {config.registry} "
            + describe_auth(config.registry, config.registry_username),
            registry=config.registry,
            tags=[lay.image, lay.deps_image],
        )
    if registers(config, ref):
        if ref.kind == "version":
            line = f"tag version {ref.version} of model '{ref.name}'"
        else:
            line = (
                f"register {ref.uri} as a version of model '{config.model_name}' (or reuse the "
                "version already tagged with this image digest) and tag it"
            )
        plan.add(
            "mlflow.register",
            line + f" image={lay.repository}@DIGEST and its lineage at "
            + redact_url(config.tracking_uri or ""),
            model_name=ref.name or config.model_name,
            version=ref.version,
            tags=["image", "mlsteps.image.digest", "mlsteps.image.tag", "mlsteps.image.labels",
                  "mlsteps.lineage.*"],
        )  # fmt: skip
    if not config.load:
        plan.add(
            "image.unload",
            f"remove {lay.image} and {lay.deps_image} from the local Docker Engine (pushed; "
            f"the cache {lay.deps_cache} stays)",
            tags=[lay.image, lay.deps_image],
        )
    return plan


def check_model(config: PackageConfig, ref: ModelRef) -> None:
    if not (config.register and config.push):
        return
    if ref.registrable and not config.model_name:
        raise ConfigError(
            f"--model-uri {ref.uri}: registering it needs the registered model's name: give "
            "--name (env MLSTEPS_MODEL_NAME, or model.name in mlsteps.yaml), or --register "
            "false to push the image without registering."
        )
    if (ref.registrable or ref.kind == "version") and not config.tracking_uri:
        raise ConfigError(
            "--register true needs the MLflow server: set --tracking-uri, or --register false."
        )


def plan_warnings(config: PackageConfig, ref: ModelRef, facts: ModelFacts) -> list[str]:
    found = []
    if config.register and not config.push and (ref.registrable or ref.kind == "version"):
        found.append(
            f"nothing is registered: without --registry the image is built and tested here "
            f"only, and the model version is tagged only with a pushed image. Give --registry "
            f"to push {ref.uri} and register it."
        )
    if config.register and config.push and ref.kind in ("path", "s3") and config.model_name:
        found.append(
            f"--model-uri {ref.uri} is a {'directory' if ref.kind == 'path' else 'S3 location'}, "
            "not a model MLflow tracks: the image is pushed but no model version is registered. "
            "Give runs:/… or models:/… to register it."
        )
    if config.gpu and not config.base_image and facts.python_minor not in ("", "3.12"):
        found.append(
            f"--gpu true: the CUDA base gets Ubuntu 24.04's Python 3.12, but the model was saved "
            f"with Python {facts.python_version}. Give --base-image with a CUDA image that has "
            f"Python {facts.python_minor} if its pinned packages need it."
        )
    return found
