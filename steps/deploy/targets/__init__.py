"""Where deploy serves models: one module per target, one interface (base.py)."""

# --target value → "module:class", imported only when a real run needs it.
TARGETS = {
    "docker": "steps.deploy.targets.docker:DockerTarget",
    "sagemaker": "steps.deploy.targets.sagemaker:SageMakerTarget",
}
