"""Classify video files with a TimeSformer checkpoint, using the official test protocol.

    timesformer predict --checkpoint facebook/timesformer-base-finetuned-k400 archery.mp4
    timesformer predict --checkpoint ckpt/k400 --top_k 3 --json predictions.json videos/
    timesformer predict --checkpoint TimeSformer_divST_8x32_224_K400.pyth --temporal_views 3 clip.webm

--checkpoint takes anything `timesformer_jax.load_pretrained` reads (a `timesformer convert` directory, a Hugging
Face Timesformer directory, an official .pyth, ...) or a Hugging Face Hub id (read from the Hub cache; see
HF_HUB_OFFLINE). Folders are searched for video files. Each video gets a table of its top-k labels; a file that
cannot be read is reported and skipped, the others go on; a file that reads only in part (corrupt packets, fewer
frames than its header says) is classified from what decodes, with a warning. Exit status 0 when every video was
classified, 1 when none could be (or the checkpoint could not be loaded), 2 when some failed.
"""
import sys

from timesformer_jax.inference.classify import AGGREGATES
from timesformer_jax.flag_spelling import ArgumentParser


def parse_args(argv):
    parser = ArgumentParser(prog="timesformer predict", description=__doc__)
    parser.add_argument("videos", nargs="+", metavar="VIDEO_OR_DIR", help="video files and/or folders of them")
    parser.add_argument("--checkpoint", required=True, help="checkpoint path or Hugging Face Hub id")
    parser.add_argument("--revision", help="Hub revision (branch, tag or commit) for a Hub id")
    parser.add_argument("--num_heads", type=int, help="attention heads, for formats that do not store them")
    parser.add_argument("--top_k", type=int, default=5, help="labels to show per video (default 5)")
    parser.add_argument("--json", metavar="FILE", help="write every result (or error) as a JSON list")
    parser.add_argument("--labels", metavar="FILE", help="class names, one per line in class order")
    parser.add_argument("--sampling_rate", type=int,
                        help="frame step at the protocol's fps (default: the checkpoint's protocol, else 32 at 30 fps)")
    parser.add_argument("--temporal_views", type=int,
                        help="clips along the video (default: the checkpoint's protocol, else 1)")
    parser.add_argument("--spatial_crops", type=int, choices=(1, 3),
                        help="crops along the longer side (default: the checkpoint's protocol, else 3)")
    parser.add_argument("--aggregate", choices=AGGREGATES, default="logits",
                        help="logits: softmax of the views' mean logits (default); softmax: mean of their softmax")
    parser.add_argument("--antialias", action="store_true",
                        help="antialiased resize; the default (none) is the official test transform's")
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto",
                        help="compute dtype (auto: bfloat16 on GPU/TPU, float32 on CPU)")
    parser.add_argument("--batch_size", type=int, help="clips per forward pass (default: one video's views)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from timesformer_jax.inference.predict_files import predict_files

    try:
        predictions = predict_files(
            args.checkpoint, args.videos, num_heads=args.num_heads, dtype=args.dtype, revision=args.revision,
            labels_file=args.labels, k=args.top_k, aggregate=args.aggregate, json_path=args.json,
            batch_size=args.batch_size, sampling_rate=args.sampling_rate, num_temporal_views=args.temporal_views,
            num_spatial_crops=args.spatial_crops, antialias=args.antialias or None,
        )
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    failed = sum(p.error is not None for p in predictions)
    return 0 if not failed else 1 if failed == len(predictions) else 2


def run(argv: list[str] | None = None) -> int:
    """`timesformer predict ARGS` (argv: ARGS): the exit status."""
    return main(argv)
