"""Convert an ImageNet ViT or a TimeSformer checkpoint into a timesformer_jax checkpoint directory.

    timesformer convert --source npz --input ViT-B_16.npz --output ckpt/vit_b16_k400
    timesformer convert --source timm --input jx_vit_base_p16_224-80ecf9dd.pth --output ckpt/k400 \\
        --num_classes 400 --num_frames 8 --image_size 224 --attention_type divided_space_time
    timesformer convert --source hf --input ./vit-base-patch16-224-in21k --output ckpt/ssv2 --num_classes 174
    timesformer convert --source official --input TimeSformer_divST_8x32_224_K400.pyth --output ckpt/official

The output loads with `timesformer_jax.load_pretrained(OUTPUT)`, and training configs can name it as their
initialisation. Width, depth, patch and MLP sizes come from the checkpoint; the flags set what the video model
adds. A failed conversion writes nothing.
"""
import sys
import time

from timesformer_jax.convert.conversion import convert_to_directory
from timesformer_jax.convert.inflate import TEMPORAL_INITS
from timesformer_jax.convert.resample import METHODS
from timesformer_jax.convert.readers import SOURCES
from timesformer_jax.inference.labels import read_label_file
from timesformer_jax.model import ATTENTION_TYPES, PRESETS
from timesformer_jax.flag_spelling import ArgumentParser


def parse_args(argv):
    parser = ArgumentParser(prog="timesformer convert", description=__doc__)
    parser.add_argument("--source", choices=SOURCES, help="checkpoint format (default: detected from the input)")
    parser.add_argument("--input", required=True, help="checkpoint file, or directory for --source hf")
    parser.add_argument("--output", required=True, help="directory to write (must not exist unless --overwrite)")
    parser.add_argument("--preset", default="timesformer_base", choices=sorted(PRESETS),
                        help="defaults for frames, image size, classes (and heads when the widths match)")
    parser.add_argument("--num_classes", type=int, help="classifier size; 0 for a features-only model")
    parser.add_argument("--num_frames", type=int, help="frames per clip (time embedding size)")
    parser.add_argument("--image_size", type=int, help="input height and width (sets the patch grid)")
    parser.add_argument("--attention_type", choices=ATTENTION_TYPES, help="space-time attention scheme")
    parser.add_argument("--num_heads", type=int, help="attention heads, for formats that do not store them")
    parser.add_argument("--temporal_init", default="zero", choices=TEMPORAL_INITS,
                        help="zero: every new stage's output projection starts at zero (the clip model equals "
                             "the ViT on static clips); official: block 0's stays random, as the official code")
    parser.add_argument("--resample", default="bilinear", choices=METHODS,
                        help="interpolation for position/time embeddings of another grid or frame count")
    parser.add_argument("--seed", type=int, default=0, help="seed for freshly initialised tensors (e.g. the head)")
    parser.add_argument("--labels", metavar="FILE", help="class names to store, one per line in class order "
                                                         "(default: the checkpoint's own, e.g. HF id2label)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    overrides = {
        name: value
        for name, value in (
            ("num_classes", args.num_classes),
            ("num_frames", args.num_frames),
            ("image_size", args.image_size),
            ("attention_type", args.attention_type),
            ("num_heads", args.num_heads),
        )
        if value is not None
    }
    started = time.perf_counter()

    def log(message):
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", flush=True)

    try:
        class_names = read_label_file(args.labels) if args.labels else None
        output, report = convert_to_directory(
            args.input,
            args.output,
            args.source,
            overwrite=args.overwrite,
            log=log,
            preset=args.preset,
            temporal_init=args.temporal_init,
            resample=args.resample,
            seed=args.seed,
            class_names=class_names,
            **overrides,
        )
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}\nnothing was written to {args.output}", file=sys.stderr)
        return 1
    log(f"wrote {output}")
    print(report.summary())
    print(f"load it with: timesformer_jax.load_pretrained({str(output)!r})")
    return 0


def run(argv: list[str] | None = None) -> int:
    """`timesformer convert ARGS` (argv: ARGS): the exit status."""
    return main(argv)
