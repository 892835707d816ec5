"""What `timesformer predict` does, as one library call: load a checkpoint, find the videos, classify them with
the test protocol, print a table per video and optionally write the JSON list."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable, Sequence

from timesformer_jax.inference.classify import Prediction, classify, protocol_for, protocol_line
from timesformer_jax.inference.inputs import load_for_inference, no_videos_error, video_files
from timesformer_jax.inference.labels import resolve_labels
from timesformer_jax.protocol import protocol_of_clip

def format_prediction(prediction: Prediction, score_name: str = "score") -> str:
    """A small table: the video, then one line per top-k label."""
    if prediction.error is not None:
        return f"{prediction.video}\n  error: {prediction.error}"
    width = max(len(label) for _, label, _ in prediction.top_k)
    lines = [prediction.video] + [f"  warning: {warning}" for warning in prediction.warnings]
    lines.append(f"  {'#':>3}  {'label':<{width}}  {score_name:>7}  index")
    for rank, (index, label, score) in enumerate(prediction.top_k, 1):
        lines.append(f"  {rank:>3}  {label:<{width}}  {score:7.4f}  {index}")
    return "\n".join(lines)


def predict_files(checkpoint: str, inputs: Sequence[str | Path], *, num_heads: int | None = None,
                  dtype: str = "auto", revision: str | None = None, labels_file: str | None = None, k: int = 5,
                  aggregate: str = "logits", json_path: str | None = None, batch_size: int | None = None,
                  log: Callable[[str], None] = print, **protocol) -> list[Prediction]:
    """Classify every video of `inputs` (files or folders) with `checkpoint` (any `load_pretrained` input or a
    Hub id), with the checkpoint's test protocol (the official one when it records none). `protocol`: `ClipConfig`
    overrides of it (`sampling_rate`, `num_temporal_views`, `num_spatial_crops`, `antialias`). The JSON records
    the protocol used with every result, under "protocol". dtype: "auto" is bfloat16 on GPU/TPU and float32 on CPU."""
    import jax
    from tqdm import tqdm

    paths = video_files(inputs)
    if not paths:
        raise no_videos_error(inputs)
    model, dtype = load_for_inference(checkpoint, dtype=dtype, num_heads=num_heads, revision=revision)
    config = protocol_for(model.module, model.protocol, **{k_: v for k_, v in protocol.items() if v is not None})
    labels = resolve_labels(model.module.num_classes, model.class_names, labels_file, log)
    log(f"{model.module.attention_type}, {model.module.num_classes} classes, {dtype} on {jax.default_backend()}, "
        f"{len(paths)} video(s)")
    log(protocol_line(model, config))
    bar = tqdm(total=len(paths), unit="video", file=sys.stderr, disable=len(paths) < 2 or not sys.stderr.isatty())
    score_name = "p(mean)" if aggregate == "logits" else "mean p"

    def report(_, prediction):
        bar.update(1)
        if bar.disable:
            log(format_prediction(prediction, score_name))
        else:
            bar.write(format_prediction(prediction, score_name))

    try:
        predictions = classify(model, paths, config, aggregate=aggregate, k=k, labels=labels,
                               batch_size=batch_size, progress=report)
    finally:
        bar.close()
    failed = sum(p.error is not None for p in predictions)
    if failed:
        log(f"{failed} of {len(predictions)} video(s) could not be classified (their errors are above)")
    partial = sum(bool(p.warnings) for p in predictions)
    if partial:
        log(f"{partial} video(s) did not read cleanly and were classified from what decodes (warnings above)")
    if json_path:
        protocol = protocol_of_clip(config)
        records = [{**p.to_json(), "protocol": protocol} for p in predictions]
        Path(json_path).write_text(json.dumps(records, indent=1) + "\n")
        log(f"wrote {json_path}")
    return predictions
