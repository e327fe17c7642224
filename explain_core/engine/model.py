"""A QA checkpoint loaded once per process, and the TensorFlow graph functions run on it.

All graph functions take `[batch, length]` inputs with unknown static dimensions, so they
are traced once per model whatever the passage length or batch size (no retracing).
Gradients are taken with respect to the word embeddings: the seed's one-hot gradient is
`E g` for the embedding matrix `E`, so nothing of size sequence x vocabulary is built.

This module is where the engine first imports TensorFlow (every engine module reaches it
before `transformers.pipelines` or anything else that would), so TensorFlow's start-up
chatter is handled here once for `qa-explain`, `qa-worker` and the Python API.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# TensorFlow's C++ logging level (0 all .. 3 fatal only) unless the user chose one: its
# start-up lines (oneDNN notice, CUDA probing) say nothing a user can act on.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # transformers' TF classes need tf-keras
# TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX-512 VNNI, BF16 or AMX;
# elsewhere (an AVX2 server) it falls back to Eigen, where an answer with its explanation takes
# 1.45x as long (DistilBERT size, docs/benchmarks.md). Set to 0 to keep TensorFlow's choice.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

# A line of TensorFlow's C++ logging: absl's ("I0000 00:00:1796185396.247754  7951 port.cc:153] ...": seconds
# since the epoch before absl is initialised) or TSL's ("2025-09-17 14:44:05.157831: I .../cudart_stub.cc:32] ...").
_NATIVE_LOG = re.compile(r"^(?:(?P<absl>[IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\]"
                         r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: (?P<tsl>[IWEF]) \S+:\d+\])")
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_SEVERITY = "IWEF"


def _native_lines_kept(text: str, min_level: int) -> str:
    """`text` without the C++ log lines below `min_level` (TF_CPP_MIN_LOG_LEVEL's scale);
    everything else (Python warnings, other libraries) is kept as written."""
    kept = []
    for line in text.splitlines(keepends=True):
        match = _NATIVE_LOG.match(line)
        if match:
            severity = _SEVERITY.index(match.group("absl") or match.group("tsl"))
        elif line.rstrip("\n") == _ABSL_PREAMBLE:
            severity = _SEVERITY.index("W")
        else:
            severity = len(_SEVERITY)
        if severity >= min_level:
            kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def _filtered_native_stderr() -> Iterator[None]:
    """Hold back what is written to file descriptor 2 inside the block, then write it out
    without the C++ log lines that TF_CPP_MIN_LOG_LEVEL asks to hide.

    From TensorFlow 2.19 on (seen with 2.21) the lines its libraries log while they load go
    through absl before TensorFlow applies TF_CPP_MIN_LOG_LEVEL, so the variable no longer
    hides them (tensorflow/tensorflow#100442); C++ writes them straight to the descriptor,
    where Python's `sys.stderr` cannot catch them. If the import fails, everything is written out.
    """
    raw_level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0").strip()
    min_level = int(raw_level) if raw_level.isdigit() else 0
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all (closed by a launcher): nothing to filter
        yield
        return
    if sys.stderr is not None:
        sys.stderr.flush()
    imported = False
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
            imported = True
        finally:
            if sys.stderr is not None:
                sys.stderr.flush()
            os.dup2(saved, 2)
            held.seek(0)
            text = held.read().decode("utf-8", errors="replace")
            os.write(saved, (_native_lines_kept(text, min_level) if imported else text).encode("utf-8"))
            os.close(saved)


with _filtered_native_stderr():
    import tensorflow as tf  # noqa: E402
from transformers import (  # noqa: E402
    AutoConfig,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedTokenizerFast,
    TFAutoModelForQuestionAnswering,
)
from transformers.models.auto.modeling_tf_auto import TF_MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES  # noqa: E402

from explain_core import defaults  # noqa: E402
from explain_core.engine.budget import Footprint  # noqa: E402
from explain_core.errors import InputError  # noqa: E402
from explain_core.settings import Env, precision  # noqa: E402

log = logging.getLogger(__name__)

_IDS = tf.TensorSpec([None, None], tf.int32)
_FLOATS = tf.TensorSpec([None, None], tf.float32)
_EMBEDS = tf.TensorSpec([None, None, None], tf.float32)
_INDEX = tf.TensorSpec([None], tf.int32)
_SCALAR_INT = tf.TensorSpec([], tf.int32)
_SCALAR_BOOL = tf.TensorSpec([], tf.bool)


class GraphFunction:
    """A `tf.function` that runs eagerly for its first `defaults.EAGER_CALLS` calls.

    Tracing a transformer's graph costs seconds (about 6 s for MiniLM's answer+gradient pass),
    which a process that answers one question (`qa-explain`) would pay for nothing: eagerly, the
    same call costs a fraction of a second more than the graph. A process that keeps going (a
    `--jsonl` run) pays for the trace once it has shown it will use it; `trace()` builds the
    graph at once. Inputs are cast to the signature's dtypes either way, so both paths see the
    same tensors.
    """

    def __init__(self, function: Any, signature: list[tf.TensorSpec]) -> None:
        self._eager = function
        self._graph = tf.function(function, input_signature=signature)
        self._signature = signature
        self._eager_left = defaults.EAGER_CALLS
        self._lock = threading.Lock()
        self._built = False
        self._untraceable: str | None = None  # why the graph cannot be built, once that is known

    def __call__(self, *args: Any) -> Any:
        with self._lock:
            eager = self._eager_left > 0
            self._eager_left -= eager
        if eager or not self._build():
            return self._eager(*(tf.convert_to_tensor(a, spec.dtype) for a, spec in zip(args, self._signature)))
        return self._graph(*args)

    def trace(self, on_first_use: bool = False) -> None:
        """No more eager calls: build the graph now, or (`on_first_use`) at its next call."""
        if not on_first_use:
            self._build()
        with self._lock:
            self._eager_left = 0

    def _build(self) -> bool:
        """Trace the graph on first use; False (and eager calls from then on) when it cannot be built.

        Funnel's TF code branches in Python on the sequence length; in a graph of unknown length
        those branches become `tf.cond`s whose outputs differ in shape, and TensorFlow cannot take
        the gradient through them ("Incompatible shapes between op input and calculated input
        gradient"). Eagerly the branches see real lengths and the gradient is right.
        """
        with self._lock:
            if not self._built and self._untraceable is None:
                try:
                    self._graph.get_concrete_function()
                    self._built = True
                except ValueError as exc:  # AutoGraph's message ends with the error it wraps
                    self._untraceable = str(exc).strip().splitlines()[-1].strip()
                    log.warning("%s cannot be built as a TensorFlow graph for this model; it runs eagerly (%s)",
                                self._eager.__name__.lstrip("_"), self._untraceable)
            return self._built

    def tracing_count(self) -> int:
        """How often the graph was traced: once per model, whatever the input shapes."""
        return int(self._graph.experimental_get_tracing_count())


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
        self.footprint = Footprint.of(self.model.config)  # what a window row costs each pass, in memory
        self.logits = GraphFunction(self._logits, [_IDS, _IDS, _IDS])
        self.gradient_at = GraphFunction(self._gradient_at, [_EMBEDS, _IDS, _IDS, _IDS, _INDEX, _INDEX])
        self.answer_and_gradient = GraphFunction(
            self._answer_and_gradient, [_IDS, _IDS, _IDS, _FLOATS, _SCALAR_INT, _SCALAR_BOOL])

    def trace(self, on_first_use: bool = False) -> None:
        """Build every graph now, for a long-lived process that must answer its first question
        as fast as its hundredth (the worker, before it takes jobs); or (`on_first_use`) each at
        its first call, for a run that may never call some (a `--jsonl` run of one-window passages
        with the vanilla gradient needs only the fused answer+gradient graph: each trace costs seconds)."""
        for function in (self.logits, self.gradient_at, self.answer_and_gradient):
            function.trace(on_first_use)

    # -- graph functions -------------------------------------------------------------
    def _call(self, input_ids: tf.Tensor, attention_mask: tf.Tensor, token_type_ids: tf.Tensor,
              embeds: tf.Tensor | None = None):
        """Start and end logits of the windows `input_ids`, from their word embeddings `embeds` when given."""
        inputs = {"input_ids": input_ids} if embeds is None else self._embedding_inputs(input_ids, embeds)
        if self.uses_token_types:
            inputs["token_type_ids"] = token_type_ids
        out = self.model(attention_mask=attention_mask, training=False, **inputs)
        return tf.cast(out.start_logits, tf.float32), tf.cast(out.end_logits, tf.float32)

    def _embedding_inputs(self, input_ids: tf.Tensor, embeds: tf.Tensor) -> dict[str, tf.Tensor | None]:
        """The model's inputs for the word embeddings `embeds` of the tokens `input_ids`.

        `inputs_embeds` stands for the embedding lookup, and for most architectures for nothing
        else: they give the same logits as from the ids. Two do more with the ids, and without
        this the gradient would explain another function than the one that answered: Funnel
        applies its embedding layer norm only to the rows it looks up itself, and Longformer's QA
        model puts global attention on the question (the tokens before the first separator) only
        when it sees the ids.
        """
        # Under a reduced-precision policy the layers compute in bfloat16.
        embeds = tf.cast(embeds, self.model.compute_dtype)
        model_type = self.model.config.model_type
        if model_type == "funnel":
            embeds = self.model.get_input_embeddings()(input_ids=None, inputs_embeds=embeds, training=False)
        # Keras wants the first argument named even when it is unused.
        inputs: dict[str, tf.Tensor | None] = {"input_ids": None, "inputs_embeds": embeds}
        if model_type == "longformer":
            separators = tf.cast(input_ids == self.model.config.sep_token_id, tf.int32)
            inputs["global_attention_mask"] = tf.cast(tf.cumsum(separators, axis=1) == 0, tf.int32)
        return inputs

    def _logits(self, input_ids, attention_mask, token_type_ids):
        """Start and end logits for a batch of windows: the answer-only path."""
        return self._call(input_ids, attention_mask, token_type_ids)

    def _gradient_at(self, embeds, input_ids, attention_mask, token_type_ids, starts, ends):
        """Per row: the target start_logit[s] + end_logit[e] and its gradient w.r.t. `embeds`, the
        word embeddings (actual, interpolated or noisy) in place of the tokens `input_ids`.

        Rows are independent, so the gradient of the summed targets is each row's own gradient;
        that lets integrated gradients and SmoothGrad batch their steps/samples as rows.
        """
        with tf.GradientTape(watch_accessed_variables=False) as tape:  # only the embeddings: less to record
            tape.watch(embeds)
            start, end = self._call(input_ids, attention_mask, token_type_ids, embeds)
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
        with tf.GradientTape(watch_accessed_variables=False) as tape:  # only the embeddings: less to record
            tape.watch(embeds)
            start, end = self._call(input_ids, attention_mask, token_type_ids, embeds)
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
                self._gram = tf.matmul(matrix, matrix, transpose_a=True).numpy()
            return self._gram

    def one_hot_gradient_norm(self, grad: np.ndarray) -> np.ndarray:
        """L2 norm over the vocabulary of the one-hot gradient, from embedding gradients [..., dim].

        In float32 like the gradient itself: within 1e-7 of the largest norm of float64's, at half
        the time (2.4 ms against 5.4 ms for a 384-token DistilBERT window).
        """
        g = grad.astype(np.float32, copy=False)
        return np.sqrt(np.maximum(np.einsum("...d,...d->...", g @ self.gram, g), 0.0)).astype(np.float64)


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

    A local folder needs `tf_model.h5` (or PyTorch weights with torch). A hub name is looked
    up in the HuggingFace cache first, without touching the network, so a model downloaded
    once loads offline and no start checks the hub again; otherwise it is downloaded (with
    huggingface_hub's progress bars when stderr is a terminal), after `_check_hub` has made
    sure that the hub can be reached at all.
    """
    path = Path(name_or_path).expanduser()
    if not path.exists() and name_or_path.startswith(("/", ".", "~")):
        raise InputError("unknown_model", f"cannot load model '{name_or_path}': no such folder")
    try:
        if path.exists():
            tokenizer, model = _from_pretrained(str(path))
        else:
            try:
                tokenizer, model = _from_pretrained(name_or_path, local_files_only=True)
            except OSError:  # not in the cache, or only part of it
                _check_hub(name_or_path)
                tokenizer, model = _from_pretrained(name_or_path)
    except InputError:
        raise
    except (OSError, ValueError, ImportError) as exc:  # ImportError: a tokenizer's library (rjieba, sacremoses)
        raise InputError("unknown_model", f"cannot load model '{name_or_path}': {_first_line(exc)}") from exc
    if not tokenizer.is_fast:
        raise InputError("unsupported_model", f"model '{name_or_path}' is not supported: its tokenizer has no fast "
                                              f"version, and answers and explanations need {_OFFSETS}")
    log.info("loaded model %s", name_or_path)
    return QAModel(name=name_or_path, model=model, tokenizer=tokenizer)


def _from_pretrained(source: str, **hub: Any) -> tuple[PreTrainedTokenizerFast, tf.keras.Model]:
    config = AutoConfig.from_pretrained(source, **hub)  # read once, for the check and both loads
    _check_supported(source, config)
    tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True, config=config, **hub)
    with _precision_policy(precision()):
        model = _load_weights(source, config, **hub)
    return tokenizer, model


def _load_weights(source: str, config: PretrainedConfig, **hub: Any) -> tf.keras.Model:
    """The checkpoint's model, without drawing random initial values that its weights replace.

    transformers' TF models build every weight with its random initializer before loading the
    checkpoint over it (the PyTorch side skips this; the TF side has no such option). Drawing
    them is a third of the load: 0.2 s for MiniLM, 0.75 s for a DistilBERT-base-size model on a
    2-core CPU. Weights start as NaN instead, which costs nothing; when the checkpoint has left
    any of them unset (a base model without its QA head, say), the model is loaded again the usual
    way, so that what the checkpoint lacks gets its random values exactly as in the pipeline.
    """
    with tf.variable_creator_scope(_nan_initial_values):
        model = TFAutoModelForQuestionAnswering.from_pretrained(source, config=config, **hub)
    unset = [w.name for w in model.weights if w.dtype.is_floating and bool(tf.reduce_any(tf.math.is_nan(w)))]
    if not unset:
        return model
    log.info("%s: %d weights are not in the checkpoint (%s); loading it again with random initial values",
             source, len(unset), ", ".join(unset[:3]))
    return TFAutoModelForQuestionAnswering.from_pretrained(source, config=config, **hub)


def _nan_initial_values(next_creator: Any, **kwargs: Any) -> tf.Variable:
    """A variable creator (`tf.variable_creator_scope`) giving floating-point weights NaN as initial value."""
    shape, dtype = kwargs.get("shape"), kwargs.get("dtype")
    if callable(kwargs.get("initial_value")) and shape is not None and tf.TensorShape(shape).is_fully_defined() \
            and dtype is not None and tf.as_dtype(dtype).is_floating:
        nan = tf.constant(float("nan"), tf.as_dtype(dtype))
        kwargs["initial_value"] = lambda: tf.fill(shape, nan)
    return next_creator(**kwargs)


_OFFSETS = "each token's character offsets"
# The TF question-answering architectures of transformers 4.x that the engine cannot serve, and why
# (tests/engine/test_architectures.py answers with every other one).
UNSUPPORTED_ARCHITECTURES = {
    "flaubert": f"transformers has no fast tokenizer for FlauBERT, and answers and explanations need {_OFFSETS}",
    "xlm": f"transformers has no fast tokenizer for XLM, and answers and explanations need {_OFFSETS}",
    "layoutlmv3": "LayoutLMv3 answers questions about document images (word boxes and a page image), "
                  "not about a text passage",
}


def _check_supported(source: str, config: PretrainedConfig) -> None:
    """Refuse an architecture the engine cannot answer with, in one line, before its tokenizer
    (whose libraries may be missing) and weights are loaded."""
    reason = UNSUPPORTED_ARCHITECTURES.get(config.model_type)
    if reason is None and config.model_type not in TF_MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES:
        reason = f"transformers has no TensorFlow question-answering model for its architecture ({config.model_type})"
    if reason:
        raise InputError("unsupported_model", f"model '{source}' is not supported: {reason}")


_LOCAL_MODEL_HINT = ("or point QA_MODEL at a local model folder (config.json, tokenizer files and tf_model.h5), "
                     "e.g. QA_MODEL=../shared/models/minilm-l6-squad2-tiny")


def _check_hub(name: str) -> None:
    """Fail at once, in one line, when a model that is not in the cache cannot be downloaded.

    Left to itself, huggingface_hub retries each file's metadata request five times with
    back-off (about 23 s a file, 50 s for a model, with a screenful of warnings) before
    transformers gives up. One request without retries, bounded by HF_HUB_ETAG_TIMEOUT (the
    hub's own timeout for metadata, 10 s unless set), tells the same thing within seconds.
    """
    import requests
    from huggingface_hub import constants, model_info
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    if constants.HF_HUB_OFFLINE:
        raise InputError("model_unavailable", f"model '{name}' is not in the HuggingFace cache and HF_HUB_OFFLINE "
                                              f"is set: unset it to download the model, {_LOCAL_MODEL_HINT}")
    try:
        model_info(name, timeout=constants.HF_HUB_ETAG_TIMEOUT)
        return
    except RepositoryNotFoundError:
        raise InputError("unknown_model", f"cannot load model '{name}': the HuggingFace hub has no such model (or it "
                                          f"is private or gated); check the name, {_LOCAL_MODEL_HINT}") from None
    except HfHubHTTPError as exc:
        reason = f"answered HTTP {exc.response.status_code if exc.response is not None else '?'}"
    except requests.Timeout:  # before ConnectionError: a connect timeout is both
        reason = "did not answer in time"
    except requests.ConnectionError:
        reason = "cannot be reached"
    raise InputError("model_unavailable", f"model '{name}' could not be downloaded: the HuggingFace hub "
                                          f"({constants.ENDPOINT}) {reason} and the model is not in the HuggingFace "
                                          f"cache; connect once to download it, {_LOCAL_MODEL_HINT}")


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
