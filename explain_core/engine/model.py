"""A QA checkpoint loaded once per process, and the TensorFlow graph functions run on it.

All graph functions take `[batch, length]` inputs with unknown static dimensions, so they
are traced once per model whatever the passage length or batch size (no retracing).
Gradients are taken with respect to the word embeddings: the seed's one-hot gradient is
`E g` for the embedding matrix `E`, so nothing of size sequence x vocabulary is built.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # no CUDA complaints on CPU-only machines
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # transformers' TF classes need tf-keras

import tensorflow as tf  # noqa: E402
from transformers import AutoTokenizer, PreTrainedTokenizerFast, TFAutoModelForQuestionAnswering  # noqa: E402

from explain_core import defaults  # noqa: E402
from explain_core.errors import InputError  # noqa: E402
from explain_core.settings import Env, precision  # noqa: E402

log = logging.getLogger(__name__)

_IDS = tf.TensorSpec([None, None], tf.int32)
_FLOATS = tf.TensorSpec([None, None], tf.float32)
_EMBEDS = tf.TensorSpec([None, None, None], tf.float32)
_INDEX = tf.TensorSpec([None], tf.int32)
_SCALAR_INT = tf.TensorSpec([], tf.int32)
_SCALAR_BOOL = tf.TensorSpec([], tf.bool)


@dataclass
class QAModel:
    """A TF question-answering model with its fast tokenizer and compiled graph functions."""

    name: str
    model: tf.keras.Model
    tokenizer: PreTrainedTokenizerFast
    _gram: np.ndarray | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.embedding_matrix: tf.Variable = self.model.get_input_embeddings().weight
        self.uses_token_types = "token_type_ids" in self.tokenizer.model_input_names
        self.logits = tf.function(self._logits, input_signature=[_IDS, _IDS, _IDS])
        self.gradient_at = tf.function(
            self._gradient_at, input_signature=[_EMBEDS, _IDS, _IDS, _INDEX, _INDEX]
        )
        self.answer_and_gradient = tf.function(
            self._answer_and_gradient,
            input_signature=[_IDS, _IDS, _IDS, _FLOATS, _SCALAR_INT, _SCALAR_BOOL],
        )

    # -- graph functions -------------------------------------------------------------
    def _call(self, attention_mask: tf.Tensor, token_type_ids: tf.Tensor, **inputs: tf.Tensor):
        if self.uses_token_types:
            inputs["token_type_ids"] = token_type_ids
        if "inputs_embeds" in inputs:  # under a reduced-precision policy the layers compute in bfloat16
            inputs["inputs_embeds"] = tf.cast(inputs["inputs_embeds"], self.model.compute_dtype)
        inputs.setdefault("input_ids", None)  # Keras wants the first argument named even when unused
        out = self.model(attention_mask=attention_mask, training=False, **inputs)
        return tf.cast(out.start_logits, tf.float32), tf.cast(out.end_logits, tf.float32)

    def _logits(self, input_ids, attention_mask, token_type_ids):
        """Start and end logits for a batch of windows: the answer-only path."""
        return self._call(attention_mask, token_type_ids, input_ids=input_ids)

    def _gradient_at(self, embeds, attention_mask, token_type_ids, starts, ends):
        """Per row: the target start_logit[s] + end_logit[e] and its gradient w.r.t. `embeds`.

        Rows are independent, so the gradient of the summed targets is each row's own gradient;
        that lets integrated gradients and SmoothGrad batch their steps/samples as rows.
        """
        with tf.GradientTape() as tape:
            tape.watch(embeds)
            start, end = self._call(attention_mask, token_type_ids, inputs_embeds=embeds)
            target = _pick(start, starts) + _pick(end, ends)
        return target, tape.gradient(target, embeds)

    def _answer_and_gradient(self, input_ids, attention_mask, token_type_ids, allowed,
                             max_answer_len, allow_null):
        """One forward+backward pass that also chooses the span to explain, per row.

        The choice is the pipeline's best span (softmax over allowed tokens, P(start)*P(end),
        length cap) or the null span when it scores higher; the Python decoder then checks it
        and falls back to `gradient_at` in the rare cases (merged duplicate answers, ties)
        where the pipeline's rules pick another span. This saves a whole forward pass.
        """
        embeds = tf.gather(self.embedding_matrix, input_ids)
        with tf.GradientTape() as tape:
            tape.watch(embeds)
            start, end = self._call(attention_mask, token_type_ids, inputs_embeds=embeds)
            starts, ends = _best_spans(start, end, allowed, max_answer_len, allow_null)
            target = _pick(start, starts) + _pick(end, ends)
        return start, end, starts, ends, tape.gradient(target, embeds)

    # -- helpers ---------------------------------------------------------------------
    def word_embeddings(self, input_ids: np.ndarray) -> tf.Tensor:
        """The rows of the embedding matrix for `input_ids` ([batch, length, dim])."""
        return tf.gather(self.embedding_matrix, input_ids)

    @property
    def gram(self) -> np.ndarray:
        """E^T E (dim x dim), so that ||E g|| = sqrt(g^T E^T E g) costs dim^2 per token, not vocab*dim."""
        with self._lock:
            if self._gram is None:
                matrix = tf.convert_to_tensor(self.embedding_matrix, tf.float32)
                self._gram = tf.matmul(matrix, matrix, transpose_a=True).numpy().astype(np.float64)
            return self._gram

    def one_hot_gradient_norm(self, grad: np.ndarray) -> np.ndarray:
        """L2 norm over the vocabulary of the one-hot gradient, from embedding gradients [..., dim]."""
        g = grad.astype(np.float64)
        return np.sqrt(np.maximum(((g @ self.gram) * g).sum(axis=-1), 0.0))


def _pick(logits: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    return tf.gather(logits, index, batch_dims=1)


def _best_spans(start, end, allowed, max_answer_len, allow_null):
    """The pipeline's span choice (top 1) computed in the graph, per row; null is (0, 0)."""
    length = tf.shape(start)[1]
    start_p = tf.nn.softmax(tf.where(allowed > 0, start, -10000.0), axis=-1)
    end_p = tf.nn.softmax(tf.where(allowed > 0, end, -10000.0), axis=-1)
    null_score = start_p[:, 0] * end_p[:, 0]
    not_cls = tf.concat([tf.zeros([1]), tf.ones([length - 1])], 0)[tf.newaxis, :] * allowed
    scores = (start_p * not_cls)[:, :, tf.newaxis] * (end_p * not_cls)[:, tf.newaxis, :]
    scores = tf.linalg.band_part(scores, tf.constant(0, tf.int32), tf.minimum(max_answer_len, length) - 1)
    flat = tf.reshape(scores, [tf.shape(scores)[0], -1])
    best = tf.argmax(flat, axis=-1, output_type=tf.int32)
    best_score = tf.reduce_max(flat, axis=-1)
    use_null = tf.logical_and(allow_null, null_score > best_score)
    starts = tf.where(use_null, 0, best // length)
    ends = tf.where(use_null, 0, best % length)
    return starts, ends


@functools.lru_cache(maxsize=Env().integer("QA_MODEL_CACHE", defaults.MODEL_CACHE, low=1))
def load_model(name_or_path: str) -> QAModel:
    """Load a checkpoint (hub name or local folder) once per process and keep it.

    Hub names resolve through the HuggingFace cache, so an offline machine works once the
    model is cached; a local folder needs `tf_model.h5` (or PyTorch weights with torch).
    """
    path = Path(name_or_path).expanduser()
    if path.exists():
        source = str(path)
    elif name_or_path.startswith(("/", ".", "~")):
        raise InputError("unknown_model", f"cannot load model '{name_or_path}': no such folder")
    else:
        source = name_or_path
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True)
        with _precision_policy(precision()):
            model = TFAutoModelForQuestionAnswering.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise InputError("unknown_model", f"cannot load model '{name_or_path}': {_first_line(exc)}") from exc
    if not tokenizer.is_fast:
        raise InputError("unknown_model", f"model '{name_or_path}' has no fast tokenizer (offsets are needed)")
    log.info("loaded model %s", name_or_path)
    return QAModel(name=name_or_path, model=model, tokenizer=tokenizer)


@contextlib.contextmanager
def _precision_policy(name: str) -> Iterator[None]:
    """Build a model under a Keras precision policy without changing it for other models."""
    from tf_keras import mixed_precision

    previous = mixed_precision.global_policy()
    mixed_precision.set_global_policy("mixed_bfloat16" if name == "bfloat16" else "float32")
    try:
        yield
    finally:
        mixed_precision.set_global_policy(previous)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
