"""Export a checkpoint as a portable model: serialized StableHLO with its weights (`jax.export`), batch size
symbolic, for CPU, NVIDIA GPU and TPU in one file, loadable with `jax` and `flatbuffers` alone.

    timesformer export --checkpoint facebook/timesformer-base-finetuned-k400 --output k400.jax
    timesformer export --checkpoint runs/k400 --platforms cpu,cuda,tpu --output k400.jax
    python -c "from jax import export; m = export.deserialize(open('k400.jax','rb').read()); print(m.in_avals)"

Writes OUTPUT and OUTPUT.json (input shape, the test protocol: the checkpoint's unless overridden, class
names); `--onnx FILE` also writes an ONNX graph (jax2onnx, batch size symbolic) for onnxruntime. --checkpoint
takes what `timesformer_jax.load_pretrained` reads, or a Hugging Face Hub id.
"""
import json
import sys

from timesformer_jax.flag_spelling import ArgumentParser


def main(argv=None) -> int:
    parser = ArgumentParser(prog="timesformer export", description=__doc__)
    parser.add_argument("--checkpoint", required=True, help="checkpoint path or Hugging Face Hub id")
    parser.add_argument("--output", required=True, help="file to write (and OUTPUT.json beside it)")
    parser.add_argument("--num_heads", type=int, help="attention heads, for formats that do not store them")
    parser.add_argument("--revision", help="Hub revision for a Hub id")
    parser.add_argument("--platforms", help="where the file runs, comma-separated among cpu, cuda, rocm, tpu "
                                            "(default: this machine's platform and cpu)")
    parser.add_argument("--onnx", metavar="FILE", help="also write an ONNX graph (needs jax2onnx)")
    parser.add_argument("--sampling_rate", type=int,
                        help="the protocol recorded in OUTPUT.json: frame step (default: the checkpoint's)")
    parser.add_argument("--temporal_views", type=int, help="recorded clips along the video (default: the checkpoint's)")
    parser.add_argument("--spatial_crops", type=int, choices=(1, 3),
                        help="recorded crops along the longer side (default: the checkpoint's)")
    args = parser.parse_args(argv)

    from timesformer_jax.pretrained import load_pretrained
    from timesformer_jax.inference.classify import protocol_for, protocol_line
    from timesformer_jax.inference.export import export_model, export_onnx

    overrides = {"num_heads": args.num_heads} if args.num_heads else {}
    try:
        model = load_pretrained(args.checkpoint, revision=args.revision, **overrides)
        changes = {"sampling_rate": args.sampling_rate, "num_temporal_views": args.temporal_views,
                   "num_spatial_crops": args.spatial_crops}
        protocol = protocol_for(model.module, model.protocol, **{k: v for k, v in changes.items() if v is not None})
        print(protocol_line(model, protocol))
        output, sidecar = export_model(model, args.output, protocol, args.platforms)
        description = json.loads(sidecar.read_text())
        print(f"wrote {output} ({output.stat().st_size / 2**20:.1f} MiB) for {', '.join(description['platforms'])}"
              f" (attention: {description['attention']}) and {sidecar}")
        if args.onnx:
            onnx = export_onnx(model, args.onnx)
            print(f"wrote {onnx} ({onnx.stat().st_size / 2**20:.1f} MiB)")
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def run(argv: list[str] | None = None) -> int:
    """`timesformer export ARGS` (argv: ARGS): the exit status."""
    return main(argv)
