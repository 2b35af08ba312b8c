"""Measurements: NLU quality, latency and pipeline comparisons."""
