"""Datasets (embedded offline data and TFDS-backed sources) and batching."""
