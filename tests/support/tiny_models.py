"""Tiny, randomly initialised extractive-QA checkpoints built offline for the tests.

Tests may not download anything, yet the engine must be exercised on each tokenizer family
it supports (uncased WordPiece, cased WordPiece without token types, byte-level BPE with its
offset quirks). So the repo trains a small vocabulary on `tests/data/corpus.txt` and saves
a 2-layer model with `save_pretrained`, exactly as a real checkpoint is laid out on disk, so
that the code under test loads it through the same `from_pretrained` path as a hub model.

Weights are drawn from NumPy with the given seed rather than from TensorFlow's initialisers,
so the same seed gives the same bytes whatever TensorFlow's global RNG state is.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from tests.support import ROOT

CORPUS = ROOT / "tests" / "data" / "corpus.txt"
KINDS = ("bert", "distilbert", "roberta")

HIDDEN = 32
LAYERS = 2
HEADS = 2
INTERMEDIATE = 64
MAX_POSITIONS = 512
WORDPIECE_VOCAB = 1500
BPE_VOCAB = 1000
# Scale of the QA head's weights: with hidden states of unit variance after the last layer
# norm this gives start/end logits with a standard deviation of about 2.8, so the softmax is
# peaked and span scores differ by far more than the tests' 1e-4 score tolerance (the default
# 0.02 would make every probability about 1/seq_len and score comparisons vacuous).
QA_HEAD_STD = 0.5
INIT_STD = 0.02


def _corpus_lines() -> list[str]:
    return [line for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]


def wordpiece_vocab(lowercase: bool) -> list[str]:
    """A WordPiece vocabulary (special tokens first) learnt from the corpus, the same every time.

    `tokenizers`' WordPiece trainer numbers its "##" pieces in hash-map order, so the same
    corpus gives a different vocabulary in every process. Its plain BPE trainer is
    deterministic, so the subwords are learnt with it (BERT's normaliser and pre-tokenizer)
    and each becomes both a word-initial piece and a "##" continuation piece.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
    bpe.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    bpe.train_from_iterator(
        _corpus_lines(), trainers.BpeTrainer(vocab_size=WORDPIECE_VOCAB // 2, min_frequency=1, show_progress=False)
    )
    pieces = [piece for piece, _ in sorted(bpe.get_vocab().items(), key=lambda item: item[1])]
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + pieces + [f"##{piece}" for piece in pieces]


def _wordpiece_tokenizer(kind: str, work: Path):
    """A BERT (uncased) or DistilBERT (cased) fast tokenizer on the corpus vocabulary."""
    from transformers import BertTokenizerFast, DistilBertTokenizerFast

    lowercase = kind == "bert"
    (work / "vocab.txt").write_text("\n".join(wordpiece_vocab(lowercase)) + "\n", encoding="utf-8")
    cls = BertTokenizerFast if kind == "bert" else DistilBertTokenizerFast
    return cls(vocab_file=str(work / "vocab.txt"), do_lower_case=lowercase, model_max_length=512)


def _bpe_tokenizer(work: Path):
    """A RoBERTa fast tokenizer with a byte-level BPE trained on the corpus."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(
        _corpus_lines(),
        vocab_size=BPE_VOCAB,
        min_frequency=1,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        show_progress=False,
    )
    trainer.save_model(str(work))
    return RobertaTokenizerFast(
        vocab_file=str(work / "vocab.json"), merges_file=str(work / "merges.txt"), model_max_length=512
    )


def _model(kind: str, vocab_size: int):
    """The TF QA model of `kind`, built from a config (no checkpoint)."""
    from transformers import (
        BertConfig,
        DistilBertConfig,
        RobertaConfig,
        TFBertForQuestionAnswering,
        TFDistilBertForQuestionAnswering,
        TFRobertaForQuestionAnswering,
    )

    if kind == "bert":
        config = BertConfig(
            vocab_size=vocab_size, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
            intermediate_size=INTERMEDIATE, max_position_embeddings=MAX_POSITIONS,
        )
        return TFBertForQuestionAnswering(config)
    if kind == "distilbert":
        config = DistilBertConfig(
            vocab_size=vocab_size, dim=HIDDEN, n_layers=LAYERS, n_heads=HEADS, hidden_dim=INTERMEDIATE,
            max_position_embeddings=MAX_POSITIONS,
        )
        return TFDistilBertForQuestionAnswering(config)
    # RoBERTa numbers positions from padding_idx + 1, so 512 tokens need 514 position rows.
    config = RobertaConfig(
        vocab_size=vocab_size, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
        intermediate_size=INTERMEDIATE, max_position_embeddings=MAX_POSITIONS + 2, type_vocab_size=1,
        pad_token_id=1, bos_token_id=0, eos_token_id=2,
    )
    return TFRobertaForQuestionAnswering(config)


def _seed_weights(model, seed: int) -> None:
    """Overwrite every weight from a seeded NumPy RNG (layer norms stay at identity)."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        name = weight.name.lower()
        shape = tuple(weight.shape)
        if "layernorm" in name or "layer_norm" in name:
            continue
        if "qa_outputs" in name and "kernel" in name:
            value = rng.normal(0.0, QA_HEAD_STD, shape)
        elif name.endswith("bias:0") or name.endswith("bias"):
            value = np.zeros(shape)
        else:
            value = rng.normal(0.0, INIT_STD, shape)
        weight.assign(value.astype(weight.dtype.as_numpy_dtype))


def build_tiny_model(kind: str, out_dir: Path, seed: int = 0) -> Path:
    """Train a tokenizer, build a seeded tiny QA model and `save_pretrained` both into out_dir.

    The folder then loads with `AutoTokenizer` / `TFAutoModelForQuestionAnswering`.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown tiny model kind {kind!r}; expected one of {KINDS}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = _bpe_tokenizer(Path(tmp)) if kind == "roberta" else _wordpiece_tokenizer(kind, Path(tmp))
    model = _model(kind, vocab_size=len(tokenizer))
    dummy = tokenizer("What is it?", "It is a tiny model.", return_tensors="tf")
    model(dict(dummy))
    _seed_weights(model, seed)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
