"""`timesformer COMMAND [FLAGS]`: every tool of the package behind one command (also `python -m timesformer_jax`).

Flags are written `--snake_case` (`--top_k`, `--manual_dir`, `--config.model.num_heads=12`); the dashed
spelling (`--top-k`) is accepted too. `timesformer COMMAND --help` lists a command's flags.
"""
from __future__ import annotations

import difflib
import importlib
import os
import sys

# (command, module under timesformer_jax.cli, what it does)
COMMANDS = (
    ("predict", "predict", "classify video files: the top-k labels of each"),
    ("features", "features", "features and action timelines of videos of any length"),
    ("attention", "attention", "space-time attention maps of a video, drawn over its frames"),
    ("export", "export", "a portable model file (StableHLO + weights) for CPU, GPU and TPU"),
    ("convert", "convert", "an ImageNet ViT or TimeSformer checkpoint into a timesformer_jax checkpoint"),
    ("build-dataset", "build_dataset", "prepare a TFDS video dataset from local files (needs the data extra)"),
    ("train", "train", "train or fine-tune from a config (resumes a workdir)"),
    ("eval", "evaluate", "multi-view evaluation of a training run's checkpoint"),
    ("compile", "compile", "compile a config for a TPU slice or GPUs you do not have: memory, fit, FLOPs"),
    ("demo", "demo", "train two attention schemes on the embedded dataset and compare them"),
    ("benchmark", "benchmark", "FLOPs, memory and speed of the attention schemes against PyTorch"),
    ("summarize", "summarize", "parameters, tokens and a timed forward pass of a config's model"),
)


def quiet_environment() -> None:
    """Before any import of TensorFlow or JAX: no TensorFlow start-up banners (oneDNN, CPU features, XLA
    service lines) and no TFDS / absl deprecation chatter; warnings and errors still print."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import warnings

    import logging

    for module in ("tensorflow_datasets", "tensorflow", "google.protobuf", "jax2onnx", "onnx_ir", "onnxscript"):
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)
        warnings.filterwarnings("ignore", category=FutureWarning, module=module)
    # TensorFlow and TFDS log their own API deprecations through absl at WARNING ("`FeatureConnector.dtype` is
    # deprecated", "calling map_fn_v2 ... is deprecated"); orbax warns on every save without metrics
    logging.getLogger("absl").addFilter(_not_library_chatter)
    for name in ("onnx_ir", "onnxscript", "jax2onnx"):
        logging.getLogger(name).setLevel(logging.ERROR)  # --onnx: warnings about the converter's own internals


def _not_library_chatter(record) -> bool:
    message = record.getMessage()
    if "deprecat" in message and "tensorflow" in record.pathname:
        return False
    # saves between evaluations carry no metrics by design; the best-checkpoint choice reads the ones that do
    return not ("tracked_metric" in message and "orbax" in record.pathname)


def usage() -> str:
    from timesformer_jax import __version__

    width = max(len(name) for name, _, _ in COMMANDS)
    lines = [f"timesformer {__version__}: TimeSformer video transformers in JAX", "",
             "usage: timesformer COMMAND [FLAGS]    (timesformer COMMAND --help for its flags)", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, _, summary in COMMANDS]
    lines += ["", "Flags are --snake_case (--top_k); --top-k is accepted too."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from timesformer_jax import __version__

        print(__version__)
        return 0
    modules = {name: module for name, module, _ in COMMANDS}
    command = argv[0].replace("_", "-")
    if command not in modules:
        close = difflib.get_close_matches(argv[0], list(modules), n=2, cutoff=0.5)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        print(f"error: unknown command {argv[0]!r}{hint} (timesformer --help lists them)", file=sys.stderr)
        return 2
    quiet_environment()
    status = importlib.import_module(f"timesformer_jax.cli.{modules[command]}").run(argv[1:])
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
