"""``mlsteps deploy``: put a packaged model in front of requests a little at a time, judge each
look with anytime-valid tests, and take it back on evidence of harm.

targets/ serve the models (docker: containers behind nginx; sagemaker: production variants),
judge/ decides each look from the records in observations.py, and the controller (run.py)
moves traffic, writes its state after each step and rolls back on a failed judgement, an error
or a signal.
"""
