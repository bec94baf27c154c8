"""``mlsteps secrets``: Vault secrets into the work that needs them, never into a log.

Three ways to hand them on, one per subcommand:

- ``secrets exec -- CMD``: CMD runs with the values in its environment; nothing on disk; leases
  and the login token are revoked when it ends, however it ends.
- ``secrets fetch``: on GitHub, masked and exported to ``$GITHUB_ENV`` (or, opt-in, to step
  outputs); anywhere, a dotenv/JSON file of mode 0600. A lease record (0600) keeps what to revoke.
- ``secrets revoke``: revokes what a fetch left (leases, the login token) and removes its files.

This package: the commands (command.py), their options (options.py) and plan (plan.py), what
``--help`` and ``--dry-run`` need. Talking to Vault (steps/services/vault.py, hvac) and applying
the plan (run.py, execute.py) load only for a real run.
"""

# the step's line in `mlsteps --help`, and its section's description (options.py)
HELP = "Read secrets from Vault and hand them on masked: exec, fetch, revoke."

# The commands of this step: name → (its line in `mlsteps --help`, its click command as
# "module:attribute", loaded only when it runs or its help is asked for). Read by
# steps/registry.py.
COMMANDS = {"secrets": (HELP, "steps.secrets.command:command")}

# The step's Jenkins var (vars/withVaultSecrets.groovy and .txt); the faces generator reads it.
JENKINS_VAR = "withVaultSecrets"
