"""The judgements behind ``mlsteps gate``: metrics and their intervals (metrics.py, with
bootstrap_sums.py and metric_inputs.py behind it), data schema and quality (data.py) and drift
(drift.py), both reading columns through columns.py. Each returns ``Check`` values (checks.py);
the step (steps/gate/) collects them into one verdict and report.

numpy, pandas, scipy and scikit-learn are imported inside these modules' functions' callers
only on a real run with a data set: a gate on logged metrics needs none of them.
"""
