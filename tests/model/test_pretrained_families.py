"""BERT, RoBERTa, DistilBERT and ELECTRA from folders in Hugging Face's layout: each tiny random model
(``tests/hf_models.py``) through our encoder against an independent numpy forward of its architecture,
written below from transformers' model definitions with transformers' tensor names (nothing shared with
``explorer/model``); its tokens against the ``tokenizers`` library's own reading of its files; and every
refusal, each with the names or files involved.
"""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from explorer import pipeline
from explorer.model.bundle import FEATURE_EXTRACTION, MASKED_LM
from explorer.model.inference import InferenceEngine
from explorer.model.pretrained import (
    SUPPORTED_ARCHITECTURES,
    PretrainedUnavailable,
    UnsupportedModel,
    WeightMappingError,
    load_folder,
    loading,
    memory_needed,
)
from explorer.text.pretrained_vocab import BYTE_LEVEL_BPE, WORDPIECE
from tests.hf_models import ARCHITECTURES, SENTENCES, write_model

PREFIXES = {"bert": "bert.", "roberta": "roberta.", "distilbert": "distilbert.", "electra": "electra."}


# ----------------------------------------------------------------------------------------------------
# An independent numpy forward of each architecture, in float64, from its transformers definition.


def _erf_gelu(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


ACT = {
    "gelu": _erf_gelu,
    "gelu_new": lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
    "relu": lambda x: np.maximum(x, 0),
}


def reference(architecture: str, folder, ids: list[int]) -> dict[str, np.ndarray]:
    """Attention ``[L, H, T, T]``, the last hidden states ``[T, D]`` and (with a head) logits ``[T, V]``."""
    hf = json.loads((folder / "config.json").read_text())
    raw = load_file(str(folder / "model.safetensors"))
    prefix = PREFIXES[architecture]
    w = {(k[len(prefix) :] if k.startswith(prefix) else k): v.astype(np.float64) for k, v in raw.items()}
    distil = architecture == "distilbert"
    eps = 1e-12 if distil else hf["layer_norm_eps"]
    heads = hf["n_heads"] if distil else hf["num_attention_heads"]
    act = ACT[hf["activation"] if distil else hf["hidden_act"]]

    def ln(x, name):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + eps) * w[name + ".weight"] + w[name + ".bias"]

    def dense(x, name):  # torch Linear: x W^T + b
        return x @ w[name + ".weight"].T + w[name + ".bias"]

    T = len(ids)
    start = hf["pad_token_id"] + 1 if architecture == "roberta" else 0  # RoBERTa numbers positions after padding
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][start : start + T]
    if not distil:
        x = x + w["embeddings.token_type_embeddings.weight"][0]
    x = ln(x, "embeddings.LayerNorm")
    if "embeddings_project.weight" in w:
        x = dense(x, "embeddings_project")
    D = x.shape[-1]
    K = D // heads
    names = (
        dict(q="attention.q_lin", k="attention.k_lin", v="attention.v_lin", o="attention.out_lin", n1="sa_layer_norm")
        | dict(up="ffn.lin1", down="ffn.lin2", n2="output_layer_norm")
        if distil
        else dict(q="attention.self.query", k="attention.self.key", v="attention.self.value")
        | dict(o="attention.output.dense", n1="attention.output.LayerNorm", up="intermediate.dense")
        | dict(down="output.dense", n2="output.LayerNorm")
    )
    attentions = []
    layer = 0
    while f"{'transformer' if distil else 'encoder'}.layer.{layer}.{names['q']}.weight" in w:
        p = f"{'transformer' if distil else 'encoder'}.layer.{layer}."

        def split(y):
            return y.reshape(T, heads, K).transpose(1, 0, 2)  # [H, T, K]

        q, k, v = (split(dense(x, p + names[n])) for n in ("q", "k", "v"))
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(K)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        attentions.append(probs)
        x = ln(x + dense((probs @ v).transpose(1, 0, 2).reshape(T, D), p + names["o"]), p + names["n1"])
        x = ln(x + dense(act(dense(x, p + names["up"])), p + names["down"]), p + names["n2"])
        layer += 1
    out = {"attention": np.stack(attentions), "hidden": x}
    table = w["embeddings.word_embeddings.weight"]
    heads_of = {
        "bert": ("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm", act),
        "roberta": ("lm_head.dense", "lm_head.layer_norm", ACT["gelu"]),
        "distilbert": ("vocab_transform", "vocab_layer_norm", act),
        "electra": ("generator_predictions.dense", "generator_predictions.LayerNorm", ACT["gelu"]),
    }
    transform, norm, head_act = heads_of[architecture]
    if transform + ".weight" in w:
        h = ln(head_act(dense(x, transform)), norm)
        decoder = {
            "bert": ("cls.predictions.decoder.weight", "cls.predictions.bias"),
            "roberta": ("lm_head.decoder.weight", "lm_head.bias"),
            "distilbert": ("vocab_projector.weight", "vocab_projector.bias"),
            "electra": ("generator_lm_head.weight", "generator_lm_head.bias"),
        }[architecture]
        weight = w.get(decoder[0], table)  # tied unless the file has a decoder of its own
        out["logits"] = h @ weight.T + w[decoder[1]]
    return out


VARIANTS = {
    "masked-LM, tied": dict(head=True, tied=True),
    "masked-LM, untied": dict(head=True, tied=False),
    "base model, no prefix": dict(head=False, prefixed=False),
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    made = {}
    for seed, architecture in enumerate(ARCHITECTURES):
        for variant, options in VARIANTS.items():
            changes = {"hidden_act": "gelu_new"} if architecture == "roberta" and variant.endswith("untied") else {}
            if architecture == "distilbert" and variant.endswith("untied"):
                changes = {"activation": "relu"}
            name = f"{architecture}-{variant.replace(' ', '').replace(',', '-')}"
            made[(architecture, variant)] = write_model(root / name, architecture, seed=seed, **options, **changes)
    return made


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_matches_an_independent_numpy_forward(folders, architecture, variant):
    folder = folders[(architecture, variant)]
    bundle = load_folder(folder)
    engine = InferenceEngine(bundle.config)
    for text in SENTENCES[:3] + ["The cat sat on the [MASK] where [MASK] was."]:
        run = pipeline.run_text(bundle, engine, text)
        expected = reference(architecture, folder, list(run.model_ids))
        np.testing.assert_allclose(run.result.attention_weights, expected["attention"], atol=1e-5)
        np.testing.assert_allclose(run.result.final_hidden, expected["hidden"], atol=1e-4)
        if "logits" in expected:
            np.testing.assert_allclose(run.result.logits, expected["logits"], atol=1e-4)
            probabilities = np.exp(expected["logits"] - expected["logits"].max(-1, keepdims=True))
            probabilities /= probabilities.sum(-1, keepdims=True)
            mine = np.exp(run.result.logits - run.result.logits.max(-1, keepdims=True))
            np.testing.assert_allclose(mine / mine.sum(-1, keepdims=True), probabilities, atol=1e-5)
        else:
            assert run.result.logits.shape == (len(run.model_ids), 0)
    head = VARIANTS[variant]["head"]
    assert bundle.task == (MASKED_LM if head else FEATURE_EXTRACTION) and bundle.fills_masks == head
    assert bundle.config.tie_embeddings == (VARIANTS[variant].get("tied", True))


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_fill_mask_ranks_the_reference_probabilities(folders, architecture):
    folder = folders[(architecture, "masked-LM, tied")]
    bundle = load_folder(folder)
    engine = InferenceEngine(bundle.config)
    text = "She opened the [MASK] and walked into the [MASK]."
    fills = pipeline.fill_mask(bundle, engine, text, k=5)
    prepared = pipeline.prepare_text(bundle, text)
    logits = reference(architecture, folder, list(prepared.model_ids))["logits"]
    assert [fill.position for fill in fills] == prepared.mask_positions and len(fills) == 2
    for fill in fills:
        row = np.exp(logits[fill.position] - logits[fill.position].max())
        row /= row.sum()
        assert list(fill.ids) == list(np.argsort(-row)[:5])
        np.testing.assert_allclose([p for _, p in fill.predictions], np.sort(row)[::-1][:5], atol=1e-5)
        assert [text for text, _ in fill.predictions] == [bundle.vocab.token_text(i) for i in fill.ids]
    # Every position masked in turn (the Tokens and Attention views' predictions) uses the model's mask token.
    meaning, rows = pipeline.position_predictions(bundle, engine, prepared.model_ids, k=1)
    assert "mask" in meaning and len(rows) == len(prepared)
    masked = prepared.model_ids.copy()
    masked[1] = bundle.vocab.mask_id
    top = int(np.argmax(reference(architecture, folder, list(masked))["logits"][1]))
    assert rows[1][0][0] == bundle.vocab.token_text(top)


def test_a_discriminator_is_an_encoder_without_fill_mask(folders):
    bundle = load_folder(folders[("electra", "base model, no prefix")])
    assert not bundle.config.output_head and not bundle.fills_masks
    ignored = bundle.info["ignored tensors"]
    assert (
        "discriminator_predictions.dense.weight" in ignored
        and "replaced-token" in ignored["discriminator_predictions.dense.weight"]
    )
    with pytest.raises(ValueError, match="no prediction head"):
        pipeline.fill_mask(bundle, InferenceEngine(bundle.config), "a [MASK].")


def test_facts_the_views_read(folders):
    bert = load_folder(folders[("bert", "masked-LM, tied")], name="tiny-bert")
    roberta = load_folder(folders[("roberta", "masked-LM, tied")])
    assert (bert.vocab.kind, bert.vocab.mask_text, bert.vocab.special_texts) == (
        WORDPIECE,
        "[MASK]",
        ("[CLS]", "[SEP]"),
    )
    assert (roberta.vocab.kind, roberta.vocab.mask_text, roberta.vocab.special_texts) == (
        BYTE_LEVEL_BPE,
        "<mask>",
        ("<s>", "</s>"),
    )
    assert bert.display_name == "tiny-bert" and bert.vocab.encoding == "tiny-bert WordPiece"
    assert not bert.vocab.closed and roberta.vocab.closed  # byte-level BPE reaches every text
    assert roberta.config.position_offset == 2 and roberta.config.max_len == 32  # 34 rows, 2 before the first position
    ignored = bert.info["ignored tensors"]
    assert ignored["bert.embeddings.position_ids"].startswith("an int buffer")
    assert bert.info["parameters"] == sum(
        v.size
        for k, v in load_file(str(folders[("bert", "masked-LM, tied")] / "model.safetensors")).items()
        if k not in ignored
    )


# ----------------------------------------------------------------------------------------------------
# Tokens: the tokenizers library's own reading of the files, offsets, the mask in both spellings


@pytest.mark.parametrize("architecture", ["bert", "roberta"])
def test_tokens_are_the_tokenizer_files_own(folders, architecture):
    from tokenizers import Tokenizer

    folder = folders[(architecture, "masked-LM, tied")]
    bundle = load_folder(folder)
    own = Tokenizer.from_file(str(folder / "tokenizer.json"))  # with its specials and post-processor
    mask = bundle.vocab.mask_text
    for text in SENTENCES + ["The cat sat on the [MASK].", "[MASK] at the start, two  [MASK]  spaced, end [MASK]"]:
        tokens = bundle.vocab.tokenizer().encode(text, 512)
        assert list(tokens.ids) == own.encode(text.replace("[MASK]", mask)).ids, text
        # The model's own mask token typed works too, and gives the same tokens.
        assert bundle.vocab.tokenizer().encode(text.replace("[MASK]", mask), 512).ids == tokens.ids
        # Byte counts place every piece: they cover the text up to each piece's end, spaces before it included.
        kept = text
        assert sum(tokens.byte_counts) == len(kept.rstrip().encode()), (text, tokens.byte_counts)
    # Special-token strings other than the mask are text, not the special token.
    opening = bundle.vocab.special_texts[0]
    assert bundle.vocab.tokenizer().encode(f"{opening} cat", 512).ids.count(bundle.vocab.tokenizer().cls_id) == 1


def test_byte_counts_end_where_each_piece_ends(folders):
    bundle = load_folder(folders[("roberta", "masked-LM, tied")])
    text = "She opened  the [MASK] 🙂 door."
    tokens = bundle.vocab.tokenizer().encode(text, 512)
    ends = np.cumsum(tokens.byte_counts)
    data = text.encode()
    pieces = tokens.pieces[1:-1]
    for piece, start, end in zip(pieces, ends[:-2], ends[1:-1], strict=True):
        covered = data[start:end].decode("utf-8", errors="replace")
        if piece == "<mask>":
            assert covered == " [MASK]"  # the mask takes the space before it, as RoBERTa's does
        elif covered:
            assert covered.endswith(piece.strip()) or "<0x" in piece or "\ufffd" in covered, (piece, covered)


@pytest.mark.parametrize("architecture", ["bert", "roberta"])
def test_the_older_tokenizer_files_give_the_same_tokens(folders, tmp_path, architecture):
    with_json = load_folder(folders[(architecture, "masked-LM, tied")])
    legacy = write_model(tmp_path / "legacy", architecture, tokenizer="files")
    assert not (legacy / "tokenizer.json").exists()
    files = load_folder(legacy)
    for text in SENTENCES + ["the cat sat on the [MASK]."]:
        assert files.vocab.tokenizer().encode(text, 512).ids == with_json.vocab.tokenizer().encode(text, 512).ids


def test_a_long_text_keeps_its_closing_token(folders):
    bundle = load_folder(folders[("roberta", "masked-LM, tied")])
    tokens = bundle.vocab.tokenizer().encode("The " + " ".join(["the"] * 100), bundle.config.max_len)
    assert len(tokens) == 32 and tokens.truncated and tokens.pieces[0] == "<s>" and tokens.pieces[-1] == "</s>"
    assert tokens.pieces[1:3] == ("The", " the")  # byte-level pieces read as text ("Ġthe" is " the")
    assert tokens.total_tokens == 103 and "103 tokens" in tokens.truncation_message()


# ----------------------------------------------------------------------------------------------------
# Refusals: one sentence each, naming what is wrong


def _copy(folders, tmp_path, architecture="bert"):
    target = tmp_path / architecture
    shutil.copytree(folders[(architecture, "masked-LM, tied")], target)
    return target


def _rewrite_tensors(folder, change):
    tensors = load_file(str(folder / "model.safetensors"))
    change(tensors)
    save_file(tensors, str(folder / "model.safetensors"))


def test_a_pickle_only_folder_is_refused_without_being_opened(folders, tmp_path):
    folder = _copy(folders, tmp_path)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04cos\nsystem\n(S'exit 3'\ntR.")  # a pickle that runs code
    with pytest.raises(UnsupportedModel) as error:
        load_folder(folder)
    message = str(error.value)
    assert "pytorch_model.bin, a pickle, which can run code" in message and "save_pretrained" in message
    assert "safe_serialization=True" in message and "\n" not in message


def test_unknown_missing_and_misshapen_tensors_are_named(folders, tmp_path):
    folder = _copy(folders, tmp_path)

    def damage(tensors):
        tensors["bert.encoder.layer.0.attention.self.rotary.weight"] = np.zeros((16, 16), np.float32)
        del tensors["bert.encoder.layer.1.output.dense.bias"]
        tensors["cls.predictions.transform.dense.weight"] = np.zeros((16, 8), np.float32)

    _rewrite_tensors(folder, damage)
    with pytest.raises(WeightMappingError) as error:
        load_folder(folder)
    message = str(error.value)
    assert "missing: bert.encoder.layer.1.output.dense.bias (for encoder/layer_1/ffn/contract/b)" in message
    assert (
        "unexpected (our encoder has no place for them): bert.encoder.layer.0.attention.self.rotary.weight" in message
    )
    assert (
        "wrong shape: cls.predictions.transform.dense.weight is [16, 8], encoder/head_transform/w needs [16, 16]"
        in message
    )


def test_an_unsupported_model_type_names_the_supported_ones(folders, tmp_path):
    folder = _copy(folders, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    with pytest.raises(
        UnsupportedModel, match="model_type 'gpt2' is not supported; this app runs bert, roberta, distilbert, electra"
    ):
        load_folder(folder)
    assert list(SUPPORTED_ARCHITECTURES) == ["bert", "roberta", "distilbert", "electra"]
    (folder / "config.json").write_text(json.dumps({**config, "position_embedding_type": "relative_key"}))
    with pytest.raises(UnsupportedModel, match="position_embedding_type='relative_key'"):
        load_folder(folder)


def test_a_missing_tokenizer_or_config_is_said(folders, tmp_path):
    folder = _copy(folders, tmp_path)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(PretrainedUnavailable, match="has no tokenizer: it needs tokenizer.json, or vocab.txt"):
        load_folder(folder)
    (folder / "config.json").unlink()
    with pytest.raises(PretrainedUnavailable, match="has no config.json: it is not a Hugging Face model folder"):
        load_folder(folder)
    with pytest.raises(PretrainedUnavailable, match="is not a folder"):
        load_folder(tmp_path / "nowhere")


def test_a_sharded_checkpoint_loads_and_a_shard_outside_the_folder_is_refused(folders, tmp_path):
    folder = _copy(folders, tmp_path)
    tensors = load_file(str(folder / "model.safetensors"))
    names = sorted(tensors)
    halves = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for shard, part in halves.items():
        save_file({n: tensors[n] for n in part}, str(folder / shard))
    index = {"weight_map": {n: shard for shard, part in halves.items() for n in part}}
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    sharded, whole = load_folder(folder), load_folder(folders[("bert", "masked-LM, tied")])
    for module, leaves in whole.params.items():
        for leaf, value in leaves.items():
            np.testing.assert_array_equal(sharded.params[module][leaf], value)
    index["weight_map"][names[0]] = "../elsewhere.safetensors"
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(UnsupportedModel, match="outside the folder"):
        load_folder(folder)


def test_half_precision_weights_are_read_as_float32(folders, tmp_path):
    folder = _copy(folders, tmp_path)
    _rewrite_tensors(
        folder, lambda t: t.update({k: v.astype(np.float16) for k, v in t.items() if v.dtype == np.float32})
    )
    bundle = load_folder(folder)
    assert all(leaf.dtype == np.float32 for leaves in bundle.params.values() for leaf in leaves.values())


def test_the_memory_needed_is_said_first_and_too_much_is_refused(folders, monkeypatch):
    folder = folders[("bert", "masked-LM, tied")]
    said = []
    bundle = load_folder(folder, progress=said.append)
    parameters = sum(v.size for v in load_file(str(folder / "model.safetensors")).values() if v.dtype.kind == "f")
    estimate = memory_needed(bundle.config, parameters)
    assert estimate.weights == 4 * parameters
    assert said[0].endswith(f"{estimate.describe()}.") and said[0].startswith(f"{folder.name}: ")
    # BERT-base: 110M parameters are 418 MiB of float32 weights; at 512 tokens its attention maps alone (scores
    # and weights, [12, 12, 512, 512] each) are 288 MiB, counted three times (the program's buffers, its
    # stacked outputs, the copy read).
    base = memory_needed(
        bundle.config.__class__(
            vocab_size=30522, d_model=768, num_heads=12, num_layers=12, ffn_size=3072, max_len=512, positional="learned"
        ),
        109_482_240,
    )
    assert base.weights == 109_482_240 * 4
    attention_maps = 2 * 12 * 12 * 512 * 512 * 4
    assert 3 * attention_maps < base.activations < 6 * attention_maps  # the maps are most of it
    monkeypatch.setattr(loading, "available_memory", lambda: estimate.total // 2)
    with pytest.raises(UnsupportedModel, match="more than the .* this machine has free"):
        load_folder(folder)
