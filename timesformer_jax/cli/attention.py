"""Space-time attention maps: the attention rollout of the cls token over the patches of one video's centre
test view, drawn over its frames.

    timesformer attention --checkpoint facebook/timesformer-base-finetuned-k400 --output maps/ clip.mp4
    timesformer attention --checkpoint demo_runs/seed0/divided_space_time --per_block --output maps/ clip.mp4

Writes OUT/<stem>.attention.png (the sampled frames in a row, then the rollout overlaid; --per_block: one row per
block, the rollout up to it), OUT/<stem>.attention.gif (the overlay over time) and OUT/<stem>.attention.npz (the
maps (depth, T, H, W), the raw weights of every block and stage, the frames). Heads are averaged, the residual
counts as the identity; for divided attention each block's temporal and spatial stages are composed
(timesformer_jax/inference/rollout.py says exactly how).
"""
import sys
from timesformer_jax.flag_spelling import ArgumentParser


def parse_args(argv):
    parser = ArgumentParser(prog="timesformer attention", description=__doc__)
    parser.add_argument("video", metavar="VIDEO", help="a video file")
    parser.add_argument("--checkpoint", required=True, help="checkpoint path or Hugging Face Hub id")
    parser.add_argument("--output", required=True, metavar="OUT", help="folder for the pictures")
    parser.add_argument("--revision", help="Hub revision (branch, tag or commit) for a Hub id")
    parser.add_argument("--num_heads", type=int, help="attention heads, for formats that do not store them")
    parser.add_argument("--sampling_rate", type=int,
                        help="frame step at the protocol's fps (default: the checkpoint's protocol, else 32 at 30 fps)")
    parser.add_argument("--per_block", action="store_true", help="one row per block instead of the rollout only")
    parser.add_argument("--labels", metavar="FILE", help="class names, one per line in class order")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from timesformer_jax.data.video_io import VideoReadError
    from timesformer_jax.inference.attention_maps import visualize_attention

    try:
        visualize_attention(args.checkpoint, args.video, args.output, num_heads=args.num_heads,
                            per_block=args.per_block, revision=args.revision, labels_file=args.labels,
                            sampling_rate=args.sampling_rate)
    except (ValueError, FileNotFoundError, VideoReadError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def run(argv: list[str] | None = None) -> int:
    """`timesformer attention ARGS` (argv: ARGS): the exit status."""
    return main(argv)
