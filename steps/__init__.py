"""mlsteps: reusable ML delivery steps (import name ``steps``)."""

__version__ = "0.1.0"
