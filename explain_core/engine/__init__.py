"""The TensorFlow engine: model, windows, decoding equal to the transformers pipeline,
saliency methods, word weights and faithfulness. Only the worker and the CLI import it.
"""
from explain_core.engine.explainer import explain, explain_batch
from explain_core.engine.model import QAModel, load_model
from explain_core.engine.saliency import METHODS

__all__ = ["METHODS", "QAModel", "explain", "explain_batch", "load_model"]
