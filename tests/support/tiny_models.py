"""Tiny, randomly initialised extractive-QA checkpoints built offline for the tests.

Tests may not download anything, yet the engine must be exercised on each tokenizer family
and each TF question-answering architecture it supports (uncased and cased WordPiece,
byte-level BPE with its offset quirks, SentencePiece-style Unigram with Metaspace offsets;
absolute, relative, rotary and funnel-pooled positions; embeddings narrower than the hidden
size). So the repo trains a small vocabulary on `tests/data/corpus.txt` and saves a 2-layer
model with `save_pretrained`, exactly as a real checkpoint is laid out on disk, so that the
code under test loads it through the same `from_pretrained` path as a hub model.

Weights are drawn from NumPy with the given seed rather than from TensorFlow's initialisers,
so the same seed gives the same bytes whatever TensorFlow's global RNG state is.
"""
from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tests.support import ROOT

CORPUS = ROOT / "tests" / "data" / "corpus.txt"

HIDDEN = 32
LAYERS = 2
HEADS = 2
INTERMEDIATE = 64
MAX_POSITIONS = 512
TOKENIZER_MAX_LENGTH = 512  # so the QA pipeline uses max_seq_len 384 (tests may shrink MAX_POSITIONS alone)
WORDPIECE_VOCAB = 1500
BPE_VOCAB = 1000
UNIGRAM_VOCAB = 1000  # an upper bound: the corpus supports about 750 pieces
# Narrower than HIDDEN for the architectures that project their embeddings (ALBERT, ELECTRA,
# MobileBERT, RemBERT), so the gradient is taken in the embedding space, not the hidden one.
EMBEDDING = 16
# Scale of the QA head's weights: with hidden states of unit variance after the last layer
# norm this gives start/end logits with a standard deviation of about 2.8, so the softmax is
# peaked and span scores differ by far more than the tests' 1e-4 score tolerance (the default
# 0.02 would make every probability about 1/seq_len and score comparisons vacuous).
QA_HEAD_STD = 0.5
INIT_STD = 0.02
# MobileBERT normalises with NoNorm (an elementwise affine map, not a layer norm), so its last
# hidden states are far from unit variance: its QA head is scaled to give the same spread.
QA_HEAD_STD_OF = {"mobilebert": 15.0}

BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
ROBERTA_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


def _corpus_lines() -> list[str]:
    return [line for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]


def wordpiece_vocab(lowercase: bool, specials: tuple[str, ...] = BERT_SPECIALS) -> list[str]:
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
    return list(specials) + pieces + [f"##{piece}" for piece in pieces]


def _wordpiece(cls_name: str, lowercase: bool, specials: tuple[str, ...] = BERT_SPECIALS) -> Callable[[Path], Any]:
    """A builder of the WordPiece fast tokenizer class `cls_name` on the corpus vocabulary
    (converted from the vocabulary file by transformers, as for a real checkpoint)."""
    def build(work: Path) -> Any:
        import transformers

        (work / "vocab.txt").write_text("\n".join(wordpiece_vocab(lowercase, specials)) + "\n", encoding="utf-8")
        cls = getattr(transformers, cls_name)
        return cls(vocab_file=str(work / "vocab.txt"), do_lower_case=lowercase, model_max_length=TOKENIZER_MAX_LENGTH)

    return build


def _byte_bpe(cls_name: str, specials: tuple[str, ...] = ROBERTA_SPECIALS, **options: Any) -> Callable[[Path], Any]:
    """A builder of the byte-level BPE fast tokenizer class `cls_name` (RoBERTa's family:
    offsets of pieces that carry the leading space, pieces of pure whitespace)."""
    def build(work: Path) -> Any:
        import transformers
        from tokenizers import ByteLevelBPETokenizer

        trainer = ByteLevelBPETokenizer()
        trainer.train_from_iterator(
            _corpus_lines(), vocab_size=BPE_VOCAB, min_frequency=1, special_tokens=list(specials), show_progress=False
        )
        trainer.save_model(str(work))
        cls = getattr(transformers, cls_name)
        return cls(vocab_file=str(work / "vocab.json"), merges_file=str(work / "merges.txt"),
                   model_max_length=TOKENIZER_MAX_LENGTH, **options)

    return build


def _unigram_pieces(specials: tuple[str, ...], normalizer: Any, pre_tokenizer: Any) -> list[tuple[str, float]]:
    """SentencePiece-style Unigram pieces learnt from the corpus, the same in every process.

    The trainer's scores differ in their last digits from run to run (parallel sums), and
    single characters get scores in hash-map order; so scores are rounded and single
    characters share one score, below every longer piece's.
    """
    from tokenizers import Tokenizer, models, trainers

    unigram = Tokenizer(models.Unigram())
    unigram.normalizer = normalizer
    unigram.pre_tokenizer = pre_tokenizer
    unigram.train_from_iterator(_corpus_lines(), trainers.UnigramTrainer(
        vocab_size=UNIGRAM_VOCAB, special_tokens=list(specials), unk_token="<unk>", show_progress=False))
    learnt = [(piece, score) for piece, score in json.loads(unigram.to_str())["model"]["vocab"]
              if piece not in specials]
    floor = float(np.floor(min(score for piece, score in learnt if len(piece) > 1))) - 1.0
    return [(piece, 0.0) for piece in specials] + sorted(
        ((piece, round(score, 6) if len(piece) > 1 else floor) for piece, score in learnt),
        key=lambda item: (-item[1], item[0]))


def _sentencepiece(cls_name: str, specials: tuple[str, ...], template: tuple[str, str], *, lowercase: bool = False,
                   strip_accents: bool = False, squeeze_spaces: str = " ", **options: Any) -> Callable[[Path], Any]:
    """A builder of a SentencePiece-style fast tokenizer: what transformers' converter makes of
    a `spiece.model` (`convert_slow_tokenizer.py`): the model's normaliser (quotes, accents,
    case, runs of spaces), NFKC in place of SentencePiece's precompiled nmt_nfkc map,
    Metaspace ("▁") pieces and the model's special-token template (`single`, `pair`)."""
    def build(work: Path) -> Any:
        import transformers
        from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

        steps = [normalizers.Replace("``", '"'), normalizers.Replace("''", '"')]
        if strip_accents:
            steps += [normalizers.NFKD(), normalizers.StripAccents()]
        if lowercase:
            steps.append(normalizers.Lowercase())
        steps += [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), squeeze_spaces)]
        normalizer = normalizers.Sequence(steps)
        pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        pieces = _unigram_pieces(specials, normalizer, pre_tokenizer)
        tokenizer = Tokenizer(models.Unigram(pieces, unk_id=specials.index("<unk>"), byte_fallback=False))
        tokenizer.normalizer = normalizer
        tokenizer.pre_tokenizer = pre_tokenizer
        tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
        vocab = tokenizer.get_vocab()
        named = {token for part in template for token in part.split() if not token.startswith("$")}
        tokenizer.post_processor = processors.TemplateProcessing(
            single=template[0], pair=template[1],
            special_tokens=[(name.split(":")[0], vocab[name.split(":")[0]]) for name in sorted(named)],
        )
        cls = getattr(transformers, cls_name)
        return cls(tokenizer_object=tokenizer, model_max_length=TOKENIZER_MAX_LENGTH, do_lower_case=lowercase,
                   **options)

    return build


_BERT_TEMPLATE = ("[CLS]:0 $A:0 [SEP]:0", "[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1")
_ROBERTA_TEMPLATE = ("<s> $A </s>", "<s> $A </s> </s> $B </s>")
_SENTENCEPIECE_BERT = ("<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]")
_CAMEMBERT_SPECIALS = ("<s>NOTUSED", "<pad>", "</s>NOTUSED", "<unk>", "<unk>NOTUSED", "<s>", "</s>", "<mask>")


def _size(**config: Any) -> dict[str, Any]:
    """The BERT-style size arguments every encoder config here shares, with `config` on top."""
    return dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                intermediate_size=INTERMEDIATE, max_position_embeddings=MAX_POSITIONS) | config


def _roberta_positions(tokenizer: Any) -> dict[str, Any]:
    """RoBERTa numbers positions from padding_idx + 1, so 512 tokens need 514 position rows."""
    return dict(max_position_embeddings=MAX_POSITIONS + 2, pad_token_id=tokenizer.pad_token_id,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)


# kind -> (tokenizer builder, model type, config arguments from the tokenizer). Every kind is
# a TF question-answering architecture of transformers 4.x that the engine answers with.
_KINDS: dict[str, tuple[Callable[[Path], Any], str, Callable[[Any], dict[str, Any]]]] = {
    "bert": (_wordpiece("BertTokenizerFast", lowercase=True), "bert", lambda tok: _size()),
    "distilbert": (_wordpiece("DistilBertTokenizerFast", lowercase=False), "distilbert", lambda tok: dict(
        dim=HIDDEN, n_layers=LAYERS, n_heads=HEADS, hidden_dim=INTERMEDIATE, max_position_embeddings=MAX_POSITIONS)),
    "roberta": (_byte_bpe("RobertaTokenizerFast"), "roberta", lambda tok: _size(
        max_position_embeddings=MAX_POSITIONS + 2, type_vocab_size=1, pad_token_id=1, bos_token_id=0,
        eos_token_id=2)),
    "albert": (_sentencepiece("AlbertTokenizerFast", _SENTENCEPIECE_BERT, _BERT_TEMPLATE, lowercase=True,
                              strip_accents=True), "albert", lambda tok: _size(embedding_size=EMBEDDING)),
    "camembert": (_sentencepiece("CamembertTokenizerFast", _CAMEMBERT_SPECIALS, _ROBERTA_TEMPLATE,
                                 squeeze_spaces="▁"), "camembert",
                  lambda tok: _size(type_vocab_size=1, **_roberta_positions(tok))),
    "convbert": (_wordpiece("ConvBertTokenizerFast", lowercase=True), "convbert",
                 lambda tok: _size(embedding_size=HIDDEN, head_ratio=2, conv_kernel_size=3)),
    "deberta": (_byte_bpe("DebertaTokenizerFast", ("[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]")), "deberta",
                lambda tok: _size(type_vocab_size=0, relative_attention=True, position_biased_input=False,
                                  max_relative_positions=-1, pos_att_type=["c2p", "p2c"], pad_token_id=0)),
    "deberta-v2": (_sentencepiece("DebertaV2TokenizerFast", ("[PAD]", "[CLS]", "[SEP]", "<unk>", "[MASK]"),
                                  _BERT_TEMPLATE, unk_token="<unk>"), "deberta-v2",
                   lambda tok: _size(type_vocab_size=0, relative_attention=True, position_biased_input=False,
                                     max_relative_positions=-1, pos_att_type=["p2c", "c2p"], position_buckets=64,
                                     norm_rel_ebd="layer_norm", share_att_key=True, pad_token_id=0)),
    "electra": (_wordpiece("ElectraTokenizerFast", lowercase=True), "electra",
                lambda tok: _size(embedding_size=EMBEDDING)),
    "funnel": (_wordpiece("FunnelTokenizerFast", lowercase=True,
                          specials=("<pad>", "<unk>", "<cls>", "<sep>", "<mask>", "<s>", "</s>")), "funnel",
               lambda tok: dict(block_sizes=[1, 1], num_decoder_layers=1, d_model=HIDDEN, n_head=HEADS,
                                d_head=HIDDEN // HEADS, d_inner=INTERMEDIATE)),
    "longformer": (_byte_bpe("LongformerTokenizerFast"), "longformer", lambda tok: _size(
        attention_window=16, sep_token_id=tok.sep_token_id, type_vocab_size=1, **_roberta_positions(tok))),
    "mobilebert": (_wordpiece("MobileBertTokenizerFast", lowercase=True), "mobilebert", lambda tok: _size(
        embedding_size=EMBEDDING, intra_bottleneck_size=EMBEDDING, true_hidden_size=EMBEDDING,
        num_feedforward_networks=1)),
    "mpnet": (_wordpiece("MPNetTokenizerFast", lowercase=True, specials=("<s>", "<pad>", "</s>", "[UNK]", "<mask>")),
              "mpnet", lambda tok: _size(relative_attention_num_buckets=32, **_roberta_positions(tok))),
    "rembert": (_sentencepiece("RemBertTokenizerFast", _SENTENCEPIECE_BERT, _BERT_TEMPLATE, keep_accents=True),
                "rembert", lambda tok: _size(input_embedding_size=EMBEDDING, output_embedding_size=EMBEDDING,
                                             pad_token_id=tok.pad_token_id)),
    "roberta-prelayernorm": (_byte_bpe("RobertaTokenizerFast"), "roberta-prelayernorm",
                             lambda tok: _size(type_vocab_size=1, **_roberta_positions(tok))),
    # RoFormerTokenizerFast segments Chinese with rjieba, which is not installed: RoFormer is
    # tested with the BERT WordPiece tokenizer (its rotary positions are what is new here).
    "roformer": (_wordpiece("BertTokenizerFast", lowercase=True), "roformer",
                 lambda tok: _size(embedding_size=HIDDEN)),
    "xlm-roberta": (_sentencepiece("XLMRobertaTokenizerFast", ROBERTA_SPECIALS, _ROBERTA_TEMPLATE,
                                   squeeze_spaces="▁"), "xlm-roberta",
                    lambda tok: _size(type_vocab_size=1, **_roberta_positions(tok))),
    # The question comes after the passage (padding side left) and <cls> is the last token.
    "xlnet": (_sentencepiece("XLNetTokenizerFast",
                             ("<unk>", "<s>", "</s>", "<cls>", "<sep>", "<pad>", "<mask>", "<eod>", "<eop>"),
                             ("$A:0 <sep>:0 <cls>:2", "$A:0 <sep>:0 $B:1 <sep>:1 <cls>:2"), strip_accents=True),
              "xlnet", lambda tok: dict(d_model=HIDDEN, n_layer=LAYERS, n_head=HEADS, d_inner=INTERMEDIATE,
                                        pad_token_id=tok.pad_token_id)),
    # A decoder-only model with a QA head: GPT-2's byte-level BPE, no [CLS], no padding token.
    "gptj": (_byte_bpe("GPT2TokenizerFast", ("<|endoftext|>",)), "gptj", lambda tok: dict(
        n_positions=MAX_POSITIONS, n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, rotary_dim=HIDDEN // HEADS // 2,
        n_inner=INTERMEDIATE)),
}
KINDS = tuple(_KINDS)


def _model(kind: str, tokenizer: Any):
    """The TF QA model of `kind`, built from a config (no checkpoint) through the auto class."""
    from transformers import AutoConfig, TFAutoModelForQuestionAnswering

    _, model_type, arguments = _KINDS[kind]
    config = AutoConfig.for_model(model_type, vocab_size=len(tokenizer), **arguments(tokenizer))
    return TFAutoModelForQuestionAnswering.from_config(config)


def _is_norm(name: str) -> bool:
    """Whether a weight belongs to a normalisation layer (kept at identity when seeding), by the
    name of the layer that holds it (".../LayerNorm/gamma:0", ".../output_layer_norm/beta:0",
    GPT-J's ".../ln_f/gamma:0"), not by its scopes ("roberta_prelayernorm/...")."""
    layer = name.split("/")[-2] if "/" in name else ""
    return layer.endswith(("layernorm", "layer_norm")) or layer.startswith("ln_")


def _seed_weights(model, seed: int, head_std: float = QA_HEAD_STD) -> None:
    """Overwrite every weight from a seeded NumPy RNG (layer norms stay at identity)."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        name = weight.name.lower()
        shape = tuple(weight.shape)
        if _is_norm(name):
            continue
        if "qa_outputs" in name and "kernel" in name:
            value = rng.normal(0.0, head_std, shape)
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
        tokenizer = _KINDS[kind][0](Path(tmp))
    model = _model(kind, tokenizer)
    dummy = tokenizer("What is it?", "It is a tiny model.", return_tensors="tf")
    model(dict(dummy))
    _seed_weights(model, seed, QA_HEAD_STD_OF.get(kind, QA_HEAD_STD))
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
