"""The demo's result over several seeds: `configs/demo.py` trained per scheme and seed (`config.seed`: model
init and data order), on the same generated dataset `make demo` uses.

    python benchmarks/demo_seeds.py --workdir /tmp/demo_seeds [--seeds 0,1,2] \
        [--schemes divided_space_time,space_only] [--json docs/demo_results/seeds.json]

Each run is what `make demo SEED=N` trains (`scheme_comparison.train_scheme`), in WORKDIR/seed<N>/<scheme>; runs
resume (rerunning after a stop continues where it was). Prints, per scheme, min / median / max over the seeds of
video top-1, top-1 on the reversal pairs, the worst single pair, epochs trained and minutes; the JSON holds every
run's numbers and eval curve. The tables in docs/demo.md come from this output.
"""
from __future__ import annotations

import argparse
import ast
import json
import statistics
import time
from pathlib import Path

CONFIG_FILE = Path(__file__).resolve().parents[1] / "configs" / "demo.py"


def run_seed(scheme: str, seed: int, workdir: Path, dataset_version: str, overrides: dict) -> dict:
    """`configs/demo.py` for `scheme` with `seed` and `overrides`, trained as `make demo` trains it, in
    workdir/seed<N>/<scheme>; the run's numbers as a JSON-ready dict."""
    from timesformer_jax.scheme_comparison import DemoStopped, seed_dir, train_scheme
    from timesformer_jax.train.config import load_config_file

    config = load_config_file(CONFIG_FILE, scheme)
    config.dataset.data_dir = str(workdir / "tfds")
    config.seed = seed
    config.update_from_flattened_dict(overrides)  # ConfigDict's type checks: a wrong type fails here
    try:
        result = train_scheme(config, seed_dir(workdir, seed) / scheme, dataset_version, log=lambda message: None)
    except DemoStopped as e:  # a stopped run's evaluation is not this seed's result: rerun to resume it
        raise SystemExit(str(e)) from None
    return {"scheme": scheme, "seed": seed, **result.accuracies, "epochs": result.epochs,
            "eval_curve": result.eval_curve, "plateau": result.plateau, "minutes": result.minutes}


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


def spread(values, scale: float = 100.0) -> str:
    """"min / median / max" of `values` times `scale` (100: fractions as percent)."""
    values = [scale * v for v in values]
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
    from timesformer_jax.scheme_comparison import prepare_demo_data

    workdir = Path(args.workdir).absolute()
    version = str(prepare_demo_data(workdir, log=lambda message: None).version)
    overrides = dict(parse_override(item) for item in args.set)
    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for scheme in args.schemes.split(","):
            run = run_seed(scheme, seed, workdir, version, overrides)
            runs.append(run)
            print(f"{scheme} seed {seed}: top1 {100 * run['top1']:.1f}, pairs {100 * run['reversal_pairs']:.1f}, "
                  f"worst pair {100 * run['worst_pair']:.1f}, {run['epochs']:.0f} epochs, eval curve "
                  + " ".join(f"{100 * v:.0f}" for _, v in run["eval_curve"]) + f" ({run['minutes']:.1f} min)",
                  flush=True)
            if args.json:
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "overrides": overrides,
                                                       "runs": runs}, indent=1) + "\n")
    print(f"\nmin / median / max over seeds {args.seeds}\n")
    print("| attention_type | top1 | reversal_pairs | worst pair | epochs | minutes |\n|---|---|---|---|---|---|")
    for scheme in args.schemes.split(","):
        mine = [r for r in runs if r["scheme"] == scheme]
        print(f"| {scheme} | {spread(r['top1'] for r in mine)} | {spread(r['reversal_pairs'] for r in mine)} | "
              f"{spread(r['worst_pair'] for r in mine)} | {spread((r['epochs'] for r in mine), 1)} | "
              f"{spread((r['minutes'] for r in mine), 1)} |")


if __name__ == "__main__":
    main()
