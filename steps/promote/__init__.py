"""``mlsteps promote`` and ``mlsteps rollback``: move the champion alias with compare-and-set.

MLflow has no atomic alias swap, so both commands take a lock (steps/locks/: a file, a Vault
KV v2 key, or a DynamoDB item) and, while they hold it, read the champion, compare it with the
one expected, and only then move the aliases. Two pipelines promoting at once cannot overwrite
each other: the second finds the champion moved and exits 1 naming both versions.

promote: read the candidate version and the gate's report from its run, checked against the
digest the gate step handed on (steps/promote/candidate.py: tags are never trusted for the
verdict); the report must pass it and names the champion it was compared against → check the
approval → take the lock → read the champion; stop if it
is already the candidate, fail if it is not the expected one → keep the old champion under the
previous alias → point the alias at the candidate → tag the evidence on it → release the lock.
rollback: take the lock → read the champion and the previous alias → point the alias back →
remove the previous alias (one level of undo) → tag the demoted version → release the lock.

With --sagemaker-model-package-group the decision also goes to the SageMaker model registry
(steps/promote/sync.py): under the lock, once the champion is read and before any alias moves,
the version's model package is found or registered (bad input stops the run there); after the
move, the replaced champion's package is rejected and the version's approved (a rollback
rejects the demoted version's and approves the restored one's). A version that already is the
champion moves no alias, but its package is still approved.

A failure after the first alias write puts the aliases (and the SageMaker statuses) back; the
lock is released on every way out. This package: the commands (command.py), their options
(options.py), the plan (plan.py) and applying it (run.py, imported only by a real run).
"""

# the step's line in `mlsteps --help`, and its section's description (options.py)
HELP = "Move the champion alias to a gated version (compare-and-set under a lock)."
# rollback's line in `mlsteps --help`
ROLLBACK_HELP = "Move the champion alias back to the previous champion (one level of undo)."

# The commands of this step: name → (its line in `mlsteps --help`, its click command as
# "module:attribute", loaded only when it runs or its help is asked for). Read by
# steps/registry.py. rollback reads the same section: the same lock and aliases as the
# promotions it undoes.
COMMANDS = {
    "promote": (HELP, "steps.promote.command:command"),
    "rollback": (ROLLBACK_HELP, "steps.promote.command:rollback_command"),
}

# The step's Jenkins var (vars/mlPromote.groovy and .txt); the faces generator reads it.
JENKINS_VAR = "mlPromote"
