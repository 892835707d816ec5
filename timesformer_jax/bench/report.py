"""Benchmark results as Markdown tables, a JSON record and a plot in the spirit of the paper's Figure 3."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Sequence

from timesformer_jax.bench.runner import CaseAnalysis, CaseTiming
from timesformer_jax.figures import pyplot, save_figure

GIB = 2**30


def _g(flops: float) -> str:
    return f"{flops / 1e9:,.1f}"


def _gib(num_bytes: int | None) -> str:
    return "—" if num_bytes is None else f"{num_bytes / GIB:.2f}"


def _ms(timing) -> str:
    return "—" if timing is None else f"{timing.median_s * 1e3:,.1f}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def analysis_table(rows: Sequence[CaseAnalysis], device_bytes: int | None = None) -> str:
    """One row per analysed case: parameters, forward GFLOPs (analytic, XLA, ratio), train-step GFLOPs, and
    compiled peak memory of inference and of a train step with and without remat."""
    header = ("| scheme | clip | batch | params (M) | fwd GFLOPs (paper count) | fwd GFLOPs needed | fwd GFLOPs XLA "
              "| XLA / needed "
              "| train GFLOPs XLA | fwd peak GiB | train peak GiB | train peak GiB, remat |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for a in rows:
        c = a.case
        remat = a.train_remat.peak_bytes if a.train_remat else None
        oom = device_bytes is not None and a.train.peak_bytes > device_bytes
        train_peak = _gib(a.train.peak_bytes) + (" (OOM)" if oom else "")
        lines.append(
            f"| {c.attention_type} | {c.frames}×{c.image_size}² | {c.batch_size} | {a.params / 1e6:.1f} "
            f"| {_g(a.analytic_flops)} | {_g(a.needed_flops)} | {_g(a.forward.flops)} | {a.flops_ratio:.3f} "
            f"| {_g(a.train.flops)} "
            f"| {_gib(a.forward.peak_bytes)} | {train_peak} | {_gib(remat)} |"
        )
    return "\n".join(lines)


def speed_table(rows: Sequence[CaseTiming]) -> str:
    """One row per timed case: median ms of forward and train step, ours and the reference's, and the ratio."""
    header = ("| case | scheme | batch | fwd ms (ours) | fwd ms (PyTorch) | fwd speed-up | train ms (ours) "
              "| train ms (PyTorch) | train speed-up | train clips/s (ours) | note |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for t in rows:
        c = t.case
        clips = "—" if t.train is None else f"{t.train.clips_per_second(c.batch_size):,.1f}"
        lines.append(
            f"| {c.name} | {c.attention_type} | {c.batch_size} | {_ms(t.forward)} | {_ms(t.reference_forward)} "
            f"| {_ratio(t.forward_speedup)} | {_ms(t.train)} | {_ms(t.reference_train)} | {_ratio(t.train_speedup)} "
            f"| {clips} | {t.note} |"
        )
    return "\n".join(lines)


def _sweep(rows: Sequence[CaseAnalysis], sweep: str):
    by_scheme: dict[str, list[CaseAnalysis]] = {}
    for a in rows:
        if a.case.sweep == sweep:
            by_scheme.setdefault(a.case.attention_type, []).append(a)
    return by_scheme


def plot_figure3(rows: Sequence[CaseAnalysis], path: str | Path, device_bytes: int | None = None,
                 device_name: str = "") -> Path:
    """Forward TFLOPs and train-step peak memory against image size (8 frames) and frame count (224^2), one
    line per scheme; memory above the device's limit is marked as out of memory, as the paper's Figure 3 does."""
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for col, (sweep, axis_name, key) in enumerate(
        [("image_size", "image size (pixels, 8 frames)", lambda a: a.case.image_size),
         ("frames", "frames (224 px)", lambda a: a.case.frames)]
    ):
        for scheme, cases in sorted(_sweep(rows, sweep).items()):
            cases = sorted(cases, key=key)
            xs = [key(a) for a in cases]
            axes[0, col].plot(xs, [a.analytic_flops / 1e12 for a in cases], marker="o", label=scheme)
            axes[1, col].plot(xs, [a.train.peak_bytes / GIB for a in cases], marker="o", label=scheme)
        axes[0, col].set_xlabel(axis_name)
        axes[1, col].set_xlabel(axis_name)
        axes[0, col].set_ylabel("forward TFLOPs per clip")
        axes[1, col].set_ylabel("train-step peak memory (GiB)")
        axes[0, col].set_yscale("log")
        axes[1, col].set_yscale("log")
        if device_bytes:
            axes[1, col].axhline(device_bytes / GIB, color="red", linestyle="--",
                                 label=f"{device_name} memory: above = out of memory".strip())
        for ax in axes[:, col]:
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle("TimeSformer (ViT-B/16) cost by attention scheme, after the paper's Figure 3")
    fig.tight_layout()
    return save_figure(fig, path)


def _as_json(value):
    if dataclasses.is_dataclass(value):
        out = {f.name: _as_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
        for name in ("peak_bytes", "flops_ratio", "forward_speedup", "train_speedup"):
            if hasattr(type(value), name):
                out[name] = getattr(value, name)
        return out
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_json(v) for v in value]
    return value


def write_json(analyses: Sequence[CaseAnalysis], timings: Sequence[CaseTiming], environment: dict,
               path: str | Path) -> Path:
    path = Path(path)
    record = {"environment": environment, "analysis": _as_json(list(analyses)), "timing": _as_json(list(timings))}
    path.write_text(json.dumps(record, indent=1, default=str))
    return path
