"""Datasets of generated models: the SQLite store, the generate job, summaries and export."""
