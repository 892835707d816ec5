"""Windows per second and peak memory of `tools/extract_features.py`'s path on long generated 1080p videos.

    python benchmarks/long_video.py --workdir /tmp/long_video_bench [--minutes 1,10] [--dtype float32]

For each length: a 1920x1080 30 fps H.264 file (the panning scene of `benchmarks/predict_throughput.py`), then, in a fresh
process, base 8x224 (random weights, the K400 architecture) slid over it with the default windows (8 x 32 at
30 fps, stride half a window), batch 8. Reports windows, seconds, windows/s, the frames buffered at once and the
process's peak RSS: with memory bounded, the 10-minute video's peak RSS matches the 1-minute one's.
Prints a Markdown table (copied into docs/benchmarks.md).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from predict_throughput import write_scene  # noqa: E402  (benchmarks/predict_throughput.py)

CHILD = """
import json, resource, sys, time
import jax, flax.linen as nn, numpy as np, jax.numpy as jnp
from timesformer_jax.pretrained import PretrainedTimeSformer
from timesformer_jax.inference.features import FeatureExtractor
from timesformer_jax.model import create_model
module = create_model("timesformer_base", dtype=jnp.dtype(sys.argv[2]))
params = nn.meta.unbox(module.init(jax.random.key(0), np.zeros(module.clip_shape(), np.float32))["params"])
extractor = FeatureExtractor(PretrainedTimeSformer(module, params), batch_size=8)
started = time.perf_counter()
result = extractor.extract(sys.argv[1])
seconds = time.perf_counter() - started
print(json.dumps({"windows": result.plan.num_windows, "seconds": seconds,
                  "peak_frames_held": result.peak_frames_held,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="/tmp/long_video_bench")
    parser.add_argument("--minutes", default="1,10", help="comma-separated video lengths")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    args = parser.parse_args()
    work = Path(args.workdir)
    rows = []
    for minutes in [float(m) for m in args.minutes.split(",")]:
        video = write_scene(work / f"long_{minutes:g}min_1080p.mp4", minutes * 60, 1080, 1920)
        out = subprocess.run([sys.executable, "-c", CHILD, str(video), args.dtype], check=True,
                             capture_output=True, text=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(f"| {minutes:g} min 1920x1080 30 fps | {result['windows']} | {result['seconds']:.0f} s | "
                    f"{result['windows'] / result['seconds']:.2f} | {result['peak_frames_held']} | "
                    f"{result['peak_rss_mib']:.0f} MiB |")
        print(rows[-1], flush=True)
    print(f"\nbase 8x224, {args.dtype}, batch 8, default windows\n")
    print("| video | windows | time | windows/s | frames held at once (max) | peak RSS |\n|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
