"""One jitted forward and backward pass of a model, shared by the tests that compare two implementations of the
same function (splash against XLA attention, scanned against unrolled blocks)."""
import jax
import jax.numpy as jnp


def logits_and_grads(model, params, video):
    """(logits, d/dparams sum(sin(logits))): a loss whose gradient reaches every logit with its own weight."""

    def loss(p):
        logits = model.apply({"params": p}, video)
        return jnp.sum(jnp.sin(logits)), logits

    (_, logits), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
    return logits, grads
