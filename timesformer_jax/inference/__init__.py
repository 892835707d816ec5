"""Inference on video files: the official test protocol, label names, top-k (`timesformer predict`)."""
from timesformer_jax.inference.classify import (
    AGGREGATES,
    Prediction,
    aggregate_views,
    classify,
    read_views,
    protocol_for,
    top_k,
)
from timesformer_jax.inference.labels import read_label_file, resolve_labels, shipped_labels

__all__ = [
    "AGGREGATES",
    "Prediction",
    "aggregate_views",
    "classify",
    "read_label_file",
    "read_views",
    "resolve_labels",
    "shipped_labels",
    "protocol_for",
    "top_k",
]
