"""The whole benchmark run behind `timesformer benchmark`: analyse the grid, time the speed cases, write reports."""
from __future__ import annotations

import dataclasses
import datetime
import platform
import time
from pathlib import Path
from typing import Callable, Sequence

import jax

from timesformer_jax.bench.cases import BenchCase, grid_cases, unsupported_reason
from timesformer_jax.bench.cases import speed_cases as make_speed_cases
from timesformer_jax.bench.report import analysis_table, plot_figure3, speed_table, write_json
from timesformer_jax.bench.runner import CaseAnalysis, analyse_case, cpu_threads, device_memory_bytes, time_case
from timesformer_jax.model import ATTENTION_TYPES
from timesformer_jax.parallel import create_mesh


def environment() -> dict:
    device = jax.devices()[0]
    return {
        "date": datetime.date.today().isoformat(),
        "device": f"{len(jax.devices())} x {device.device_kind} ({device.platform})",
        "cpu": platform.processor() or platform.machine(),
        "cpu_threads": cpu_threads(),
        "jax": jax.__version__,
        "device_memory_gib": round(device_memory_bytes(device) / 2**30, 1),
    }


def _check_schemes(schemes: Sequence[str]) -> None:
    unknown = [s for s in schemes if s not in ATTENTION_TYPES]
    if unknown:
        raise ValueError(f"unknown attention scheme(s) {unknown}; expected some of {ATTENTION_TYPES}")


def _key(case: BenchCase):
    return (case.attention_type, case.frames, case.image_size, case.batch_size)


def run_benchmark(out_dir: str | Path, schemes: Sequence[str] = ATTENTION_TYPES, frames=(8, 16, 32, 64, 96),
                  image_sizes=(224, 336, 448, 560), grid: bool = True, grid_batch_size: int = 1, remat: bool = True,
                  time_grid_up_to_tflops: float = 0.0, speed_case_names: Sequence[str] = ("small", "base"),
                  speed_schemes: Sequence[str] = ("divided_space_time",), speed_batch_size: int | None = None,
                  repeats: int = 5, budget_s: float = 60.0, reference: bool = True,
                  log: Callable[[str], None] = lambda m: print(m, flush=True)) -> dict:
    """Run everything asked for and write `benchmark.md`, `benchmark.json` and (with a grid) `figure3.png`."""
    _check_schemes(schemes)
    _check_schemes(speed_schemes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    env = environment()
    log(f"benchmark on {env['device']}, {env['cpu_threads']} CPU threads, jax {env['jax']}")
    mesh = create_mesh({"data": 1}, devices=jax.devices()[:1])
    device_bytes = device_memory_bytes()

    analyses: dict[tuple, CaseAnalysis] = {}  # one compile per distinct configuration
    grid_rows: list[CaseAnalysis] = []  # one per grid case (8 x 224 sits on both sweeps)
    skipped: list[str] = []
    cases = grid_cases(schemes, frames, image_sizes, grid_batch_size) if grid else []
    for i, case in enumerate(cases, 1):
        reason = unsupported_reason(case.fields)
        if reason:
            skipped.append(f"{case.attention_type} {case.frames}x{case.image_size}: {reason}")
            continue
        key = _key(case)
        if key not in analyses:
            start = time.perf_counter()
            analyses[key] = analyse_case(case, mesh, with_remat=remat)
            log(f"[{i}/{len(cases)}] analysed {case.attention_type} {case.frames}x{case.image_size} "
                f"in {time.perf_counter() - start:.0f} s")
        grid_rows.append(dataclasses.replace(analyses[key], case=case))

    timed_cases = make_speed_cases(speed_case_names, speed_schemes, speed_batch_size) if speed_case_names else []
    if time_grid_up_to_tflops > 0:
        timed_keys = set()
        for a in grid_rows:
            if a.analytic_flops <= time_grid_up_to_tflops * 1e12 and _key(a.case) not in timed_keys:
                timed_keys.add(_key(a.case))
                timed_cases.append(a.case)
    timings = []
    for i, case in enumerate(timed_cases, 1):
        log(f"[{i}/{len(timed_cases)}] {case.name} {case.attention_type} batch {case.batch_size}")
        analysis = analyses.get(_key(case)) or analyse_case(case, mesh, with_remat=False)
        timings.append(time_case(case, mesh, analysis, repeats=repeats, budget_s=budget_s, reference=reference,
                                 log=log))

    sections = [f"# TimeSformer benchmark\n\n{env['date']} on {env['device']}, {env['cpu_threads']} CPU threads, "
                f"jax {env['jax']}; device memory {env['device_memory_gib']} GiB.\n"]
    if timings:
        sections.append("## Speed (median wall time; speed-up = PyTorch time / ours)\n\n" + speed_table(timings))
    if grid_rows:
        sections.append("## Cost per scheme (compile-time analysis, FLOPs for the whole batch)\n\n"
                        + analysis_table(list(analyses.values()), device_bytes))
        plot_figure3(grid_rows, out / "figure3.png", device_bytes, env["device"])
        sections.append("![cost against clip size](figure3.png)")
    if skipped:
        sections.append("Not applicable:\n\n" + "\n".join(f"- {s}" for s in skipped))
    markdown = "\n\n".join(sections) + "\n"
    (out / "benchmark.md").write_text(markdown)
    write_json(list(analyses.values()), timings, env, out / "benchmark.json")
    log(markdown)
    log(f"wrote {out / 'benchmark.md'}, {out / 'benchmark.json'}" + (f", {out / 'figure3.png'}" if grid_rows else ""))
    return {"analysis": list(analyses.values()), "timing": timings, "environment": env}

