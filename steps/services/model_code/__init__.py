"""Running a model's own code, which mlsteps does not trust, in a process without the job's
credentials: how it is launched (launch.py), the gate's scoring process (runner.py) and the
child that loads the model there (child.py)."""
