"""Spikformer's LIF neuron, from spikingjelly, with settings changeable at run time."""

from __future__ import annotations

import torch
from spikingjelly.activation_based import neuron, surrogate

ATTENTION_THRESHOLD = 0.5
"""Threshold of the neuron after the attention product (Spikformer's value, never searched)."""


class LIFNode(neuron.LIFNode):
    """spikingjelly's LIF neuron whose membrane potential is fp32 whatever its input's dtype.

    spikingjelly creates the membrane state in the input's dtype, and runs its fused multi-step
    operator (one kernel over all T steps on CUDA) only on fp32 state: under bf16 or fp16
    autocast every neuron would fall back to a Python loop over T, a dozen operators per step.
    With the state kept in fp32 the fused operator runs in every precision; it reads the input
    in its own dtype and emits spikes in it, exactly 0 or 1.
    """

    def materialize_states(self, inputs: tuple[torch.Tensor, ...], states: tuple[object, ...],
                           step_mode: str) -> tuple[object, ...]:
        if step_mode != "m" or self._neuron_precision is not None:  # spikingjelly's precision settings rule
            return super().materialize_states(inputs, states, step_mode)
        x = inputs[0][0]
        v = states[0]
        if isinstance(v, torch.Tensor) and v.shape == x.shape:
            v = v.to(device=x.device, dtype=torch.float32)
        else:
            start = v if isinstance(v, float) else (0.0 if self.v_reset is None else self.v_reset)
            v = torch.full_like(x, start, dtype=torch.float32)
        return (v, *states[1:])


def lif(tau: float = 2.0, threshold: float = 1.0) -> LIFNode:
    """A multi-step LIF neuron with Spikformer's settings.

    Hard reset to 0, reset detached from the graph, sigmoid surrogate with alpha 4 and
    decaying input; fp32 membrane state in every precision (`LIFNode`).
    """
    return LIFNode(
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
