"""Features and action timelines for videos of any length: the model's clip window slid over each video.

    timesformer features --checkpoint facebook/timesformer-base-finetuned-k400 --output feats/ talk.mp4
    timesformer features --checkpoint runs/k400_base --stride_seconds 1 --plot --output feats/ videos/
    timesformer features --checkpoint ckpt --layer block_5 --pool mean --output feats/ videos/

Per video, OUT/<name>.npz holds window_start_seconds / window_end_seconds (N,), frame_indices (N, T), features
(N, D) (pre-logits by default), embedding (D,) (the mean over windows) and, for classifiers, logits (N, C); with
OUT/<name>.timeline.tsv (the top class per window) and, with --plot, OUT/<name>.timeline.png. OUT/index.json
lists every video with its output or error (and warnings for a file that read only in part). <name> is the file
name, or the path inside a folder given (a/b.mp4 -> a__b.mp4). Each video is decoded once, in order, in bounded
memory. Rerunning skips videos already done with the same checkpoint weights, layer, pooling, window options
and dtype from an unchanged file, and recomputes the others; a file that cannot be read is reported and skipped,
the others go on. Exit status 0 when every video was processed, 1 when none was (or the checkpoint could not be
loaded), 2 when some failed.
"""
import sys
from timesformer_jax.flag_spelling import ArgumentParser


def parse_args(argv):
    parser = ArgumentParser(prog="timesformer features", description=__doc__)
    parser.add_argument("videos", nargs="+", metavar="VIDEO_OR_DIR", help="video files and/or folders of them")
    parser.add_argument("--checkpoint", required=True, help="checkpoint path or Hugging Face Hub id")
    parser.add_argument("--output", required=True, metavar="OUT", help="folder for the .npz files and index.json")
    parser.add_argument("--revision", help="Hub revision (branch, tag or commit) for a Hub id")
    parser.add_argument("--num_heads", type=int, help="attention heads, for formats that do not store them")
    parser.add_argument("--stride_seconds", type=float, help="time between window starts (default: half a window)")
    parser.add_argument("--sampling_rate", type=int,
                        help="frame step at the protocol's fps (default: the checkpoint's protocol, else 32 at 30 fps)")
    parser.add_argument("--layer", default="pre_logits",
                        help="pre_logits (default: the final norm of the cls token) or block_N (0-based)")
    parser.add_argument("--pool", choices=("cls", "mean"), default="cls",
                        help="for block_N: the block's cls token (default) or the mean of its patch tokens")
    parser.add_argument("--batch_size", type=int, default=8, help="windows per forward pass (default 8)")
    parser.add_argument("--labels", metavar="FILE", help="class names, one per line in class order")
    parser.add_argument("--plot", action="store_true", help="also draw each timeline as a PNG")
    parser.add_argument("--antialias", action="store_true",
                        help="antialiased resize; the default (none) is the official test transform's")
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto",
                        help="compute dtype (auto: bfloat16 on GPU/TPU, float32 on CPU)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from timesformer_jax.inference.feature_folder import extract_features

    try:
        index = extract_features(
            args.checkpoint, args.videos, args.output, num_heads=args.num_heads, dtype=args.dtype,
            layer=args.layer, pool=args.pool, stride_seconds=args.stride_seconds, batch_size=args.batch_size,
            labels_file=args.labels, plot=args.plot, revision=args.revision, sampling_rate=args.sampling_rate,
            antialias=args.antialias or None,
        )
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    run = index.get("last_run", {})
    failed, total = run.get("failed", 0), run.get("videos", 0)
    return 0 if not failed else 1 if failed == total else 2


def run(argv: list[str] | None = None) -> int:
    """`timesformer features ARGS` (argv: ARGS): the exit status."""
    return main(argv)
