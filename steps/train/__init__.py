"""``mlsteps train``: run a training image (or a local process) wired to an MLflow run.

Order of work, which the plan lists and ``--dry-run`` prints:
sweep dead runs' containers → find/pull the image → create or continue the MLflow run and tag
it → run the container, streaming its log → end the run and read back metrics and model.

This package: the command (command.py), its options (options.py), the plan (plan.py) and applying
it (run.py, imported only by a real run, never by ``--help`` or ``--dry-run``).
"""

# the step's line in `mlsteps --help`, and its section's description (options.py)
HELP = "Run training in a container (or a local process), tracked in MLflow."

# The commands of this step: name → (its line in `mlsteps --help`, its click command as
# "module:attribute", loaded only when it runs or its help is asked for). Read by
# steps/registry.py.
COMMANDS = {"train": (HELP, "steps.train.command:command")}

# The step's Jenkins var (vars/mlTrain.groovy and .txt); the faces generator reads it.
JENKINS_VAR = "mlTrain"
