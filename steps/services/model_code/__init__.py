"""model_code."""
