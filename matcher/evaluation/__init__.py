"""Measure ranking quality on BEIR-style sets (``matcher eval``)."""
