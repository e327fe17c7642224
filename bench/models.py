"""Base-size QA checkpoints with random weights, for benchmarks whose figures depend on shapes only.

Memory and speed depend on a model's sizes (layers, hidden, heads, vocabulary), not on its weights,
so a random model of the default checkpoint's size measures what the default would cost without a
download. The tokenizer is the real uncased WordPiece of ../shared/models/minilm-l6-squad2-tiny
when it is there (real passages then tokenize as a real model's would: SQuAD paragraphs fill their
384-token windows), else the test suite's small vocabulary; its vocabulary is padded with unused
tokens to the architecture's real size so that the embedding matrix has its real size.

- "roberta": RoBERTa-base's architecture and sizes (12 layers, hidden 768, 12 heads, feed-forward
  3,072, vocabulary 50,265, 514 positions) with the WordPiece tokenizer (RoBERTa's own BPE files
  cannot be made offline). Its token-type table has two rows instead of one, so that the WordPiece
  tokenizer's pair segments are valid: 768 floats more.
- "distilbert": DistilBERT-base (6 layers, hidden 768, 12 heads, feed-forward 3,072, vocabulary 30,522).
"""
from __future__ import annotations

import os
from pathlib import Path

from bench import SHARED_MODEL

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

VOCAB = {"roberta": 50_265, "distilbert": 30_522}


def build_random_model(kind: str, out_dir: Path) -> Path:
    """Save a random `kind` QA model of base size and its tokenizer into `out_dir` (built once:
    an existing checkpoint there is reused)."""
    import tensorflow as tf
    from transformers import (
        BertTokenizerFast,
        DistilBertConfig,
        DistilBertTokenizerFast,
        RobertaConfig,
        TFDistilBertForQuestionAnswering,
        TFRobertaForQuestionAnswering,
    )

    if (out_dir / "tf_model.h5").exists():
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    if SHARED_MODEL.exists():
        vocab = (SHARED_MODEL / "vocab.txt").read_text(encoding="utf-8").splitlines()
    else:
        from tests.support.tiny_models import wordpiece_vocab

        vocab = wordpiece_vocab(lowercase=True)
    vocab += [f"[pad{i}]" for i in range(VOCAB[kind] - len(vocab))]
    (out_dir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer_class = BertTokenizerFast if kind == "roberta" else DistilBertTokenizerFast  # no token types
    tokenizer = tokenizer_class(vocab_file=str(out_dir / "vocab.txt"), do_lower_case=True, model_max_length=512)
    tf.keras.utils.set_random_seed(0)
    if kind == "roberta":
        model = TFRobertaForQuestionAnswering(RobertaConfig(
            vocab_size=VOCAB[kind], max_position_embeddings=514, type_vocab_size=2, pad_token_id=0))
    else:
        model = TFDistilBertForQuestionAnswering(DistilBertConfig(vocab_size=VOCAB[kind]))
    model(dict(tokenizer("Who?", "Nobody.", return_tensors="tf")))
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
