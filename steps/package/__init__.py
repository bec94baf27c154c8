"""``mlsteps package``: an MLflow model becomes a serving image, smoke-tested, pushed and
registered with its lineage.

Order of work, which the plan lists and ``--dry-run`` prints (with the Dockerfiles, the tags and
the cache key): read the model's MLmodel and requirements (before the plan: the plan is made of
them) → download the model files → find or build the dependencies image → build the model
image → smoke-test it → push both tags → register the model version and tag it.

This package: the command (command.py), its options (options.py), the plan (plan.py) and applying it
(run.py, imported only by a real run).
"""

# the step's line in `mlsteps --help`, and its section's description (options.py)
HELP = "Build an MLflow model into a serving image; smoke-test, push and register it."

# The commands of this step: name → (its line in `mlsteps --help`, its click command as
# "module:attribute", loaded only when it runs or its help is asked for). Read by
# steps/registry.py.
COMMANDS = {"package": (HELP, "steps.package.command:command")}

# The step's Jenkins var (vars/mlPackage.groovy and .txt); the faces generator reads it.
JENKINS_VAR = "mlPackage"
