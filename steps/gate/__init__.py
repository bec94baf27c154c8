"""``mlsteps gate``: judge a candidate model before it is promoted.

Order of work, which the plan lists and ``--dry-run`` prints: find the candidate and the
champion in MLflow → load the data sets → schema, quality and drift checks on the evaluation
data → score both models on the same rows with paired bootstrap intervals (or, without data,
compare the metrics their runs logged) → per-slice checks → write the report (markdown, JSON,
PNG) → log it to the candidate's run and tag the run and its model version with the verdict.

Nothing is written before the last two actions, so bad input (a missing column, an unknown
metric) leaves nothing behind. The verdict is exit 0 (pass) or 3 (rejected, every failing
check named); the report is written either way. This package: the command (command.py),
its options (options.py), the plan (plan.py) and applying it (run.py, imported only by a
real run).
"""

# the step's line in `mlsteps --help`, and its section's description (options.py)
HELP = "Judge a candidate model against thresholds, the champion, slices and its data."

# The commands of this step: name → (its line in `mlsteps --help`, its click command as
# "module:attribute", loaded only when it runs or its help is asked for). Read by
# steps/registry.py.
COMMANDS = {"gate": (HELP, "steps.gate.command:command")}

# The step's Jenkins var (vars/mlGate.groovy and .txt); the faces generator reads it.
JENKINS_VAR = "mlGate"

# The pip extra a run imports (scoring on data: mlflow, scikit-learn, pandas, scipy, matplotlib);
# its action installs mlsteps with it (actions/install.sh).
INSTALL_EXTRAS = ("gate",)
