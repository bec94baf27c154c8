"""Where deploy serves models: one module per target, one interface (base.py). The controller
(steps/deploy/run.py, make_target) imports the module of --target only."""
