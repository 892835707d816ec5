"""Seconds per video of `tools/predict.py`'s path, split into decode (+ resize, crops) and model; and what
seeking saves on a long file.

    python benchmarks/predict_throughput.py --workdir /tmp/predict_bench [--long_minutes 10]

1. base 8x224 (a random-weight Hugging Face TimesformerForVideoClassification, the K400 architecture), the
   official 1 x 3 views, float32 on this machine, on a 10 s 640x360 30 fps H.264 file: the median of 3 calls
   after the compiling one;
2. decoding the frames of one test view (8 x 32 at 30 fps, the view at the middle of the file) from a
   1920x1080 H.264 file of `--long_minutes` minutes: `read_frames` (seeks to the keyframe before the first frame,
   stops after the last) against decoding from the start up to the last frame without seeking.

Prints a Markdown table (copied into docs/benchmarks.md).
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np


def write_scene(path: Path, seconds: float, height: int, width: int, fps: float = 30.0) -> Path:
    """A panning smooth colour field with grain, encoded frame by frame (H.264, the libx264 defaults of
    `write_video`, keyframe every 250 frames)."""
    import av

    if path.exists():
        return path
    rng = np.random.default_rng(0)
    coarse = rng.uniform(0, 255, (9, 16, 3)).astype(np.float32)
    rows, cols = np.linspace(0, 8, height), np.linspace(0, 15, width * 2)
    r0, c0 = np.floor(rows).astype(int).clip(0, 7), np.floor(cols).astype(int).clip(0, 14)
    fr, fc = (rows - r0)[:, None, None], (cols - c0)[None, :, None]
    field = ((1 - fr) * ((1 - fc) * coarse[r0][:, c0] + fc * coarse[r0][:, c0 + 1])
             + fr * ((1 - fc) * coarse[r0 + 1][:, c0] + fc * coarse[r0 + 1][:, c0 + 1])).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = int(seconds * fps)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=int(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        for i in range(count):
            shift = (i * 2) % width
            image = np.ascontiguousarray(field[:, shift : shift + width])
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def decode_without_seeking(path: Path, last: int) -> int:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if index >= last:
                frame.to_ndarray(format="rgb24")
                return index
            if index % 32 == 0:
                frame.to_ndarray(format="rgb24")
    return -1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="/tmp/predict_bench")
    parser.add_argument("--long_minutes", type=float, default=10.0)
    parser.add_argument("--skip_model", action="store_true")
    args = parser.parse_args()
    work = Path(args.workdir)
    rows = []

    if not args.skip_model:
        from timesformer_jax.bench.reference import import_torchvision_without_c_ops

        import_torchvision_without_c_ops()
        import timesformer_jax
        from timesformer_jax.inference import classify
        from transformers import TimesformerConfig, TimesformerForVideoClassification

        model_dir = work / "hf_base_k400"
        if not model_dir.exists():
            TimesformerForVideoClassification(TimesformerConfig(num_labels=400)).save_pretrained(model_dir)
        clip = write_scene(work / "clip_10s_640x360.mp4", 10, 360, 640)
        model = timesformer_jax.load_pretrained(model_dir)
        classify(model, clip)  # compile
        runs = [classify(model, clip)[0] for _ in range(3)]
        decode = statistics.median(r.decode_seconds for r in runs)
        forward = statistics.median(r.model_seconds for r in runs)
        rows.append(f"| base 8x224, 1 x 3 views, float32, 10 s 640x360 H.264 | decode + resize + crops "
                    f"{decode:.2f} s | model {forward:.2f} s | total {decode + forward:.2f} s |")

    from timesformer_jax.data.video_io import probe_video, read_frames

    long = write_scene(work / f"long_{args.long_minutes:g}min_1080p.mp4", args.long_minutes * 60, 1080, 1920)
    info = probe_video(long)
    from timesformer_jax.data.sampling import dense_indices

    indices = dense_indices(info.num_frames, 8, 32, 0.5, fps=info.fps)
    times = {}
    for name, run in (("seek", lambda: read_frames(long, indices, info.fps)),
                      ("no seek", lambda: decode_without_seeking(long, int(indices[-1])))):
        started = time.perf_counter()
        run()
        times[name] = time.perf_counter() - started
    rows.append(f"| one view (8 x 32) at the middle of a {args.long_minutes:g} min 1920x1080 H.264 file "
                f"({info.num_frames} frames) | with seeking {times['seek']:.2f} s | decoding from the start "
                f"{times['no seek']:.1f} s | |")
    print("| case | | | |\n|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
