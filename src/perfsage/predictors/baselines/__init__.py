"""Baseline predictors that PerfSAGE is compared against (``perfsage compare``)."""
