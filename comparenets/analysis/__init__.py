"""What is measured beyond a run's own results, and the report of a suite.

``structure``: parameters, FLOPs, memory and speed of a backbone against its input size;
``bench``: the benchmarks (device step rates, a matmul peak); ``invariance``: finished image
runs evaluated on shifted and rescaled test images; ``claims``: the article's claims as checks
with verdicts; ``report``: a suite's REPORT.md with its tables, plots and the claims audit.
"""
