"""benchmarks/gpu_check.py at a tiny size on the CPU, so the GPU check cannot rot between GPU runs: every section
runs (cuDNN's are skipped with the reason), the JSON and the table hold what they say, and nothing imports
TensorFlow or PyAV (a typical GPU image has neither)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUN = """
import runpy, sys
sys.argv = ["gpu_check.py", *sys.argv[1:]]
try:
    runpy.run_path(%r, run_name="__main__")
finally:
    print("IMPORTED", sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "tensorflow_datasets", "av"}))
""" % str(REPO / "benchmarks" / "gpu_check.py")


@pytest.mark.slow
def test_the_gpu_check_runs_at_tiny_size_without_tensorflow_or_pyav(tmp_path):
    done = subprocess.run([sys.executable, "-c", RUN, "--out", str(tmp_path), "--tiny", "--repeats", "2",
                           "--schemes", "divided_space_time,space_only"], capture_output=True, text=True,
                          timeout=900, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "IMPORTED []" in done.stdout
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["environment"]["platform"] == "cpu" and result["environment"]["batch_size"] == 2
    assert result["memory"]["predicted_gib"] > 0
    assert "NVIDIA" in result["equality"]["skipped"]
    for scheme in ("divided_space_time", "space_only"):
        case = result["train"][scheme]["xla"]
        assert case["clips_per_s"] == pytest.approx(2 / (case["step_ms"] / 1e3))
        assert case["mfu"] is None  # no known peak for a CPU
        assert "NVIDIA" in result["train"][scheme]["cudnn"]["skipped"]
    assert result["predict"]["xla"]["clips_per_s"] == pytest.approx(3 * result["predict"]["xla"]["videos_per_s_3_views"])
    pytorch = result["pytorch"]
    assert pytorch["device"] == "cpu" and pytorch["ours_xla_over_pytorch_train"] == pytest.approx(
        result["train"]["divided_space_time"]["xla"]["clips_per_s"] / pytorch["train_clips_per_s"])
    table = (tmp_path / "gpu_check.md").read_text()
    assert "| space_only | xla |" in table and "PyTorch HF eager bf16: train" in table
