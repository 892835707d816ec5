"""Classification loss and accuracy on logits (B, C) and integer labels (B,)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def cross_entropy(logits, labels, label_smoothing: float = 0.0, mask=None):
    """Mean softmax cross-entropy against smoothed one-hot labels (weights `mask` (B,) if given)."""
    targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
    losses = optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)
    if mask is None:
        return losses.mean()
    mask = mask.astype(jnp.float32)
    return (losses * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def top_k_correct(logits, labels, k: int):
    """(B,) bool: whether the label is among the k highest logits."""
    top = jax.lax.top_k(logits, k)[1]
    return (top == labels[:, None]).any(axis=-1)
