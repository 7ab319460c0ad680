"""Tiny random models of the BERT family, written as Hugging Face lays them out, for the tests.

Each architecture's folder holds a ``config.json`` with the keys transformers writes, random tensors under
transformers' names and layouts (a torch Linear's weight is ``[out, in]``) in ``model.safetensors``, and a
tokenizer built with the ``tokenizers`` library: WordPiece (BERT, DistilBERT, ELECTRA) or byte-level BPE
(RoBERTa), as ``tokenizer.json`` or as the older ``vocab.txt`` / ``vocab.json`` + ``merges.txt``. Nothing is
downloaded and nothing large is written. The names here are written out from transformers' model
definitions, independently of ``explorer/model/pretrained``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

ARCHITECTURES = ("bert", "roberta", "distilbert", "electra")
D, F, H, L, E = 16, 24, 2, 2, 8  # width, feed-forward, heads, layers, ELECTRA's embedding width
POSITIONS = 32
WORDS = (
    "the a cat dog sat on mat door opened she he walked into room where her father was waiting and of to in is "
    "it that for with as his at by from they this had not are but be have were one all their there been has when "
    "who will more no if out so said what up its about than them can only other new some could time these two may"
).split()
SENTENCES = [
    "The cat sat on the mat.",
    "She opened the door and walked into the room where her father was waiting.",
    "A dog, two cats and one bird were there when they came in.",
    "Unbelievable things happen: it is 42% more than the time before!",
    "Café au lait, naïve résumé; emoji 🙂 and CJK 漢字.",
]


def wordpiece_tokenizer(folder: Path, form: str = "json", lowercase: bool = True) -> int:
    """A WordPiece tokenizer (BERT's pipeline: Bert normaliser and pre-tokeniser, ``##`` continuations)
    written into ``folder`` as ``tokenizer.json`` (``form="json"``) or ``vocab.txt``; returns its size."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = sorted(set("abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'\"%-()"))
    pieces = [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"] + ["##ing", "##ed", "##s", "##able"]
    vocab = list(dict.fromkeys(specials + chars + WORDS + pieces))  # each token once
    if form == "vocab.txt":
        (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
        (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": lowercase}))
        return len(vocab)
    tokenizer = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.add_special_tokens(specials)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer.save(str(folder / "tokenizer.json"))
    return len(vocab)


def bpe_tokenizer(folder: Path, form: str = "json") -> int:
    """A byte-level BPE tokenizer (RoBERTa's pipeline, ``<mask>`` taking the spaces before it), trained on a
    few sentences, written as ``tokenizer.json`` or ``vocab.json`` + ``merges.txt``; returns its size."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(SENTENCES * 3 + [" ".join(WORDS)], trainer)
    if form == "vocab.json":
        tokenizer.model.save(str(folder))  # vocab.json and merges.txt
        return tokenizer.get_vocab_size()
    tokenizer.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=False)])
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    return tokenizer.get_vocab_size()


def hf_config(architecture: str, vocab_size: int, **changes) -> dict:
    """``config.json`` as transformers writes it for a tiny model of ``architecture``."""
    common = dict(vocab_size=vocab_size, initializer_range=0.02, tie_word_embeddings=True, torch_dtype="float32")
    bert_like = dict(
        hidden_size=D,
        num_hidden_layers=L,
        num_attention_heads=H,
        intermediate_size=F,
        hidden_act="gelu",
        max_position_embeddings=POSITIONS,
        type_vocab_size=2,
        layer_norm_eps=1e-12,
        pad_token_id=0,
        position_embedding_type="absolute",
    )
    configs = {
        "bert": dict(model_type="bert", architectures=["BertForMaskedLM"], **bert_like),
        "roberta": dict(
            model_type="roberta",
            architectures=["RobertaForMaskedLM"],
            **{**bert_like, "max_position_embeddings": POSITIONS + 2, "type_vocab_size": 1, "pad_token_id": 1},
            bos_token_id=0,
            eos_token_id=2,
        ),
        "distilbert": dict(
            model_type="distilbert",
            architectures=["DistilBertForMaskedLM"],
            dim=D,
            n_heads=H,
            n_layers=L,
            hidden_dim=F,
            activation="gelu",
            max_position_embeddings=POSITIONS,
            sinusoidal_pos_embds=False,
            pad_token_id=0,
        ),
        "electra": dict(model_type="electra", architectures=["ElectraForMaskedLM"], embedding_size=E, **bert_like),
    }
    return {**configs[architecture], **common, **changes}


def hf_tensors(
    architecture: str, config: dict, head: bool = True, prefixed: bool = True, tied: bool = True, seed: int = 0
) -> dict[str, np.ndarray]:
    """Random tensors under transformers' names: ``*ForMaskedLM`` (``head``, body ``prefixed``) or the base
    model (``head=False``), with the decoder tied to the word embeddings or a weight of its own."""
    rng = np.random.default_rng(seed)
    V = config["vocab_size"]

    def r(*shape, scale=0.3):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def norm(name, width):
        return {f"{name}.weight": 1 + r(width, scale=0.1), f"{name}.bias": r(width, scale=0.1)}

    def dense(name, fan_out, fan_in):
        return {f"{name}.weight": r(fan_out, fan_in), f"{name}.bias": r(fan_out, scale=0.1)}

    body: dict[str, np.ndarray] = {}
    out: dict[str, np.ndarray] = {}
    if architecture == "distilbert":
        body["embeddings.word_embeddings.weight"] = r(V, D)
        body["embeddings.position_embeddings.weight"] = r(POSITIONS, D)
        body.update(norm("embeddings.LayerNorm", D))
        for i in range(L):
            p = f"transformer.layer.{i}."
            for name in ("q_lin", "k_lin", "v_lin", "out_lin"):
                body.update(dense(p + "attention." + name, D, D))
            body.update(norm(p + "sa_layer_norm", D))
            body.update(dense(p + "ffn.lin1", F, D))
            body.update(dense(p + "ffn.lin2", D, F))
            body.update(norm(p + "output_layer_norm", D))
        if head:
            out.update(dense("vocab_transform", D, D))
            out.update(norm("vocab_layer_norm", D))
            out["vocab_projector.bias"] = r(V, scale=0.1)
            if not tied:
                out["vocab_projector.weight"] = r(V, D)
        prefix = "distilbert."
    else:
        width = E if architecture == "electra" else D
        positions = config["max_position_embeddings"]
        body["embeddings.word_embeddings.weight"] = r(V, width)
        body["embeddings.position_embeddings.weight"] = r(positions, width)
        body["embeddings.token_type_embeddings.weight"] = r(config["type_vocab_size"], width)
        body.update(norm("embeddings.LayerNorm", width))
        body["embeddings.position_ids"] = np.arange(positions, dtype=np.int64)[None]  # a buffer some files keep
        if architecture == "electra":
            body.update(dense("embeddings_project", D, E))
        for i in range(L):
            p = f"encoder.layer.{i}."
            for name in ("query", "key", "value"):
                body.update(dense(p + "attention.self." + name, D, D))
            body.update(dense(p + "attention.output.dense", D, D))
            body.update(norm(p + "attention.output.LayerNorm", D))
            body.update(dense(p + "intermediate.dense", F, D))
            body.update(dense(p + "output.dense", D, F))
            body.update(norm(p + "output.LayerNorm", D))
        prefix = f"{architecture}."
        if not head and architecture != "electra":
            body.update(dense("pooler.dense", D, D))  # a base model's pooler, which we read past
        if head and architecture == "bert":
            out.update(dense("cls.predictions.transform.dense", D, D))
            out.update(norm("cls.predictions.transform.LayerNorm", D))
            out["cls.predictions.bias"] = r(V, scale=0.1)
            if not tied:
                out["cls.predictions.decoder.weight"] = r(V, D)
                out["cls.predictions.decoder.bias"] = out["cls.predictions.bias"].copy()
        if head and architecture == "roberta":
            out.update(dense("lm_head.dense", D, D))
            out.update(norm("lm_head.layer_norm", D))
            out["lm_head.bias"] = r(V, scale=0.1)
            if not tied:
                out["lm_head.decoder.weight"] = r(V, D)
                out["lm_head.decoder.bias"] = out["lm_head.bias"].copy()
        if head and architecture == "electra":
            out.update(dense("generator_predictions.dense", E, D))
            out.update(norm("generator_predictions.LayerNorm", E))
            out["generator_lm_head.bias"] = r(V, scale=0.1)
            if not tied:
                out["generator_lm_head.weight"] = r(V, E)
        if not head and architecture == "electra":  # a discriminator (ElectraForPreTraining)
            out.update(dense("discriminator_predictions.dense", D, D))
            out.update(dense("discriminator_predictions.dense_prediction", 1, D))
    if prefixed:
        body = {prefix + name: value for name, value in body.items()}
    return {**body, **out}


def write_model(
    folder: Path,
    architecture: str,
    head: bool = True,
    prefixed: bool = True,
    tied: bool = True,
    tokenizer: str = "json",
    seed: int = 0,
    **config_changes,
) -> Path:
    """A complete tiny model folder of ``architecture``; returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    if architecture == "roberta":
        size = bpe_tokenizer(folder, "vocab.json" if tokenizer != "json" else "json")
    else:
        size = wordpiece_tokenizer(folder, "vocab.txt" if tokenizer != "json" else "json")
    if not tied:
        config_changes.setdefault("tie_word_embeddings", False)
    config = hf_config(architecture, size, **config_changes)
    if not head:
        config["architectures"] = [
            {"bert": "BertModel", "roberta": "RobertaModel", "distilbert": "DistilBertModel"}.get(
                architecture, "ElectraForPreTraining"
            )
        ]
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    save_file(hf_tensors(architecture, config, head, prefixed, tied, seed), str(folder / "model.safetensors"))
    return folder


def hub_cache(root: Path, repo_id: str, source: Path, commit: str = "0123456789abcdef0123456789abcdef01234567") -> Path:
    """``source``'s files laid out as huggingface_hub keeps a download in ``root`` (``$HF_HOME/hub``):
    ``models--ORG--NAME/blobs/<hash>``, ``snapshots/<commit>/<file>`` symlinks to the blobs, ``refs/main``."""
    import hashlib

    repo = root / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for path in sorted(source.iterdir()):
        data = path.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / path.name).symlink_to(Path("..", "..", "blobs", blob.name))
    return snapshot
