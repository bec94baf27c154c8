"""``mlsteps deploy``: put a packaged model in front of requests a little at a time, judge each
look with anytime-valid tests, and take it back on evidence of harm.

targets/ serve the models (docker: containers behind nginx; sagemaker: production variants),
judge/ decides each look from the records in observations.py, and the controller (run.py)
moves traffic, writes its state after each step and rolls back on a failed judgement, an error
or a signal.
"""

# the step's line in `mlsteps --help`, and its section's description (options.py)
HELP = "Roll a serving image out beside the champion in traffic steps, judged; roll back on harm."

# command → (its line in `mlsteps --help`, its click command), read by steps/registry.py.
COMMANDS = {"deploy": (HELP, "steps.deploy.command:command")}

# The step's Jenkins var (vars/mlDeploy.groovy and .txt); the faces generator reads it.
JENKINS_VAR = "mlDeploy"

# pyproject.toml's extras its action installs: the report's charts (matplotlib).
INSTALL_EXTRAS = ("deploy",)
