"""The CI faces of each step, generated from its option table: the composite action's
``inputs:``, ``outputs:`` and run-step ``env:``; the Jenkins var's ``defaultConfig`` keys and the
declarations built from them (``forms``, ``notFlags``, ``outputKeys``, ``credentials``) and its
.txt page's key and output lists; README's list of steps and option tables and each action's
README tables.

``python -m steps.faces`` writes them (a new step's missing files first from the templates in
templates.py); ``python -m steps.faces --check`` exits 1 with a diff when one is stale or
missing. Development only: the CLI never imports this package.
"""
