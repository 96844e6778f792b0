"""Duplicate detection: an index of embeddings, built and calibrated."""
