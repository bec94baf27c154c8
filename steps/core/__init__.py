"""What every part of mlsteps stands on: the step interface (runtime.py), the option tables
(options.py) and how values are read (config_file.py), plans, errors and exit codes, signals,
the self-redacting Secret, value parsers and text helpers. Imports nothing else of steps/
(runtime.py alone also reaches ci/ and the registry: it makes a step's face and reads
mlsteps.yaml against every step's section)."""
