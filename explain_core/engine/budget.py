"""How many window rows a pass may take at once, from a memory budget in bytes.

A token budget bounds a forward pass, but not a gradient pass: the backward pass keeps every
layer's activations and attention maps (rows x heads x length^2 floats per layer), so the
same batch of windows costs about `layers` times more with a gradient than without, and
length^2 more as windows grow. One budget in bytes (`QA_MEMORY_BUDGET`) and an estimate of
what one row holds, from the model's shape, give every pass its own batch: the answer pass,
the fused answer+gradient pass, SmoothGrad's and integrated gradients' rows, and the
faithfulness re-runs. Batching changes when rows are computed, never what they compute, so
answers and explanations do not depend on the budget.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from explain_core import defaults
from explain_core.settings import memory_budget

FLOAT_BYTES = 4  # activations are float32 (bfloat16 halves them; the estimate stays on the safe side)

# Measured peak RSS per row over the estimate's floats x 4 bytes (`python -m bench.bench_memory --parts
# calibrate`, 384-token windows, traced graphs): 0.70 for a RoBERTa-base-size model, 0.68 for DistilBERT-base
# size, 0.86 for MiniLM-L6 with a gradient (the graph fuses some of the tensors counted); forward passes
# measured below the estimate too. Rounded up, so the budget errs on the safe side.
CALIBRATION_FORWARD = 1.0
CALIBRATION_BACKWARD = 0.9


@dataclass(frozen=True)
class Footprint:
    """The sizes of a transformer that set what one window row holds in memory."""

    layers: int
    hidden: int
    heads: int
    intermediate: int

    @classmethod
    def of(cls, config: Any) -> Footprint:
        """The sizes read from a transformers config, whatever each architecture names them
        (DistilBERT: n_layers/dim/n_heads/hidden_dim; XLNet and Funnel: d_inner; Funnel counts
        its layers in blocks)."""
        def first(*names: str, default: int = 0) -> int:
            for name in names:
                value = getattr(config, name, None)
                if isinstance(value, (list, tuple)):  # Funnel's block_sizes, repeats per block
                    value = sum(value)
                if isinstance(value, int) and value > 0:
                    return value
            return default

        hidden = first("hidden_size", "dim", "d_model", "n_embd", default=768)
        return cls(
            layers=first("block_sizes", "num_hidden_layers", "n_layers", "n_layer", "num_layers", default=12),
            hidden=hidden,
            heads=first("num_attention_heads", "n_heads", "n_head", default=12),
            intermediate=first("intermediate_size", "hidden_dim", "d_inner", "n_inner", default=4 * hidden),
        )

    def layer_floats(self, length: int) -> int:
        """Floats one layer produces for one row: attention scores and their softmax
        (heads x length^2 each), the feed-forward's inner activations before and after the
        activation function (length x intermediate each), and about ten length x hidden
        tensors (query, key, value, context, projections, residual sums, layer norms)."""
        return 2 * self.heads * length * length + 2 * length * self.intermediate + 10 * length * self.hidden

    def row_bytes(self, length: int, backward: bool) -> int:
        """Bytes one row of `length` tokens holds at the peak of a pass.

        Forward only, a layer's tensors are freed once the next layer has read them: about one
        layer's worth is alive. With a gradient, every layer's are kept for the backward pass,
        which then builds one layer's gradients at a time (and the fused pass's span scores,
        length^2 per row).
        """
        layer = self.layer_floats(length)
        if backward:
            floats = (self.layers + 1) * layer + 4 * length * length
            return int(CALIBRATION_BACKWARD * FLOAT_BYTES * floats)
        return int(CALIBRATION_FORWARD * FLOAT_BYTES * layer)

    def rows(self, budget: int, length: int, backward: bool) -> int:
        """Rows of `length` tokens that fit the budget together; at least one, so a budget
        smaller than a single window still makes progress, one window at a time."""
        return max(1, budget // self.row_bytes(length, backward))


def default_budget() -> int:
    """`QA_MEMORY_BUDGET`, else a default sized for this machine: a GPU holds far larger
    batches than a CPU gains from."""
    return memory_budget(defaults.MEMORY_BUDGET_GPU if _has_gpu() else defaults.MEMORY_BUDGET_CPU)


@functools.cache
def _has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))
