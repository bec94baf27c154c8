"""The outside systems a step talks to, each named for what it is (Docker, MLflow, Vault, AWS,
SageMaker, GitHub, OCI images, a model's own code), each turning the service's failures into
the user's terms. Services import core (and each other), never a step: any step may use them."""
