"""Where metrics go: `workdir/metrics.jsonl` (the history the curves are drawn from, kept across resumes) and
TensorBoard event files in `workdir/tensorboard` (`tf.summary.scalar`, from the `tensorboard` package). Only
process 0 writes.

Each JSONL line is {"step": int, "kind": "train" | "eval", <name>: float, ...}. On resume, lines past the
restored step are dropped first, so a run that crashed after logging but before saving does not count twice.
"""
from __future__ import annotations

import json
from pathlib import Path

HISTORY_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


def read_history(workdir: str | Path) -> list[dict]:
    path = Path(workdir) / HISTORY_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class MetricWriter:
    def __init__(self, workdir: str | Path, resume_step: int, enabled: bool = True):
        self.enabled = enabled
        self.path = Path(workdir) / HISTORY_FILE
        self._summary = None
        if not enabled:
            return
        kept = [r for r in read_history(workdir) if r["step"] <= resume_step]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        import tensorflow as tf  # already loaded by the input pipeline; the writer runs on the CPU

        self._tf = tf
        self._summary = tf.summary.create_file_writer(str(Path(workdir) / TENSORBOARD_DIR))

    def write(self, step: int, kind: str, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        record = {"step": int(step), "kind": kind, **{k: float(v) for k, v in metrics.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        with self._summary.as_default(step=int(step)):
            for name, value in metrics.items():
                self._tf.summary.scalar(f"{kind}/{name}", float(value))
        self._summary.flush()

    def close(self) -> None:
        if self._summary is not None:
            self._summary.close()
