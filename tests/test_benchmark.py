"""The benchmark's cost model: analytic FLOPs against XLA's count and the paper, and compiled memory growth.

Everything here is compile-time analysis (no timing): `cost_analysis` FLOPs must agree with the hand-written
formula within 10% for every scheme, the formula must give the paper's Table/Figure numbers for the published
models, and divided attention's compiled train-step memory must grow more slowly with the frame count than
joint attention's.
"""
import json

import jax
import numpy as np
import pytest

from timesformer_jax.bench.cases import speed_cases
from timesformer_jax.bench.compiled import compiled_steps
from timesformer_jax.model.flops import attention_groups, forward_flops
from timesformer_jax.bench.report import analysis_table, speed_table
from timesformer_jax.bench.suite import run_benchmark
from timesformer_jax.model import ATTENTION_TYPES, REFERENCE_SCHEMES, TimeSformer, preset_config
from timesformer_jax.parallel import create_mesh

# Width 128 so matrix products dominate as they do at real widths (norms, softmax and GELU are what XLA adds);
# T and the 4 x 4 grid are even so that sparse local-global applies.
SMALL = dict(image_size=32, patch_size=8, num_frames=4, hidden_size=128, depth=2, num_heads=4, mlp_dim=512,
             num_classes=10)


@pytest.fixture(scope="module")
def mesh():
    return create_mesh({"data": 1}, devices=jax.devices()[:1])


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ATTENTION_TYPES)
def test_analytic_flops_agree_with_xla(scheme, mesh):
    fields = dict(SMALL, attention_type=scheme)
    steps = compiled_steps(TimeSformer(**fields), batch_size=2, mesh=mesh)
    xla = steps.forward_cost().flops
    analytic = forward_flops(fields, batch_size=2)["needed"]
    assert analytic == pytest.approx(xla, rel=0.10), (scheme, analytic, xla)
    # XLA counts more than the matrix products (norms, softmax, GELU), never fewer.
    assert xla >= analytic
    # A train step is forward + backward (about 2x forward) + the update: between 2.5x and 3.6x the forward.
    assert 2.5 * xla < steps.train_cost().flops < 3.6 * xla


def test_analytic_flops_reproduce_the_paper():
    """Paper, Section 4.1 / Table 2: 0.59, 5.11 and 7.14 TFLOPs (multiply-adds) for 3 views of base, HR and L."""
    views = 3
    for preset, paper_tmacs in [("timesformer_base", 0.59), ("timesformer_hr", 5.11), ("timesformer_large", 7.14)]:
        macs = forward_flops(preset_config(preset))["total"] / 2 * views
        assert macs / 1e12 == pytest.approx(paper_tmacs, abs=0.006), preset


def test_attention_groups_cover_every_token_once_per_stage():
    t, h, w = 8, 14, 14
    for scheme in ATTENTION_TYPES:
        for stage in attention_groups(scheme, t, h, w):
            cls_copies = 0 if stage.output_fc else stage.groups
            assert stage.groups * stage.length - cls_copies == t * h * w, (scheme, stage)


@pytest.mark.slow
def test_divided_memory_grows_slower_than_joint(mesh):
    """Compiled train-step peak memory at 2 and 8 frames of a 64 px clip (64 patches per frame)."""
    def peak(scheme, frames):
        fields = dict(SMALL, image_size=64, num_frames=frames, depth=1, attention_type=scheme)
        return compiled_steps(TimeSformer(**fields), batch_size=2, mesh=mesh).train_cost().peak_bytes

    growth = {s: peak(s, 8) - peak(s, 2) for s in ("divided_space_time", "joint_space_time")}
    assert 0 < growth["divided_space_time"] < growth["joint_space_time"] / 2, growth


@pytest.mark.slow
def test_benchmark_writes_tables_plot_and_json(tmp_path, mesh):
    """One small grid and the `small` speed case, timed once, on our side only (the reference is covered by
    the speed comparison in docs/benchmarks.md)."""
    result = run_benchmark(tmp_path, schemes=["divided_space_time", "joint_space_time"], frames=[8], image_sizes=[224],
                           remat=False, speed_case_names=["small"], repeats=1, reference=False, log=lambda m: None)
    markdown = (tmp_path / "benchmark.md").read_text()
    assert (tmp_path / "figure3.png").stat().st_size > 10_000
    record = json.loads((tmp_path / "benchmark.json").read_text())
    assert len(record["analysis"]) == 2  # 8 x 224 sits on both sweeps: one compile, one row per scheme
    divided = [a for a in record["analysis"] if a["case"]["fields"]["attention_type"] == "divided_space_time"]
    assert f"| divided_space_time | 8×224² | 1 | {divided[0]['params'] / 1e6:.1f} |" in markdown
    assert "| small | divided_space_time | 4 |" in markdown
    timing = result["timing"][0]
    assert timing.train.median_s > 0 and timing.forward.median_s > 0


def test_tables_mark_missing_values():
    case = speed_cases(["small"])[0]
    from timesformer_jax.bench.runner import CaseTiming

    table = speed_table([CaseTiming(case, note="no PyTorch reference for this scheme")])
    assert "| small | divided_space_time | 4 | — | — | — |" in table
    assert analysis_table([]).count("\n") == 1


@pytest.mark.parametrize("scheme", REFERENCE_SCHEMES)
def test_reference_model_has_our_configuration(scheme, mesh):
    """The PyTorch model the speed comparison times is the same network: same parameter count, same logits shape."""
    import torch

    from timesformer_jax.bench.reference import hf_model, reference_calls

    fields = dict(SMALL, attention_type=scheme)
    ours = compiled_steps(TimeSformer(**fields), batch_size=2, mesh=mesh).abstract_state.params
    ours_count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(ours))
    theirs = hf_model(fields)
    assert sum(p.numel() for p in theirs.parameters()) == ours_count
    forward, train_step = reference_calls(fields, batch_size=2, threads=1)
    assert tuple(forward().shape) == (2, 10)
    assert torch.isfinite(train_step())


@pytest.mark.slow
def test_reference_runs_in_a_fresh_process():
    """What `tools/benchmark.py` does, outside pytest: conftest.py's torchvision work-around must not be what makes
    the reference importable (it once was, and the CLI failed on its first reference case)."""
    import subprocess
    import sys

    script = (
        "from timesformer_jax.bench.reference import reference_calls\n"
        f"forward, train_step = reference_calls({dict(SMALL, attention_type='divided_space_time')!r}, 2, 1)\n"
        "print(tuple(forward().shape), float(train_step()))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("(2, 10)"), done.stdout
