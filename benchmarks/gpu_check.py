"""One run that checks the GPU path: speed, MFU, memory, cuDNN attention against XLA's, inference, and PyTorch.

    python benchmarks/gpu_check.py --out gpu_check           # base 8x224, 8 clips, bfloat16 (under 8 min, one H100)
    python benchmarks/gpu_check.py --out /tmp/g --tiny       # a tiny model: what tests/test_gpu_check.py runs on CPU

Needs what a typical GPU image holds: jax with its CUDA plugin, flax, optax, orbax, and torch + transformers for
the PyTorch comparison (skipped, with the reason, without them). No TensorFlow and no PyAV: inputs are synthetic.

In order, each section written to OUT/gpu_check.json as soon as it is done (a run cut short keeps what it had):
  memory      the divided-attention train step's real peak memory (the device's peak_bytes_in_use) against the
              compiled program's prediction (arguments + outputs + temporaries - aliased: the number
              `timesformer compile` reports for a target)
  equality    cuDNN attention against XLA's in bfloat16: logits and parameter gradients of the same model and
              batch, as relative L2 errors (cuDNN only on NVIDIA GPUs)
  train       train-step clips/s and MFU (the analytic FLOPs that must run, x3 for the backward pass, over the chip's
              dense bf16 peak) for every attention scheme, with XLA's and cuDNN's attention
  predict     inference clips/s (and videos/s at 3 views) of the jitted forward in bfloat16
  pytorch     Hugging Face TimesformerForVideoClassification, eager, bfloat16, on the same device: train-step and
              forward clips/s, and the ratio of ours to it (divided attention)
OUT/gpu_check.md holds the same as tables, also printed at the end.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from timesformer_jax.aot.chips import CHIPS  # noqa: E402
from timesformer_jax.bench.compiled import compiled_cost, compiled_steps  # noqa: E402
from timesformer_jax.bench.timing import time_calls  # noqa: E402
from timesformer_jax.flag_spelling import ArgumentParser  # noqa: E402
from timesformer_jax.model import ATTENTION_TYPES, TimeSformer  # noqa: E402
from timesformer_jax.model.attention import local_platform  # noqa: E402
from timesformer_jax.model.flops import forward_flops  # noqa: E402
from timesformer_jax.model.presets import preset_config  # noqa: E402
from timesformer_jax.parallel.mesh import create_mesh  # noqa: E402
from timesformer_jax.train.state import create_train_state  # noqa: E402

GIB = 2**30


def parse_args(argv):
    parser = ArgumentParser(prog="benchmarks/gpu_check.py", description=__doc__)
    parser.add_argument("--out", required=True, help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--tiny", action="store_true", help="a tiny model, 2 frames of 32 px, 2 clips (CPU smoke run)")
    parser.add_argument("--batch_size", type=int, help="clips per step (default 8; 2 with --tiny)")
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per case, after 2 warm-up steps")
    parser.add_argument("--schemes", default=",".join(ATTENTION_TYPES), help="attention schemes to time")
    return parser.parse_args(argv)


def model_fields(tiny: bool) -> dict:
    if tiny:
        return preset_config("timesformer_tiny", num_frames=2, image_size=32, num_classes=10)
    return preset_config("timesformer_base", num_frames=8, image_size=224, num_classes=400)


def chip_peak_flops() -> float | None:
    """Dense bf16 FLOP/s of this device, where `aot.chips` knows it (H100, H200, TPUs)."""
    kind = jax.devices()[0].device_kind.lower()
    for name, spec in CHIPS.items():
        if name in kind.replace(" ", ""):
            return spec.peak_bf16_flops
    return None


def implementations() -> list[str]:
    return ["xla", "cudnn"] if local_platform() == "cuda" else ["xla"]


class Results:
    """The JSON written after every section, so a run stopped part-way keeps what it measured."""

    def __init__(self, out: Path, environment: dict):
        self.path = out / "gpu_check.json"
        self.data = {"environment": environment}
        self.save()

    def __setitem__(self, key, value):
        self.data[key] = value
        self.save()

    def save(self):
        self.path.write_text(json.dumps(self.data, indent=1, default=float) + "\n")


def environment(fields: dict, batch_size: int) -> dict:
    device = jax.devices()[0]
    stats = device.memory_stats() or {}
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "device": device.device_kind,
            "platform": local_platform(), "jax": jax.__version__, "torch": torch_version,
            "memory_limit_gib": stats.get("bytes_limit", 0) / GIB or None, "peak_bf16_tflops":
            (chip_peak_flops() or 0) / 1e12 or None, "model": {k: fields[k] for k in
            ("hidden_size", "depth", "num_heads", "num_frames", "image_size", "num_classes")},
            "batch_size": batch_size, "dtype": "bfloat16", "command": " ".join(sys.argv)}


def train_case(fields: dict, batch_size: int, mesh, repeats: int) -> dict:
    """Compile and time the real train step (`train/state.py`, SGD as in the paper) of one model."""
    model = TimeSformer(**fields)
    steps = compiled_steps(model, batch_size, mesh)
    started = time.perf_counter()
    compiled = steps.train_step.lower(steps.abstract_state, steps.abstract_batch).compile()
    compile_s = time.perf_counter() - started
    cost = compiled_cost(compiled)
    state = [create_train_state(model, steps.optimizer, mesh, steps.video_shape, shardings=steps.state_shardings)]
    rng = np.random.default_rng(0)
    batch = {"video": jax.device_put(rng.standard_normal(steps.video_shape, dtype=np.float32),
                                     steps.abstract_batch["video"].sharding),
             "label": jax.device_put(rng.integers(0, fields["num_classes"], batch_size).astype(np.int32),
                                     steps.abstract_batch["label"].sharding)}

    def step():
        state[0], metrics = compiled(state[0], batch)
        return metrics["loss"]

    timing = time_calls(step, jax.block_until_ready, warmup=2, repeats=repeats)
    flops = 3 * forward_flops(fields, batch_size)["needed"]
    peak = chip_peak_flops()
    del state[0]
    return {"step_ms": timing.median_s * 1e3, "clips_per_s": batch_size / timing.median_s,
            "mfu": flops / timing.median_s / peak if peak else None, "compile_s": compile_s,
            "predicted_peak_gib": cost.peak_bytes / GIB, "train_flops": flops}


def memory_section(fields: dict, batch_size: int, mesh, repeats: int) -> tuple[dict, dict]:
    """(memory section, the divided-attention train case it timed). Run first, so the device's peak counter
    holds this step's peak and nothing earlier; the train section reuses the case instead of compiling it again."""
    impl = implementations()[-1]
    case = train_case({**fields, "attention_type": "divided_space_time", "attention_impl": impl}, batch_size,
                      mesh, repeats)
    stats = jax.devices()[0].memory_stats() or {}
    real = stats.get("peak_bytes_in_use")
    return {"attention_impl": impl, "predicted_gib": case["predicted_peak_gib"],
            "real_peak_gib": real / GIB if real else None,
            "real_over_predicted": real / GIB / case["predicted_peak_gib"] if real else None,
            "note": None if real else f"{jax.devices()[0].platform} reports no peak_bytes_in_use"}, case


def relative_l2(a, b) -> float:
    a, b = (np.asarray(x, np.float64).ravel() for x in (a, b))
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def equality_section(fields: dict) -> dict:
    if local_platform() != "cuda":
        return {"skipped": f"cuDNN attention needs an NVIDIA GPU; this is {local_platform()}"}
    model = TimeSformer(**fields)
    video = jnp.asarray(np.random.default_rng(1).standard_normal(model.clip_shape(2), dtype=np.float32))
    params = jax.jit(model.init)(jax.random.key(0), video)["params"]
    labels = jnp.arange(2) % fields["num_classes"]

    def loss_and_logits(impl):
        module = model.clone(attention_impl=impl)

        def loss(p):
            logits = module.apply({"params": p}, video).astype(jnp.float32)
            return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(2), labels]), logits

        (_, logits), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
        return logits, grads

    logits_x, grads_x = loss_and_logits("xla")
    logits_c, grads_c = loss_and_logits("cudnn")
    leaves_x, leaves_c = jax.tree.leaves(grads_x), jax.tree.leaves(grads_c)
    per_leaf = [relative_l2(c, x) for c, x in zip(leaves_c, leaves_x)]
    result = {"logits_rel_l2": relative_l2(logits_c, logits_x),
              "grads_rel_l2": relative_l2(np.concatenate([np.ravel(c) for c in leaves_c]),
                                          np.concatenate([np.ravel(x) for x in leaves_x])),
              "worst_param_grad_rel_l2": max(per_leaf)}
    # bfloat16 keeps 8 bits of mantissa (relative rounding 2^-9 = 0.002); two kernels summing in different
    # orders through 12 blocks differ by a few times that
    result["equal_within_bf16"] = result["logits_rel_l2"] < 0.02 and result["grads_rel_l2"] < 0.05
    return result


def predict_section(fields: dict, batch_size: int, repeats: int) -> dict:
    out = {}
    for impl in implementations():
        model = TimeSformer(**{**fields, "attention_impl": impl})
        clips = batch_size * 3  # 3 spatial crops per video, the official test views
        video = jnp.asarray(np.random.default_rng(2).standard_normal(model.clip_shape(clips), dtype=np.float32))
        params = jax.jit(TimeSformer(**fields).init)(jax.random.key(0), video[:1])["params"]
        forward = jax.jit(lambda p, x, m=model: m.apply({"params": p}, x))
        timing = time_calls(lambda: forward(params, video), jax.block_until_ready, warmup=2, repeats=repeats)
        out[impl] = {"clips_per_s": clips / timing.median_s, "videos_per_s_3_views": batch_size / timing.median_s,
                     "batch_clips": clips}
    return out


def pytorch_section(fields: dict, batch_size: int, repeats: int, ours: dict) -> dict:
    from timesformer_jax.bench.reference import reference_available, reference_calls

    missing = reference_available()
    if missing:
        return {"skipped": missing}
    import torch

    device = "cuda" if local_platform() == "cuda" and torch.cuda.is_available() else "cpu"
    sync = (lambda _: torch.cuda.synchronize()) if device == "cuda" else (lambda x: x)
    fields = {**{k: v for k, v in fields.items() if k != "dtype"}, "attention_type": "divided_space_time"}
    forward, train_step = reference_calls(fields, batch_size, threads=os.cpu_count() or 1, device=device,
                                          dtype="bfloat16")
    train = time_calls(train_step, sync, warmup=2, repeats=repeats)
    infer = time_calls(forward, sync, warmup=2, repeats=repeats)
    result = {"device": device, "train_clips_per_s": batch_size / train.median_s,
              "forward_clips_per_s": batch_size / infer.median_s}
    for impl, case in ours.items():
        result[f"ours_{impl}_over_pytorch_train"] = case["clips_per_s"] / result["train_clips_per_s"]
    return result


def _fmt(value, spec=".1f"):
    return "-" if value is None else format(value, spec)


def tables(data: dict) -> str:
    env = data["environment"]
    lines = [f"GPU check: {env['device']} ({env['platform']}), jax {env['jax']}, torch {env['torch']}, {env['date']}",
             f"model {env['model']}, batch {env['batch_size']}, bfloat16", "",
             "| scheme | attention | train clips/s | step ms | MFU | predicted peak GiB | compile s |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for scheme, cases in data.get("train", {}).items():
        for impl, case in cases.items():
            if "skipped" in case:
                lines.append(f"| {scheme} | {impl} | {case['skipped']} | | | | |")
                continue
            mfu = None if case["mfu"] is None else 100 * case["mfu"]
            lines.append(f"| {scheme} | {impl} | {case['clips_per_s']:.1f} | {case['step_ms']:.1f} | "
                         f"{_fmt(mfu)}{'%' if mfu is not None else ''} | {case['predicted_peak_gib']:.2f} | "
                         f"{case['compile_s']:.0f} |")
    memory = data.get("memory", {})
    if memory:
        lines += ["", f"memory (divided, {memory['attention_impl']}): real peak {_fmt(memory['real_peak_gib'], '.2f')} "
                      f"GiB, predicted {memory['predicted_gib']:.2f} GiB, real / predicted "
                      f"{_fmt(memory['real_over_predicted'], '.3f')}" + (f" ({memory['note']})" if memory["note"] else "")]
    equality = data.get("equality", {})
    if equality:
        lines.append("cuDNN vs XLA attention (bf16): " + (equality["skipped"] if "skipped" in equality else
                     f"logits rel L2 {equality['logits_rel_l2']:.2e}, gradients rel L2 {equality['grads_rel_l2']:.2e}"
                     f" (worst parameter {equality['worst_param_grad_rel_l2']:.2e}), equal within bf16: "
                     f"{equality['equal_within_bf16']}"))
    for impl, case in data.get("predict", {}).items():
        lines.append(f"predict ({impl}): {case['clips_per_s']:.1f} clips/s, {case['videos_per_s_3_views']:.1f} videos/s "
                     f"at 3 views")
    torch_result = data.get("pytorch", {})
    if torch_result:
        lines.append("PyTorch HF eager bf16: " + (torch_result["skipped"] if "skipped" in torch_result else
                     f"train {torch_result['train_clips_per_s']:.1f} clips/s, forward "
                     f"{torch_result['forward_clips_per_s']:.1f} clips/s on {torch_result['device']}; ours / theirs: "
                     + ", ".join(f"{k.split('_')[1]} {v:.2f}x" for k, v in torch_result.items() if k.startswith("ours_"))))
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    batch_size = args.batch_size or (2 if args.tiny else 8)
    fields = {**model_fields(args.tiny), "dtype": jnp.bfloat16}
    schemes = [s for s in args.schemes.split(",") if s]
    unknown = sorted(set(schemes) - set(ATTENTION_TYPES))
    if unknown:
        print(f"error: --schemes: unknown {unknown}; expected among {', '.join(ATTENTION_TYPES)}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mesh = create_mesh({"data": -1})
    started = time.perf_counter()

    def log(message):
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    results = Results(out, environment(fields, batch_size))
    log(f"device {results.data['environment']['device']}; memory")
    results["memory"], divided_case = memory_section(fields, batch_size, mesh, args.repeats)
    log("cuDNN vs XLA attention")
    results["equality"] = equality_section(fields)
    train = {}
    for scheme in schemes:
        train[scheme] = {}
        for impl in ("xla", "cudnn"):
            if impl not in implementations():
                train[scheme][impl] = {"skipped": "cuDNN attention needs an NVIDIA GPU"}
                continue
            if (scheme, impl) == ("divided_space_time", results.data["memory"]["attention_impl"]):
                train[scheme][impl] = divided_case  # compiled and timed by the memory section
                continue
            log(f"train step: {scheme}, {impl} attention")
            train[scheme][impl] = train_case({**fields, "attention_type": scheme, "attention_impl": impl},
                                             batch_size, mesh, args.repeats)
            results["train"] = train
    log("predict")
    results["predict"] = predict_section(fields, batch_size, args.repeats)
    log("PyTorch reference")
    divided = {impl: case for impl, case in train.get("divided_space_time", {}).items() if "skipped" not in case}
    results["pytorch"] = pytorch_section(fields, batch_size, args.repeats, divided)
    results["total_s"] = time.perf_counter() - started
    table = tables(results.data)
    (out / "gpu_check.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
