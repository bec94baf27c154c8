"""Serving images: what a model needs (model_facts.py), building the dependencies and model
images (build.py) and pushing them (push.py)."""
