"""The demo's result over several seeds: `configs/demo.py` trained per scheme and seed (`config.seed`: model
init and data order), on the same generated dataset `make demo` uses.

    python benchmarks/demo_seeds.py --workdir /tmp/demo_seeds [--seeds 0,1,2] \
        [--schemes divided_space_time,space_only] [--json docs/demo_results/seeds.json]

Runs resume (rerunning after a stop continues where it was). Prints, per scheme, min / median / max over the
seeds of video top-1, top-1 on the reversal pairs, the worst single pair, and the eval top-1 curve; the JSON
holds every run's numbers. The README's demo table comes from this output.
"""
from __future__ import annotations

import argparse
import ast
import json
import statistics
import time
from pathlib import Path

CONFIG_FILE = Path(__file__).resolve().parents[1] / "configs" / "demo.py"


def run_seed(scheme: str, seed: int, workdir: Path, data_dir: Path, overrides: dict) -> dict:
    from timesformer_jax.scheme_comparison import group_accuracies, read_confusion
    from timesformer_jax.train.config import load_config_file
    from timesformer_jax.train.loop import EVAL_DIR, evaluate_checkpoint, train_and_evaluate
    from timesformer_jax.train.metric_writers import read_history

    config = load_config_file(CONFIG_FILE, scheme)
    config.dataset.data_dir = str(data_dir)
    config.seed = seed
    config.update_from_flattened_dict(overrides)  # ConfigDict's type checks: a wrong type fails here
    run_dir = workdir / f"{scheme}_seed{seed}"
    started = time.perf_counter()
    summary = train_and_evaluate(config, run_dir, log=lambda message: None)
    if summary.stopped_by:  # a stopped run's evaluation is not this seed's result: rerun to resume it
        raise SystemExit(f"{scheme} seed {seed} stopped by {summary.stopped_by} at step {summary.last_step}; "
                         "rerun the same command to resume")
    if summary.eval_metrics is None:
        step, _ = evaluate_checkpoint(config, run_dir, log=lambda message: None)
        confusion_csv = run_dir / f"eval_step{step}" / "confusion_matrix.csv"
    else:
        confusion_csv = run_dir / EVAL_DIR / "confusion_matrix.csv"
    accuracies = group_accuracies(*read_confusion(confusion_csv))
    curve = [(r["step"], r["video_top1"]) for r in read_history(run_dir) if r["kind"] == "eval"]
    return {"scheme": scheme, "seed": seed, **accuracies, "eval_curve": curve,
            "minutes": (time.perf_counter() - started) / 60}


def parse_override(text: str) -> tuple[str, object]:
    """"optimizer.epochs=20" -> ("optimizer.epochs", 20): the value as a Python literal (numbers, True/False,
    None, strings in quotes), else as the string it is."""
    key, sep, value = text.partition("=")
    if not sep:
        raise SystemExit(f"--set expects FIELD=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def spread(values) -> str:
    values = [100 * v for v in values]
    return f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="/tmp/demo_seeds")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--schemes", default="divided_space_time,space_only")
    parser.add_argument("--json", help="write every run's numbers here")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="config override, e.g. --set optimizer.epochs=20 (repeatable)")
    args = parser.parse_args()
    from timesformer_jax.data.builders import dataset_builder

    workdir = Path(args.workdir).absolute()
    data_dir = workdir / "tfds"
    dataset_builder("synthetic_motion", str(data_dir), "demo").download_and_prepare()
    overrides = dict(parse_override(item) for item in args.set)
    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for scheme in args.schemes.split(","):
            run = run_seed(scheme, seed, workdir, data_dir, overrides)
            runs.append(run)
            print(f"{scheme} seed {seed}: top1 {100 * run['top1']:.1f}, pairs {100 * run['reversal_pairs']:.1f}, "
                  f"worst pair {100 * run['worst_pair']:.1f}, eval curve "
                  + " ".join(f"{100 * v:.0f}" for _, v in run["eval_curve"]) + f" ({run['minutes']:.1f} min)",
                  flush=True)
            if args.json:
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "overrides": overrides,
                                                       "runs": runs}, indent=1) + "\n")
    print(f"\nmin / median / max over seeds {args.seeds}\n")
    print("| attention_type | top1 | reversal_pairs | worst pair | eval top-1 by epoch (median) |\n|---|---|---|---|---|")
    for scheme in args.schemes.split(","):
        mine = [r for r in runs if r["scheme"] == scheme]
        curve = [statistics.median(r["eval_curve"][i][1] for r in mine) for i in range(len(mine[0]["eval_curve"]))]
        print(f"| {scheme} | {spread(r['top1'] for r in mine)} | {spread(r['reversal_pairs'] for r in mine)} | "
              f"{spread(r['worst_pair'] for r in mine)} | " + " ".join(f"{100 * v:.0f}" for v in curve) + " |")


if __name__ == "__main__":
    main()
