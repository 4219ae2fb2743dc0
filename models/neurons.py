"""Spikformer's LIF neuron, from spikingjelly, with settings changeable at run time."""

from __future__ import annotations

from spikingjelly.activation_based import neuron, surrogate

ATTENTION_THRESHOLD = 0.5
"""Threshold of the neuron after the attention product (Spikformer's value, never searched)."""


def lif(tau: float = 2.0, threshold: float = 1.0) -> neuron.LIFNode:
    """A multi-step LIF neuron with Spikformer's settings.

    Hard reset to 0, reset detached from the graph, sigmoid surrogate with alpha 4 and
    decaying input.
    """
    return neuron.LIFNode(
        tau=float(tau),
        v_threshold=float(threshold),
        v_reset=0.0,
        decay_input=True,
        detach_reset=True,
        surrogate_function=surrogate.Sigmoid(alpha=4.0),
        step_mode="m",
    )


def set_lif(node: neuron.LIFNode, *, tau: float | None = None, threshold: float | None = None) -> None:
    """Change a LIF neuron's time constant and/or threshold in place.

    spikingjelly reads both on every forward, so the change takes effect on the next step.
    """
    if tau is not None:
        node.tau = float(tau)
    if threshold is not None:
        node.v_threshold = float(threshold)
