"""Accuracy metrics for predictors, evaluation reports and plots."""
