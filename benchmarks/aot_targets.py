"""The paper's configs compiled for real targets: per-device memory, fit, FLOPs and roofline step time.

    python benchmarks/aot_targets.py --out docs/aot_results --group tpu        # v4-128, v5litepod-256, v5p-256
    python benchmarks/aot_targets.py --out docs/aot_results --group gpu        # 1 and 8 H100 (gpu-compile extra)
    python benchmarks/aot_targets.py --out docs/aot_results --group frames     # longest clip at batch 8, 1 H100
    python benchmarks/aot_targets.py --out docs/aot_results --group attention  # XLA vs cuDNN attention, 1 H100
    python benchmarks/aot_targets.py --out docs/aot_results --group remat      # remat policies, H100 and v5p-8
    python benchmarks/aot_targets.py --out docs/aot_results --group splash     # XLA vs splash attention, TPU
    python benchmarks/aot_targets.py --out docs/aot_results --group scan       # unrolled vs scanned blocks, v5p
    python benchmarks/aot_targets.py --out docs/aot_results --group splash_frames  # 8, 32, 96 frames, XLA vs splash
    python benchmarks/aot_targets.py --out docs/aot_results --group tpu_models  # HR and L, 8-96 frames, v5p and v5e
    python benchmarks/aot_targets.py --out docs/aot_results --group tpu_longest  # longest clip, 8 clips per v5p chip

Each case runs the library behind tools/aot_compile.py (train step; eval too where --steps says) and writes
the tool's JSON to OUT/<case>.json; OUT/table.md is rebuilt from every JSON there (the table in
docs/scaling.md). Cases already in OUT are skipped, so an interrupted sweep resumes. The `frames` group searches
the largest frame count that fits one 80 GB H100 at batch 8, per scheme, with and without remat, at 224 and 448 px.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from absl import app, flags  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_OUT = flags.DEFINE_string("out", "docs/aot_results", "Directory for the per-case JSON and table.md.")
_GROUP = flags.DEFINE_enum("group", "tpu", ["tpu", "gpu", "frames", "attention", "remat", "splash", "splash_frames", "tpu_models", "tpu_longest", "scan", "table"], "Which cases to compile.")
_STEPS = flags.DEFINE_list("steps", ["train"], "Steps to compile per case.")

# (config, scheme, clips per device, remat): the paper's three settings; joint and space-only for base.
SETTINGS = [
    ("k400_base", "divided_space_time", 8, False),
    ("k400_base", "joint_space_time", 8, False),
    ("k400_base", "space_only", 8, False),
    ("k400_hr", "divided_space_time", 2, True),
    ("k400_large", "divided_space_time", 1, True),
]
TPU_TARGETS = ["v4-128", "v5litepod-256", "v5p-256"]
GPU_TARGETS = ["h100", "h100x8"]
FRAME_CANDIDATES = [8, 16, 24, 32, 48, 64, 96, 128, 192]


def _config(name: str, scheme: str, batch: int, remat: bool, **model):
    from timesformer_jax.train.config import load_config_file

    config = load_config_file(ROOT / "configs" / f"{name}.py", scheme)
    config.batch_size = config.eval_batch_size = batch
    config.model.remat = remat
    config.model.update(model)
    if "image_size" in model:  # the official jitter (256-320 for 224 crops), scaled to the crop
        config.clip.train_scale = [model["image_size"], round(model["image_size"] * 320 / 224)]
    return config


def _run(out: Path, case: str, config_name: str, config, target_name: str, steps) -> dict:
    from timesformer_jax.aot import compile_config, format_report, parse_target

    path = out / f"{case}.json"
    if path.exists():
        return json.loads(path.read_text())
    started = time.perf_counter()
    report = compile_config(config, parse_target(target_name), steps=tuple(steps),
                            log=lambda m: print(m, file=sys.stderr, flush=True))
    data = report.to_json()
    data["case"] = case
    data["config"] = config_name
    data["num_frames"], data["image_size"] = config.model.num_frames, config.model.image_size
    data["date"] = time.strftime("%Y-%m-%d")
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(format_report(report), f"\n({time.perf_counter() - started:.0f} s)\n", flush=True)
    return data


def _grid(out: Path, targets, steps) -> None:
    from timesformer_jax.aot import parse_target

    for target in targets:
        devices = parse_target(target).num_devices
        for name, scheme, per_device, remat in SETTINGS:
            case = f"{name}-{scheme}__{target}"
            _run(out, case, name, _config(name, scheme, per_device * devices, remat), target, steps)


def _frames(out: Path) -> None:
    """Largest frame count in FRAME_CANDIDATES whose batch-8 train step fits one H100 without XLA having to
    rematerialize anything (past ~60 GiB XLA:GPU recomputes on its own to fit), per attention
    implementation (cuDNN's fused kernel, the GPU default, and XLA's materialised scores, which the paper's
    Figure 3 measured), scheme, remat and image size. Bisection: fitting is monotone in the frame count."""
    for size in (224, 448):
        for impl in ("cudnn", "xla"):
            for scheme in ("divided_space_time", "joint_space_time"):
                for remat in (False, True):
                    _largest_fitting(out, impl, size, scheme, remat)


def _largest_fitting(out: Path, impl: str, size: int, scheme: str, remat: bool) -> int | None:
    def fits_at(frames):
        suffix = "" if impl == "cudnn" else f"-{impl}"
        case = f"frames{frames}_{size}px-{scheme}-remat{int(remat)}{suffix}__h100"
        config = _config("k400_base", scheme, 8, remat, num_frames=frames, image_size=size, attention_impl=impl)
        train = _run(out, case, "k400_base", config, "h100", ["train"])["steps"]["train"]
        return train["fits"] and train["xla_rematerialized_ops"] == 0  # fits as written, no recomputation by XLA

    return _bisect(fits_at)


def _attention(out: Path) -> None:
    """XLA's attention (materialised scores) against cuDNN's fused kernel, batch 8 on one H100, no remat: every
    scheme at 8 x 224, and joint attention up to 96 frames."""
    cases = [(scheme, 8) for scheme in ("divided_space_time", "joint_space_time", "space_only")]
    cases += [("joint_space_time", frames) for frames in (16, 32, 64, 96)] + [("divided_space_time", 96)]
    for scheme, frames in cases:
        for impl in ("xla", "cudnn"):
            case = f"attn_{impl}_frames{frames}-{scheme}__h100"
            _run(out, case, "k400_base", _config("k400_base", scheme, 8, False, num_frames=frames,
                                                  attention_impl=impl), "h100", ["train"])


def _remat(out: Path) -> None:
    """Remat off and each policy for the two long-clip settings on one H100 (memory), and for TimeSformer-L on a
    v5p-8 (memory, and FLOPs: XLA's TPU count includes the recomputation)."""
    for name, per_device, targets in (("k400_large", 1, ("h100", "v5p-8")), ("k400_hr", 2, ("h100",))):
        for target in targets:
            devices = 1 if target == "h100" else 4
            for policy in ("off", "nothing", "dots_no_batch", "dots"):
                config = _config(name, "divided_space_time", per_device * devices, policy != "off")
                if policy != "off":
                    config.model.remat_policy = policy
                _run(out, f"remat_{policy}-{name}__{target}", name, config, target, ["train"])


def _splash(out: Path) -> None:
    """XLA's attention against the Pallas splash kernel on TPU, train step: joint attention at the paper's base
    setting on a v5p-8 and a v5e-8 (2 clips per chip), TimeSformer-L's 96 x 224 joint at one clip per v5p chip
    (remat as the config), and divided attention (197- and 8-token groups, where XLA is kept) for contrast."""
    cases = [("k400_base", "joint_space_time", "v5p-8", 8), ("k400_base", "joint_space_time", "v5litepod-8", 16),
             ("k400_base", "divided_space_time", "v5p-8", 8), ("k400_large", "joint_space_time", "v5p-8", 4)]
    for name, scheme, target, batch in cases:
        for impl in ("xla", "splash"):
            config = _config(name, scheme, batch, name == "k400_large", attention_impl=impl)
            frames = config.model.num_frames
            _run(out, f"splash_{impl}-{name}-{scheme}-{frames}f__{target}", name, config, target, ["train"])


def _splash_frames(out: Path) -> None:
    """The paper's Figure 3 on a TPU compiler, with and without the fused kernel: base at 224 px, 8, 32 and 96 frames,
    divided and joint, XLA and splash attention, 2 clips per chip on a v5p-8, no remat."""
    for frames in (8, 32, 96):
        for scheme in ("divided_space_time", "joint_space_time"):
            for impl in ("xla", "splash"):
                config = _config("k400_base", scheme, 8, False, num_frames=frames, attention_impl=impl)
                _run(out, f"tpuframes_{impl}-{scheme}-{frames}f__v5p-8", "k400_base", config, "v5p-8", ["train"])


def _tpu_models(out: Path) -> None:
    """TimeSformer-HR (448 px, 2 clips per chip) and -L (224 px, 1 clip per chip), remat dots_no_batch and scanned
    blocks (k400_large's defaults), divided and joint: XLA's attention against the TPU default (`attention_impl`
    None: splash on groups of 512 tokens or more, XLA on shorter ones; compiled only where it differs from XLA),
    8, 32 and 96 frames on a v5p-8 and each model's own frame count (HR 16, L 96) on a v5e-8."""
    cases = [(name, frames, "v5p-8") for name in ("k400_hr", "k400_large") for frames in (8, 96, 32)]
    cases += [("k400_hr", 16, "v5litepod-8"), ("k400_large", 96, "v5litepod-8")]
    for name, frames, target in cases:
        per_chip = 2 if name == "k400_hr" else 1
        for scheme in ("divided_space_time", "joint_space_time"):
            for impl in ("xla", None):
                config = _config(name, scheme, 4 * per_chip, True, num_frames=frames, attention_impl=impl,
                                 scan_blocks=True)
                if impl is None and _tpu_default_is_xla(config):
                    continue
                _run(out, f"tpumodels_{impl or 'auto'}-{name}-{scheme}-{frames}f__{target}", name, config, target,
                     ["train"])


def _tpu_default_is_xla(config) -> bool:
    from timesformer_jax.model import TimeSformer
    from timesformer_jax.train.config import model_fields
    from timesformer_jax.train.experiment import platform_attention

    return platform_attention(TimeSformer(**model_fields(config)), "tpu").attention_impl is None


def _tpu_longest(out: Path) -> None:
    """Largest frame count in FRAME_CANDIDATES whose base 224 px train step fits a v5p chip at 8 clips per chip
    (v5p-8, batch 32), remat dots_no_batch and scanned blocks: divided attention (whose groups stay under 512
    tokens, so the TPU default is XLA's attention) and joint attention with XLA's and with the TPU default
    (splash)."""
    for scheme, impl in (("divided_space_time", "xla"), ("joint_space_time", "xla"), ("joint_space_time", None)):
        def fits_at(frames, scheme=scheme, impl=impl):
            config = _config("k400_base", scheme, 32, True, num_frames=frames, attention_impl=impl,
                             remat_policy="dots_no_batch", scan_blocks=True)
            case = f"tpulongest_{impl or 'auto'}-{scheme}-{frames}f__v5p-8"
            return _run(out, case, "k400_base", config, "v5p-8", ["train"])["steps"]["train"]["fits"]
        _bisect(fits_at)


def _bisect(fits_at) -> int | None:
    """The largest entry of FRAME_CANDIDATES for which fits_at holds (fitting is monotone in the frame count)."""
    low, high = 0, len(FRAME_CANDIDATES) - 1
    if not fits_at(FRAME_CANDIDATES[low]):
        return None
    while low < high:  # invariant: FRAME_CANDIDATES[low] fits
        middle = (low + high + 1) // 2
        if fits_at(FRAME_CANDIDATES[middle]):
            low = middle
        else:
            high = middle - 1
    return FRAME_CANDIDATES[low]


def _scan(out: Path) -> None:
    """Unrolled against scanned blocks (`scan_blocks`): compile time, memory and FLOPs of the train step for the
    paper's base (8 clips per chip) and TimeSformer-L (1 clip per chip, remat as its config) settings, on a v5p-8
    and a v5p-256."""
    for target, chips in (("v5p-8", 4), ("v5p-256", 128)):
        for name, per_chip in (("k400_base", 8), ("k400_large", 1)):
            for scan in (False, True):
                config = _config(name, "divided_space_time", per_chip * chips, name == "k400_large",
                                 scan_blocks=scan)
                _run(out, f"scan_{'scanned' if scan else 'unrolled'}-{name}__{target}", name, config, target,
                     ["train"])


def _ms(data: dict, step: dict, term: str) -> str:
    """A roofline term in ms (reports written before the terms were separate fields: from the same fields, by the
    same formula as aot/compile.py)."""
    from timesformer_jax.aot import parse_target

    if f"{term}_seconds" not in step:
        chip = parse_target(data["target"]).chip
        step = {"compute_seconds": step["flops_per_step"] / data["num_devices"] / chip.peak_bf16_flops,
                "memory_seconds": step["hbm_traffic_bytes"] / chip.hbm_bytes_per_second}
    return f"{1e3 * step[f'{term}_seconds']:.1f}"


GROUPS = (("k400_", "The paper's settings (train step)"), ("attn_", "XLA against cuDNN attention, batch 8, one H100"),
          ("frames", "Longest clip at batch 8 on one H100 (bisection over frame counts)"),
          ("remat_", "Remat policies"), ("splash_", "XLA against the Pallas splash kernel on TPU (train step)"),
          ("scan_", "Unrolled against scanned blocks (train step)"),
          ("tpuframes_", "Frames against memory on a v5p-8, XLA and splash attention (train step, 2 clips per chip)"),
          ("tpumodels_", "TimeSformer-HR and -L, frames against memory on TPU, XLA and splash attention (train step)"),
          ("tpulongest_", "Longest clip at 8 clips per v5p chip, base 224 px (bisection over frame counts)"))


def _row(data: dict) -> str:
    gib = 1 << 30
    train = data["steps"]["train"]
    mesh = data["mesh"]
    memory = train["memory_per_device"]
    remat = f"on, {data.get('remat_policy', 'nothing')}" if data["remat"] else "off"
    remat += ", scanned blocks" if data.get("scan_blocks") else ""
    return (f"| {data['config'].split('-')[0]} {data['num_frames']}x{data['image_size']} | {data['attention_type']} | "
            f"{data.get('attention_impl', 'xla')} | {data['target']} | {mesh['data']}/{mesh['fsdp']}/{mesh['tensor']} | "
            f"{data['global_batch'] / (mesh['data'] * mesh['fsdp']):g} | {remat} | "
            f"{memory['total'] / gib:.2f} ({memory['capacity'] / gib:.0f}) | {'yes' if train['fits'] else 'NO'} | "
            f"{train.get('xla_rematerialized_ops', '?')} | {train['flops_per_step'] / 1e12:.1f} ({train['flops_source']}) | {_ms(data, train, 'compute')} | "
            f"{_ms(data, train, 'memory') if train['flops_source'] == 'xla' else 'n/a'} | {train['compile_seconds']:.0f} |")


def longest_clip_summary(cases: list[dict], prefix: str, title: str, fits) -> str:
    """One bisection group (cases named `prefix`...) as one table: per attention implementation, image size,
    scheme and remat, the largest frame count compiled for which `fits(case)` holds and the smallest for which it
    does not."""
    groups: dict[tuple, dict[int, bool]] = {}
    for c in cases:
        if c["case"].startswith(prefix):
            key = (c.get("attention_impl", "xla"), c["image_size"], c["attention_type"], c["remat"])
            groups.setdefault(key, {})[c["num_frames"]] = fits(c)
    if not groups:
        return ""
    rows = ["| attention | image | scheme | remat | largest frame count that fits | smallest that does not |",
            "|---|---|---|---|---|---|"]
    for (impl, size, scheme, remat), fitting in sorted(groups.items()):
        good = [f for f, ok in fitting.items() if ok]
        bad = [f for f, ok in fitting.items() if not ok]
        rows.append(f"| {impl} | {size} | {scheme} | {'on' if remat else 'off'} | {max(good) if good else 'none'} | "
                    f"{min(bad) if bad else f'none up to {max(fitting)}'} |")
    return f"### {title}\n\n" + "\n".join(rows) + "\n"


def _fits_without_xla_remat(case: dict) -> bool:
    train = case["steps"]["train"]
    return train["fits"] and train.get("xla_rematerialized_ops", 0) == 0


def write_table(out: Path) -> str:
    """OUT/table.md from the case JSONs in OUT (those this script wrote), one table per group of cases."""
    header = ("| config | scheme | attention | target | mesh (data/fsdp/tensor) | clips/device | remat | memory/device "
              "GiB (capacity) | fits | XLA remat ops | TFLOP/step | compute-bound step ms | HBM-traffic step ms | compile s |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    cases = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    cases = [c for c in cases if "case" in c and "train" in c["steps"]]
    sections = []
    for prefix, title in GROUPS:
        rows = [_row(c) for c in cases if c["case"].startswith(prefix)]
        if rows:
            sections.append(f"### {title}\n\n{header}\n" + "\n".join(rows) + "\n")
    summaries = [longest_clip_summary(cases, "frames", "Longest clip, batch 8, one H100 (no XLA rematerialization)",
                                      _fits_without_xla_remat),
                 longest_clip_summary(cases, "tpulongest_", "Longest clip, 8 clips per v5p chip (v5p-8, batch 32)",
                                      lambda case: case["steps"]["train"]["fits"])]
    sections = [summary for summary in summaries if summary] + sections
    table = "\n".join(sections)
    (out / "table.md").write_text(table)
    return table


def main(argv):
    del argv
    out = Path(_OUT.value)
    out.mkdir(parents=True, exist_ok=True)
    groups = {"tpu": lambda: _grid(out, TPU_TARGETS, _STEPS.value), "gpu": lambda: _grid(out, GPU_TARGETS, _STEPS.value),
              "frames": lambda: _frames(out), "attention": lambda: _attention(out), "remat": lambda: _remat(out),
              "splash": lambda: _splash(out), "splash_frames": lambda: _splash_frames(out), "scan": lambda: _scan(out),
              "tpu_models": lambda: _tpu_models(out), "tpu_longest": lambda: _tpu_longest(out),
              "table": lambda: None}
    groups[_GROUP.value]()
    print(write_table(out))


if __name__ == "__main__":
    app.run(main)
