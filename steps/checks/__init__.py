"""The rules a model and its data are judged by, shared by the steps that judge (gate today;
deploy and monitor next), so none of them imports another step.

Metrics and their intervals (metrics.py, with bootstrap_sums.py and metric_inputs.py behind
it), thresholds (thresholds.py), data schema and quality (data.py, data_rules.py) and drift
(drift.py), both reading columns through columns.py. Each returns ``Check`` values
(verdict.py); a step collects them into one verdict and report (report.py). What promote
verifies of a gate's verdict (where the report is, REPORT_ARTIFACT_DIR, and its tags) is in
verdict.py.

numpy, pandas, scipy and scikit-learn are imported inside these modules' functions' callers
only on a real run with a data set: a gate on logged metrics needs none of them.
"""
