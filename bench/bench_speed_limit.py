"""A BERT-base-sized forward with every attention map: ours against Hugging Face ``transformers`` eager.

.venv/bin/python bench/bench_speed_limit.py [--hf-python /path/to/python] [--baseline [NAME=]REPO]
    [--variant NAME:VAR=VALUE,...] [--lengths 32,128,512] [--rounds N] [--breakdown T] [--json]

Every participant runs in a worker process of its own and the rounds take turns between them (the order
rotating each round), so the shared machine's drift hits them alike:

* ``ours``: this checkout's ``InferenceEngine`` at batch 1, timed twice: ``device`` (the compiled forward,
  waited for) and ``host`` (``engine.run``: the forward, every intermediate copied to numpy and sliced to
  the text's length, which is what the app and the CLI call);
* ``baseline`` (``--baseline [NAME=]REPO``, repeatable): the same in another checkout, e.g. ``/work/main``,
  for before/after;
* each ``--variant NAME:VAR=VALUE,...``: ours with those environment variables (``EXPLORER_CPU_DEVICES=1``,
  ``XLA_FLAGS=...``), to compare settings that can only be chosen before a process starts;
* ``hf``: ``transformers.BertModel`` eager (``attn_implementation="eager"``, ``output_attentions=True``,
  ``torch.no_grad()``, as many torch threads as we have cores), run by the Python given with
  ``--hf-python`` (a separate environment: ``torch`` and ``transformers`` are not dependencies of this
  project). Without it, or when that Python cannot import them, the table says so and only ours runs.

Weights: with ``transformers`` available, one random BERT-base (12 layers, 12 heads, width 768, FFN 3072,
vocabulary 30522, 512 positions, 2 token types) is written once with ``save_pretrained`` into a
temporary folder, and every participant loads that folder (ours through ``explorer.model.pretrained``'s
name mapping), so all compute the same function: the report shows the largest difference between our
attention weights and Hugging Face's at 32 tokens. Without it, ours uses ``init_params`` of the same
config.

Reported per length: median and best wall ms per forward, process CPU ms per forward (all threads; on a
loaded machine CPU time moves far less than wall time), the forward's matmul GFLOP/s, and speed relative
to Hugging Face (its ms / ours: above 1 is faster than it), from medians and as the median of per-round
ratios. The machine's own fp32 matmul rate (1024x1024 by 1024x1024 with ``jnp.dot`` and numpy in our
worker, ``torch.mm`` in Hugging Face's) is measured in every round of the same run. ``--breakdown T``
adds XLA's profile of our forward at T tokens: time per kind of operation against its FLOPs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# BERT-base as Hugging Face's BertConfig spells it.
BERT_BASE = dict(
    vocab_size=30522,
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    max_position_embeddings=512,
    type_vocab_size=2,
    layer_norm_eps=1e-12,
    hidden_act="gelu",
)
MATMUL = 1024  # the machine's matmul rate: an N x N by N x N product


def forward_flops(tokens: int, layers: int, width: int, ffn: int) -> float:
    """Multiply-adds x 2 of one encoder forward at batch 1: the products, nothing else (the softmax,
    layer norms and GELU are a fraction of a percent of it)."""
    per_layer = (
        2 * tokens * width * 3 * width  # query, key, value
        + 2 * tokens * width * width  # attention output
        + 2 * 2 * tokens * width * ffn  # feed-forward, both products
        + 2 * 2 * tokens * tokens * width  # q.k and weights.v over all heads
    )
    return float(layers * per_layer)


# --------------------------------------------------------------------------------------------- workers


def _reply(obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _timed(call, calls: int) -> dict:
    """Wall and process-CPU milliseconds of each of ``calls`` calls."""
    wall, cpu = [], []
    for _ in range(calls):
        c0, t0 = time.process_time(), time.perf_counter()
        call()
        wall.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    return {"wall": wall, "cpu": cpu}


def _serve(handlers: dict) -> None:
    _reply({"ready": True})
    for line in sys.stdin:
        command = json.loads(line)
        try:
            _reply(handlers[command.pop("op")](**command))
        except Exception as error:  # the parent prints it and stops
            _reply({"error": f"{type(error).__name__}: {error}"})


def worker_ours(folder: str | None) -> None:
    """Our engine on the weights in ``folder`` (a Hugging Face BERT folder), or on random BERT-base ones."""
    sys.path.insert(0, os.getcwd())  # the checkout under test (the parent starts us there)
    import jax
    import jax.numpy as jnp
    import numpy as np

    from explorer.model.inference import InferenceEngine, use_synchronous_dispatch

    use_synchronous_dispatch()  # as the app and the CLI run
    if folder:
        from safetensors.numpy import load_file

        from explorer.model import pretrained

        config = pretrained.config_from_bert(json.loads(Path(folder, "config.json").read_text()))
        params = pretrained.params_from_bert(load_file(str(Path(folder, "model.safetensors"))), config)
    else:
        from explorer.model.config import ModelConfig
        from explorer.model.encoder import init_params

        config = ModelConfig(
            vocab_size=BERT_BASE["vocab_size"],
            d_model=BERT_BASE["hidden_size"],
            num_heads=BERT_BASE["num_attention_heads"],
            num_layers=BERT_BASE["num_hidden_layers"],
            ffn_size=BERT_BASE["intermediate_size"],
            max_len=BERT_BASE["max_position_embeddings"],
            positional="learned",
            scale_embeddings=False,
            token_types=BERT_BASE["type_vocab_size"],
            embedding_norm=True,
            layer_norm_eps=BERT_BASE["layer_norm_eps"],
            output_head=False,
        )
        params = init_params(config)
    params = jax.device_put(params)
    engine = InferenceEngine(config)
    state: dict = {}
    square = jnp.asarray(np.random.default_rng(0).random((MATMUL, MATMUL), np.float32))
    square_np = np.asarray(square)
    matmul = jax.jit(lambda a, b: a @ b)

    def prepare(tokens: int):
        ids = (np.arange(tokens) % (config.vocab_size - 1000) + 1000).astype(np.int32)
        args = (
            params,
            jnp.asarray(ids[None]),
            jnp.ones((1, tokens), bool),
            jnp.asarray(engine.default_head_mask()),
            jnp.asarray(False),
        )
        engine.warmup(params, (tokens,))
        state.update(ids=ids, args=args)
        jax.block_until_ready(engine._forward(*args))
        return {"devices": len(jax.devices()), "traces": engine.stats.traces}

    def forward(mode: str, calls: int):
        if mode == "device":
            return _timed(lambda: jax.block_until_ready(engine._forward(*state["args"])), calls)
        return _timed(lambda: engine.run(params, state["ids"]), calls)

    def rate(calls: int):
        jax.block_until_ready(matmul(square, square))
        return {
            "jnp": _timed(lambda: jax.block_until_ready(matmul(square, square)), calls),
            "numpy": _timed(lambda: square_np @ square_np, calls),
        }

    def attention(tokens: int):
        return {"weights": engine.run(params, state["ids"][:tokens]).attention_weights.tolist()}  # [L, H, T, T]

    def breakdown(tokens: int, calls: int):
        prepare(tokens)
        return xla_breakdown(engine, state["args"], tokens, calls)

    _serve({"prepare": prepare, "forward": forward, "rate": rate, "attention": attention, "breakdown": breakdown})


def worker_hf(folder: str, threads: int) -> None:
    """Hugging Face ``BertModel`` eager on ``folder``, answering the same commands as ``worker_ours``."""
    import torch
    from transformers import BertModel

    torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    model = BertModel.from_pretrained(folder, attn_implementation="eager").eval()
    vocab = model.config.vocab_size
    state: dict = {}
    square = torch.rand(MATMUL, MATMUL, generator=torch.Generator().manual_seed(0))

    def prepare(tokens: int):
        ids = (torch.arange(tokens) % (vocab - 1000) + 1000)[None]
        state.update(ids=ids, mask=torch.ones(1, tokens, dtype=torch.long))
        for _ in range(2):
            run()
        return {"threads": torch.get_num_threads(), "torch": torch.__version__}

    def run():
        return model(input_ids=state["ids"], attention_mask=state["mask"], output_attentions=True)

    def forward(mode: str, calls: int):
        return _timed(run, calls)

    def rate(calls: int):
        return {"torch": _timed(lambda: square @ square, calls)}

    def attention(tokens: int):
        out = model(
            input_ids=state["ids"][:, :tokens], attention_mask=state["mask"][:, :tokens], output_attentions=True
        )
        return {"weights": torch.stack(out.attentions)[:, 0].tolist()}  # [L, H, T, T]

    _serve({"prepare": prepare, "forward": forward, "rate": rate, "attention": attention})


def make_weights(folder: str) -> None:
    """A random BERT-base written with Hugging Face's own ``save_pretrained`` (run by ``--hf-python``)."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    BertModel(BertConfig(**BERT_BASE), add_pooling_layer=False).save_pretrained(folder)


# ------------------------------------------------------------------------------------- XLA breakdown


def _classify(hlo: str, tokens: int, width: int) -> dict[str, tuple[str, float]]:
    """Each instruction of the compiled program's entry computation -> (kind of work, matmul FLOPs)."""
    import numpy as np

    bodies = {m.group(1): m.group(2) for m in re.finditer(r"^(?:ENTRY )?%(\S+) .*?\{\n(.*?)\n\}", hlo, re.S | re.M)}
    entry = next(name for name in bodies if name.startswith("main"))
    kinds = {}
    for line in bodies[entry].splitlines():
        match = re.match(r"\s*(?:ROOT )?%(\S+) = \S+? (?:\{[^}]*\} )?([\w-]+)\(", line)
        if not match:
            continue
        name, op = match.groups()
        where = (re.search(r'op_name="([^"]+)"', line) or [None, ""])[1]
        body = bodies.get((re.search(r"calls=%([^,\s]+)", line) or [None, ""])[1], "")
        flops = 0.0
        if op == "fusion" and " dot(" in body:
            shapes = {
                int(i): [int(x) for x in s.split(",")]
                for s, i in re.findall(r"f32\[([\d,]*)\]\S* parameter\((\d)\)", body)
            }
            out = [int(x) for x in re.search(r"ROOT \S+ = f32\[([\d,]*)\]", body).group(1).split(",")]
            contracting = int(re.search(r"lhs_contracting_dims=\{(\d)\}", body).group(1))
            flops = 2.0 * float(np.prod(out)) * shapes[0][contracting]
            if "ffn" in where:
                kind = "matmul: feed-forward"
            elif len(out) >= 3 and out[-1] == tokens and "attention" in where:
                kind = "matmul: attention q.k"
            elif len(out) >= 3 and "attention" in where:
                kind = "matmul: attention weights.v"
            else:
                kind = "matmul: query, key, value, output"
        elif "reduce" in body and "attention" in where:
            kind = "softmax (reductions)"
        elif "reduce" in body:
            kind = "layer norm (reductions)"
        elif name.startswith("stack") or "/stack" in where:  # jnp.stack is a concatenate too
            kind = "stacking the [L, ...] outputs"
        elif op == "concatenate":
            kind = "concatenate (weights)"
        elif "attention" in where and any(w in where for w in ("select", "div", "exp", "sub", "mul")):
            kind = "softmax (elementwise)"
        elif "transpose" in where or "slice" in where:
            kind = "transposes / slices"
        elif "norm" in where:
            kind = "layer norm (elementwise)"
        elif "ffn" in where:
            kind = "GELU, bias"
        elif op in ("parameter", "constant", "tuple", "bitcast", "get-tuple-element"):
            continue
        else:
            kind = "other"
        kinds[name] = (kind, flops)
    return kinds


def xla_breakdown(engine, args, tokens: int, calls: int) -> dict:
    """Time per kind of operation in XLA's own trace of ``calls`` forwards (wall time of each operation:
    on 2 cores an operation's threads run side by side, so these add up to the forward's wall time)."""
    import glob
    from collections import defaultdict

    import jax
    from jax.profiler import ProfileData

    kinds = _classify(engine._forward.lower(*args).compile().as_text(), tokens, engine.config.d_model)
    jax.block_until_ready(engine._forward(*args))
    with tempfile.TemporaryDirectory() as trace_dir:
        start = time.perf_counter()
        with jax.profiler.trace(trace_dir):
            for _ in range(calls):
                jax.block_until_ready(engine._forward(*args))
        wall = (time.perf_counter() - start) / calls * 1e3
        profile = ProfileData.from_file(glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True)[0])
        ms: dict[str, float] = defaultdict(float)
        for plane in profile.planes:
            for line in plane.lines:
                for event in line.events:
                    if event.name in kinds:
                        ms[kinds[event.name][0]] += event.duration_ns / 1e6 / calls
    flops: dict[str, float] = defaultdict(float)
    for kind, f in kinds.values():
        flops[kind] += f
    return {"tokens": tokens, "wall_ms": wall, "ms": dict(ms), "gflop": {k: v / 1e9 for k, v in flops.items() if v}}


# ------------------------------------------------------------------------------------------- parent


class Worker:
    """A participant's process, spoken to in JSON lines."""

    def __init__(self, name: str, argv: list[str], cwd: Path, env: dict[str, str]):
        self.name = name
        self.process = subprocess.Popen(
            argv, cwd=cwd, env={**os.environ, **env}, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.ask_ready()

    def ask_ready(self):
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name}: the worker exited before it was ready")

    def __call__(self, op: str, **kwargs):
        self.process.stdin.write(json.dumps({"op": op, **kwargs}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name}: the worker exited")
        answer = json.loads(line)
        if isinstance(answer, dict) and "error" in answer:
            raise RuntimeError(f"{self.name}: {answer['error']}")
        return answer

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)


def _hf_available(python: str | None) -> str | None:
    """None when ``python`` can import torch and transformers, else why not."""
    if not python:
        return "no --hf-python given"
    try:
        probe = subprocess.run(
            [python, "-c", "import torch, transformers; print(torch.__version__, transformers.__version__)"],
            capture_output=True,
            text=True,
            timeout=300,
        )
    except OSError as error:
        return f"{python} does not run ({error})"
    if probe.returncode:
        return f"{python} cannot import torch and transformers ({probe.stderr.strip().splitlines()[-1:]})"
    return None


def _median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hf-python", help="a Python that can import torch and transformers (not ours)")
    parser.add_argument(
        "--baseline",
        action="append",
        default=[],
        help="[NAME=]PATH: another checkout of this project to time alongside",
    )
    parser.add_argument("--variant", action="append", default=[], help="NAME:VAR=VALUE,... ours with that env")
    parser.add_argument("--lengths", default="32,128,512")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=0, help="calls per turn (default: fewer for longer inputs)")
    parser.add_argument("--breakdown", type=int, action="append", default=[], help="profile ours at T tokens")
    parser.add_argument("--no-host", action="store_true", help="time only the device forward of ours")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker == "ours":
        worker_ours(args.folder)
        return 0
    if args.worker == "hf":
        worker_hf(args.folder, args.threads)
        return 0
    if args.worker == "make-weights":
        make_weights(args.folder)
        return 0

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    lengths = [int(x) for x in args.lengths.split(",")]
    hf_problem = _hf_available(args.hf_python)
    report: dict = {"cores": cores, "load_at_start": _load(), "hf": hf_problem or "transformers eager"}
    with tempfile.TemporaryDirectory() as tmp:
        folder = None
        if not hf_problem:
            folder = str(Path(tmp, "bert-base-random"))
            subprocess.run(
                [args.hf_python, __file__, "--worker", "make-weights", "--folder", folder],
                check=True,
                capture_output=True,
            )
        script = str(Path(__file__).resolve())
        ours_argv = [sys.executable, script, "--worker", "ours"] + (["--folder", folder] if folder else [])
        workers = {"ours": Worker("ours", ours_argv, ROOT, {"PYTHONPATH": str(ROOT)})}
        for spec in args.baseline:
            name, _, path = spec.rpartition("=")
            base = Path(path).resolve()
            workers[name or "baseline"] = Worker(name or "baseline", ours_argv, base, {"PYTHONPATH": str(base)})
        for spec in args.variant:
            name, _, assignments = spec.partition(":")
            env = dict(pair.split("=", 1) for pair in assignments.split(",") if pair)
            workers[name] = Worker(name, ours_argv, ROOT, {"PYTHONPATH": str(ROOT), **env})
        if folder:
            workers["hf"] = Worker(
                "hf", [args.hf_python, script, "--worker", "hf", "--folder", folder, "--threads", str(cores)], ROOT, {}
            )
        try:
            report["rows"] = _run_rounds(workers, lengths, args)
            if folder:
                report["max_attention_difference_32"] = _attention_difference(workers)
            report["breakdown"] = [workers["ours"]("breakdown", tokens=t, calls=3) for t in args.breakdown]
        finally:
            for worker in workers.values():
                worker.close()
    report["load_at_end"] = _load()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return 0


def _run_rounds(workers: dict, lengths: list[int], args) -> list[dict]:
    layers, width, ffn = (BERT_BASE[k] for k in ("num_hidden_layers", "hidden_size", "intermediate_size"))
    rows = []
    for tokens in lengths:
        for worker in workers.values():
            worker("prepare", tokens=tokens)
        turns = [(name, "device") for name in workers]
        if not args.no_host:
            turns += [(name, "host") for name in workers if name != "hf"]
        calls = args.calls or max(1, 256 // tokens)
        samples: dict[tuple, list[dict]] = {turn: [] for turn in turns}
        rates: dict[str, list[float]] = {}
        for round_index in range(args.rounds):
            shift = round_index % len(turns)
            for name, mode in turns[shift:] + turns[:shift]:
                samples[(name, mode)].append(workers[name]("forward", mode=mode, calls=calls))
            for name in ("ours", "hf"):
                if name in workers:
                    for lib, timing in workers[name]("rate", calls=3).items():
                        best = min(timing["wall"])
                        rates.setdefault(lib, []).append(2 * MATMUL**3 / best / 1e6)  # GFLOP/s
        flops = forward_flops(tokens, layers, width, ffn)
        hf_medians = [_median(s["wall"]) for s in samples.get(("hf", "device"), [])]
        for (name, mode), rounds in samples.items():
            wall = [w for s in rounds for w in s["wall"]]
            cpu = [c for s in rounds for c in s["cpu"]]
            row = {
                "tokens": tokens,
                "who": name,
                "mode": "forward" if name == "hf" else mode,
                "median_ms": _median(wall),
                "best_ms": min(wall),
                "cpu_ms": _median(cpu),
                "gflops": flops / _median(wall) / 1e6,
                "gflops_best": flops / min(wall) / 1e6,
            }
            if hf_medians:
                mine = [_median(s["wall"]) for s in rounds]
                row["speed_vs_hf"] = _median(hf_medians) / row["median_ms"]
                row["speed_vs_hf_per_round"] = _median([h / m for h, m in zip(hf_medians, mine, strict=True)])
                row["speed_vs_hf_best"] = min(w for s in samples[("hf", "device")] for w in s["wall"]) / row["best_ms"]
            rows.append(row)
        rows.append(
            {
                "tokens": tokens,
                "matmul_gflops_best": {lib: max(r) for lib, r in rates.items()},
                "matmul_gflops_median": {lib: _median(r) for lib, r in rates.items()},
                "forward_gflop": flops / 1e9,
                "load": _load(),
            }
        )
    return rows


def _attention_difference(workers: dict) -> float:
    import numpy as np

    for worker in workers.values():
        worker("prepare", tokens=32)
    ours = np.asarray(workers["ours"]("attention", tokens=32)["weights"])
    theirs = np.asarray(workers["hf"]("attention", tokens=32)["weights"])
    return float(np.abs(ours - theirs).max())


def format_report(report: dict) -> str:
    lines = [
        f"BERT-base-sized forward with every attention map, batch 1, {report['cores']} cores "
        f"(load average {report['load_at_start']} at start, {report['load_at_end']} at end)",
        f"reference: {report['hf']}",
    ]
    if "max_attention_difference_32" in report:
        lines.append(
            f"same weights on both sides: largest attention difference at 32 tokens "
            f"{report['max_attention_difference_32']:.1e}"
        )
    lines.append(
        "  tokens  who        mode      median ms   best ms   CPU ms  GFLOP/s  x HF (medians, per round, best)"
    )
    for row in report["rows"]:
        if "matmul_gflops_best" in row:
            best = ", ".join(f"{k} {v:.0f}" for k, v in row["matmul_gflops_best"].items())
            med = ", ".join(f"{k} {v:.0f}" for k, v in row["matmul_gflops_median"].items())
            lines.append(
                f"          machine's {MATMUL}^2 fp32 matmul GFLOP/s: best {best}; median {med}; "
                f"forward = {row['forward_gflop']:.1f} GFLOP; load {row['load']}"
            )
            continue
        versus = ""
        if "speed_vs_hf" in row and row["who"] != "hf":
            versus = f"{row['speed_vs_hf']:5.2f}  {row['speed_vs_hf_per_round']:5.2f}  {row['speed_vs_hf_best']:5.2f}"
        lines.append(
            f"  {row['tokens']:>6}  {row['who']:<10} {row['mode']:<8} {row['median_ms']:9.1f} {row['best_ms']:9.1f} "
            f"{row['cpu_ms']:8.1f} {row['gflops']:8.1f}  {versus}"
        )
    for table in report.get("breakdown", []):
        total = sum(table["ms"].values())
        lines.append(
            f"XLA profile of ours at {table['tokens']} tokens ({table['wall_ms']:.0f} ms per forward while "
            f"traced; per kind of operation, wall ms and share, matmul GFLOP and GFLOP/s):"
        )
        for kind, ms in sorted(table["ms"].items(), key=lambda kv: -kv[1]):
            gflop = table["gflop"].get(kind)
            rate = f"{gflop:7.2f} GFLOP {gflop / ms * 1e3:7.1f} GFLOP/s" if gflop else ""
            lines.append(f"    {ms:8.1f} ms {100 * ms / total:5.1f}%  {kind:<34} {rate}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
