"""Export a checkpoint as a portable model: serialized StableHLO with its weights (`jax.export`), batch size
symbolic, loadable with `jax` alone.

    python tools/export.py --checkpoint facebook/timesformer-base-finetuned-k400 --output k400.jax
    python -c "from jax import export; m = export.deserialize(open('k400.jax','rb').read()); print(m.in_avals)"

Writes OUTPUT and OUTPUT.json (input shape, test protocol, class names); `--onnx FILE` also writes an ONNX graph
(jax2onnx, batch size symbolic) for onnxruntime. --checkpoint takes what `timesformer_jax.load_pretrained`
reads, or a Hugging Face Hub id.
"""
import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="checkpoint path or Hugging Face Hub id")
    parser.add_argument("--output", required=True, help="file to write (and OUTPUT.json beside it)")
    parser.add_argument("--num-heads", type=int, help="attention heads, for formats that do not store them")
    parser.add_argument("--revision", help="Hub revision for a Hub id")
    parser.add_argument("--onnx", metavar="FILE", help="also write an ONNX graph (needs jax2onnx)")
    args = parser.parse_args(argv)

    from timesformer_jax.convert.pretrained import load_pretrained
    from timesformer_jax.inference.export import export_model, export_onnx

    overrides = {"num_heads": args.num_heads} if args.num_heads else {}
    try:
        model = load_pretrained(args.checkpoint, revision=args.revision, **overrides)
        output, sidecar = export_model(model, args.output)
        print(f"wrote {output} ({output.stat().st_size / 2**20:.1f} MiB) and {sidecar}")
        if args.onnx:
            onnx = export_onnx(model, args.onnx)
            print(f"wrote {onnx} ({onnx.stat().st_size / 2**20:.1f} MiB)")
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
