"""The block-based predictor: per-block costs learned from network totals, summed."""
