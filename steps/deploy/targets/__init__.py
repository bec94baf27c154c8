"""Where deploy serves models: one module per target, one interface (base.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from steps.deploy.options import DeployConfig
    from steps.deploy.targets.base import Target


def make_target(config: DeployConfig, say: Callable[[str], None]) -> Target:
    """The target of --target, built from the config; its module is imported only here."""
    if config.target == "docker":
        from steps.deploy.targets.docker import DockerTarget

        return DockerTarget.from_config(config, say)
    from steps.deploy.targets.sagemaker import SageMakerTarget

    return SageMakerTarget.from_config(config, say)
