"""Applying package's plan: one handler per plan action, and the cleanup every exit path runs.

Imported only by a real run (it pulls in the Docker SDK and requests).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from steps.core.errors import StepFailed
from steps.core.plan import Action
from steps.core.runtime import Runtime
from steps.package import smoke
from steps.package.options import PackageConfig
from steps.package.plan import Layout
from steps.services import containers
from steps.services.images import build as image_build
from steps.services.images import push as image_push
from steps.services.images.model_facts import ModelFacts
from steps.services.images.system_libraries import ERROR_PREFIX
from steps.services.mlflow import model_versions
from steps.services.mlflow.model_source import Artifacts, ModelRef

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
PROXY_VARIABLES = tuple(
    name
    for base in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")
    for name in (base, base.lower())
)


class PackageRun:
    def __init__(
        self,
        config: PackageConfig,
        runtime: Runtime,
        ref: ModelRef,
        facts: ModelFacts,
        lay: Layout,
        artifacts: Artifacts,
    ) -> None:
        self.config, self.runtime, self.ref, self.facts = config, runtime, ref, facts
        self.lay, self.artifacts = lay, artifacts
        self.face = runtime.get_face()
        self.owner = containers.Owner("package")
        self.workdir: Path | None = None
        self.client: Any = None
        self.creds: image_push.Credentials | None = None
        self.cache_hit = False
        self.content = ""  # the dependencies key and the model files' digest
        self.reused = ""  # the digest of an image pushed before for the same content
        self.digest = ""
        self.version = ""
        self.smoke: smoke.SmokeResult | None = None

    def handlers(self) -> dict[str, Any]:
        return {
            "model.download": self.download,
            "image.dependencies": self.dependencies,
            "image.build": self.build,
            "image.smoke-test": self.smoke_test,
            "image.push": self.push,
            "mlflow.register": self.register,
            "image.unload": self.unload,
        }

    def docker(self) -> Any:
        if self.client is None:
            self.client = containers.connect(alternative="")
        return self.client

    def say(self, line: str) -> None:
        self.face.info(line)

    def credentials(self) -> image_push.Credentials | None:
        if self.creds is None and self.config.registry:
            self.creds = image_push.credentials(
                self.config.registry, self.config.registry_username, self.config.registry_password
            )
            if self.creds is not None:
                self.face.mask(self.creds.password.reveal())
        return self.creds

    # ----- handlers -----------------------------------------------------------------------
    def download(self, action: Action) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="mlsteps-package-"))
        target = self.workdir / "model"
        target.mkdir()
        self.say(f"downloading the model files of {self.ref.uri}")
        self.artifacts.download(self.ref.artifact_uri, target)
        files = [p for p in target.rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        self.say(f"  {len(files)} files, {size / 2**20:.1f} MiB")
        self.content = f"{self.lay.cache_key}:{image_build.model_files_digest(target)}"

    def _has_image(self, ref: str) -> bool:
        from docker.errors import ImageNotFound

        try:
            self.docker().images.get(ref)
            return True
        except ImageNotFound:
            return False

    def _reuse(self) -> bool:
        """An unchanged model (same content) registered with a pushed image: pull that image
        instead of building one that would differ only by its build time, and so by digest."""
        from steps.package.plan import reuses_pushed_image
        from steps.services.mlflow.tracking import RestTracking

        config, lay = self.config, self.lay
        if not reuses_pushed_image(config, self.ref):
            return False
        assert config.tracking_uri and config.registry
        image_ref = model_versions.pushed_before(
            RestTracking(config.tracking_uri), self.ref, config.model_name, self.content
        )
        repository, _, digest = image_ref.partition("@")
        # A tag anyone with the MLflow credentials may write: only a digest of this repository
        # is pulled, and nothing else of it is printed (a newline would start a CI command).
        if repository != lay.repository or not DIGEST.fullmatch(digest):
            return False
        self.say(f"a version of the model names {image_ref} for the same content")
        if not image_push.try_pull(
            self.docker(), repository, digest, config.registry, self.credentials(),
            lambda text, final: self.face.progress("pull", "  " + text, final=final),
        ):  # fmt: skip
            self.say("  it is no longer in the registry: building it again")
            return False
        # The tag may name any image of the repository (another model's, which could pass the
        # smoke test alike): only the image's own label, under its digest, says what it holds.
        label = (self.docker().images.get(image_ref).labels or {}).get(
            model_versions.CONTENT_LABEL, ""
        )
        if label != self.content:
            self._untag(image_ref)
            self.say(
                f"  {image_ref} was not built from this model's files (its "
                f"{model_versions.CONTENT_LABEL} label: {label[:120]!r}): not reused, building"
            )
            return False
        self.say(f"  reusing it (its {model_versions.CONTENT_LABEL} label matches)")
        self._tag(image_ref, lay.image)
        self.reused = digest
        self.cache_hit = True
        return True

    def dependencies(self, action: Action) -> None:
        lay, config = self.lay, self.config
        if self._reuse():
            self.say("dependencies image: not needed (the model image is reused)")
            return
        if not config.no_cache:
            if self._has_image(lay.deps_cache):
                self.cache_hit = True
                self.say(f"dependencies image: cached here ({lay.deps_cache})")
                self._tag(lay.deps_cache, lay.deps_image)
                return
            if config.registry and config.push:
                self.say(f"looking for {lay.deps_image} in {config.registry}")
                if image_push.try_pull(
                    self.docker(), lay.repository, lay.deps_tag, config.registry,
                    self.credentials(),
                    lambda text, final: self.face.progress("pull", "  " + text, final=final),
                ):  # fmt: skip
                    self.cache_hit = True
                    self.say(f"dependencies image: pulled {lay.deps_image}")
                    self._tag(lay.deps_image, lay.deps_cache)
                    return
        self.say(
            f"building the dependencies image {lay.deps_image} FROM {lay.deps.base_image} "
            f"({len(lay.deps.requirements)} requirements; minutes the first time)"
        )
        self._build(
            image_build.context_tar(lay.deps.files()),
            lay.deps_cache,
            nocache=config.no_cache,
            base=lay.deps.base_image,
            failure=(
                "the dependencies image did not build: the model's requirements "
                f"({self.facts.requirements_source}) could not be installed on "
                f"{lay.deps.base_image}"
            ),
        )
        self._tag(lay.deps_cache, lay.deps_image)

    def _tag(self, source: str, target: str) -> None:
        repository, _, tag = target.rpartition(":")
        self.docker().images.get(source).tag(repository, tag)

    def _build(
        self, context: Any, tag: str, *, failure: str, base: str = "", **kwargs: Any
    ) -> None:
        # A build behind a proxy: the proxy variables are build arguments Docker predefines
        # and keeps out of the image's history, as `docker build` passes them from the
        # environment. They do not change what is built, so they stay out of the cache key.
        proxies = tuple(
            f"{name}={self.runtime.environ[name]}"
            for name in PROXY_VARIABLES
            if self.runtime.environ.get(name)
        )
        try:
            image_build.build(
                self.docker(),
                context,
                tag,
                say=self.say,
                platform=self.config.platform,
                build_args=self.config.build_args + proxies,
                **kwargs,
            )
        except image_build.BuildFailed as exc:
            if base and exc.at_from:
                given = "--base-image" if self.config.base_image else "the default base image"
                raise StepFailed(
                    f"the base image {base} ({given}) could not be pulled: {exc.message}. Check "
                    "its name and tag, that its registry is reachable and this engine logged in "
                    "to it (docker login), or give --base-image with an image this engine has."
                ) from None
            said = [line for line in exc.tail if line.startswith(ERROR_PREFIX)]
            if base and said:
                # The system libraries' own words (system_libraries.py): the library, the
                # package that needs it and the option to use, not a requirement to fix.
                raise StepFailed(
                    f"the dependencies image did not build on {base}: "
                    + said[-1].removeprefix(ERROR_PREFIX)
                ) from None
            tail = "\n".join("    " + line for line in exc.tail[-15:])
            raise StepFailed(
                f"{failure}: {exc.message}\nThe end of the build output:\n{tail}\nFix the "
                "requirement named above (a version that exists for this Python and platform), "
                "or give --pip-index-url / --base-image."
            ) from None

    def build(self, action: Action) -> None:
        assert self.workdir is not None
        if self.reused:
            self.say(f"{self.lay.image}: reused, not rebuilt")
            return
        self.say(f"building {self.lay.image}")
        context = image_build.context_tar(
            {"Dockerfile": image_build.model_dockerfile(self.lay.deps_image).encode()},
            {"model": self.workdir / "model"},
        )
        self._build(
            context,
            self.lay.image,
            labels={**self.lay.labels, model_versions.CONTENT_LABEL: self.content},
            failure=f"the model image {self.lay.image} did not build",
        )

    def smoke_test(self, action: Action) -> None:
        containers.sweep_orphans(self.docker(), self.say)
        assert self.workdir is not None
        model_dir = self.workdir / "model"
        example = None
        if self.facts.serving_example:
            path = model_dir / self.facts.serving_example
            example = path.read_bytes() if path.is_file() else None
        self.say(f"smoke test of {self.lay.image}")
        # Started now: it loads the model here while the container starts.
        reference = (
            smoke.HostReference(model_dir, self.facts.requirements) if example is not None else None
        )
        try:
            self.smoke = smoke.run(
                self.docker(),
                self.lay.image,
                example,
                reference,
                self.owner.labels(),
                self.config.smoke_timeout,
                self.say,
            )
        except BaseException:
            # A rejected image keeps no tag that could be pushed by mistake later.
            self._untag(self.lay.image)
            raise
        if self.smoke.checked_predictions:
            self.say(
                f"  {self.smoke.rows} predictions equal the model's own ({self.smoke.reference})"
            )
        else:
            self.face.warning(
                "smoke test: the model has no input example, so only /ping was checked. Log "
                "the model with input_example=… to have its predictions checked."
            )

    def push(self, action: Action) -> None:
        assert self.config.registry
        creds = self.credentials()
        self.say(f"pushing {self.lay.image}")
        # A reused image goes up under this run's tag too: its layers and manifest are in the
        # registry already, so nothing is uploaded and the digest stays the same.
        self.digest = image_push.push(
            self.docker(), self.lay.repository, self.lay.tag, self.config.registry, creds,
            self.say,
        )  # fmt: skip
        if self.reused:  # its dependencies image was pushed with it the first time
            return
        image_push.push(
            self.docker(), self.lay.repository, self.lay.deps_tag, self.config.registry, creds,
            self.say,
        )  # fmt: skip

    def register(self, action: Action) -> None:
        from steps.services.mlflow.tracking import RestTracking

        assert self.config.tracking_uri
        tags = model_versions.lineage_tags(
            self.image_ref, self.digest, self.content, self.lay.image, self.lay.labels, self.ref
        )
        got = model_versions.register(
            RestTracking(self.config.tracking_uri),
            self.ref,
            self.config.model_name,
            self.digest,
            tags,
        )
        self.version = got.version
        how = "registered" if got.created else "tagged existing"
        self.say(f"{how} version {got.version} of model '{got.name}' with image={self.image_ref}")

    def unload(self, action: Action) -> None:
        for tag in (self.lay.image, self.lay.deps_image):
            self._untag(tag)
        self.say(f"removed {self.lay.image} and {self.lay.deps_image} from this engine")

    def _untag(self, tag: str) -> None:
        from docker.errors import APIError

        # Already gone, or still used by a container the next sweep removes.
        with contextlib.suppress(APIError):
            self.docker().images.remove(tag)

    # ----- results ------------------------------------------------------------------------
    def cleanup(self) -> None:
        """Every exit path: the temporary files, any container of this run (the smoke test's
        own finally removes its container; this catches one a cancel cut short), and with
        --load false the image tags even when the push or the registration failed."""
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        if self.client is not None:
            with contextlib.suppress(Exception):
                containers.remove_invocation(self.client, self.owner.invocation)
            if not self.config.load:
                for tag in (self.lay.image, self.lay.deps_image):
                    self._untag(tag)

    @property
    def image_ref(self) -> str:
        return f"{self.lay.repository}@{self.digest}" if self.digest else ""

    def outputs(self) -> dict[str, str]:
        return {
            "image": self.lay.image,
            "digest": self.digest,
            "image-ref": self.image_ref,
            "model-version": self.version,
            "cache-hit": "true" if self.cache_hit else "false",
        }

    def summary(self) -> str:
        rows = [
            ("model", self.ref.uri),
            ("image", self.lay.image),
            ("digest", self.digest or "(not pushed)"),
            ("dependencies", f"{self.lay.deps_image} (cache hit: {str(self.cache_hit).lower()})"),
            ("base image", self.lay.deps.base_image),
        ]
        if self.smoke is not None:
            rows.append(
                (
                    "smoke test",
                    f"{self.smoke.rows} predictions equal the model's own ({self.smoke.reference})"
                    if self.smoke.checked_predictions
                    else "/ping only (no input example)",
                )
            )
        if self.version:
            rows.append(("model version", self.version))
        body = "\n".join(f"| {k} | `{v}` |" for k, v in rows)
        return f"### mlsteps package\n\n| | |\n| --- | --- |\n{body}\n"
