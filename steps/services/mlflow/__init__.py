"""MLflow over its REST API: tracking (runs, experiments), where a model's files come from
(model_source.py), registered versions and their lineage tags (model_versions.py), and the
aliases and tags of the model registry (registry.py)."""
