"""The test protocol a model was trained and evaluated with, as plain JSON that travels with its weights.

    num_frames      frames per clip
    sampling        "dense" (frames `sampling_rate` apart at `target_fps`) or "segment" (one per segment)
    sampling_rate   dense only: frame step at target_fps
    target_fps      frame rate the video is resampled to before sampling
    crop_size       square crop side, pixels
    spatial_crops   crops along the longer side: 1 (centre) or 3
    temporal_views  clips along the video
    mean, std       per-channel normalisation of [0, 1] RGB
    resize          shorter side to crop_size: "bilinear" (no antialiasing, the official test) or
                    "bilinear_antialias"

Training workdirs store it in each checkpoint's meta, `timesformer convert` in `timesformer.json`, exports in their
JSON; HF checkpoints give theirs in `preprocessor_config.json` (crop, mean, std; the rest is the official
recipe); an official `.pyth` has the official one (`official_protocol`). Inference defaults to the checkpoint's.
"""
from __future__ import annotations

import math

PROTOCOL_KEYS = ("num_frames", "sampling", "sampling_rate", "target_fps", "crop_size", "spatial_crops",
                 "temporal_views", "mean", "std", "resize")
RESIZE_RULES = {"bilinear": False, "bilinear_antialias": True}  # resize rule -> ClipConfig.antialias
# ClipConfig field of each protocol key that is named differently
_CLIP_NAMES = {"spatial_crops": "num_spatial_crops", "temporal_views": "num_temporal_views"}


def official_protocol(num_frames: int = 8, crop_size: int = 224) -> dict:
    """The official Kinetics-400 test of TimeSformer: dense clips of `num_frames` frames 32 apart at 30 fps,
    1 clip x 3 crops, mean/std 0.45/0.225, shorter side resized bilinearly (no antialiasing)."""
    return {"num_frames": num_frames, "sampling": "dense", "sampling_rate": 32, "target_fps": 30.0,
            "crop_size": crop_size, "spatial_crops": 3, "temporal_views": 1, "mean": [0.45] * 3,
            "std": [0.225] * 3, "resize": "bilinear"}


def model_protocol(num_frames: int, crop_size: int, recorded: dict | None = None) -> dict:
    """The protocol of a model of `num_frames` frames and `crop_size` pixels: the official one, with `recorded`
    (what its checkpoint says) on top; the model's frames and crop always win."""
    return plain({**official_protocol(), **(recorded or {}), "num_frames": num_frames, "crop_size": crop_size})


def protocol_of_clip(clip) -> dict:
    """The protocol of a `ClipConfig` (its test-time fields), as plain JSON values."""
    protocol = {key: getattr(clip, _CLIP_NAMES.get(key, key)) for key in PROTOCOL_KEYS if key != "resize"}
    protocol["resize"] = "bilinear_antialias" if clip.antialias else "bilinear"
    return plain(protocol)


def clip_fields(protocol: dict) -> dict:
    """`ClipConfig` keyword arguments of `protocol` (every key of it that is given)."""
    fields = {_CLIP_NAMES.get(key, key): value for key, value in protocol.items() if key != "resize"}
    if "resize" in protocol:
        fields["antialias"] = RESIZE_RULES[protocol["resize"]]
    for key in ("mean", "std"):
        if key in fields:
            fields[key] = tuple(fields[key])
    return fields


def plain(protocol: dict) -> dict:
    """`protocol` with Python numbers and lists only (JSON as written, whatever types it was built from)."""
    out = {}
    for key, value in protocol.items():
        if isinstance(value, (tuple, list)):
            out[key] = [float(v) for v in value]
        elif key == "target_fps":
            out[key] = float(value)
        elif isinstance(value, str) or value is None:
            out[key] = value
        else:
            out[key] = int(value)
    return out


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _triple(value) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == 3
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value))


_VALUES = {
    "num_frames": (_positive_int, "a positive integer"),
    "sampling": (lambda v: v in ("dense", "segment"), "'dense' or 'segment'"),
    "sampling_rate": (_positive_int, "a positive integer"),
    "target_fps": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0,
                   "a positive number"),
    "crop_size": (_positive_int, "a positive integer"),
    "spatial_crops": (lambda v: v in (1, 3) and not isinstance(v, bool), "1 or 3"),
    "temporal_views": (_positive_int, "a positive integer"),
    "mean": (_triple, "three numbers"),
    "std": (lambda v: _triple(v) and all(x > 0 for x in v), "three positive numbers"),
    "resize": (lambda v: v in RESIZE_RULES, f"one of {list(RESIZE_RULES)}"),
}


def check_protocol(protocol, source: str) -> dict:
    """`protocol` (a dict of some of PROTOCOL_KEYS) when every value is valid; ValueError naming `source` (the
    file it came from), the key, what was expected and what was received."""
    if not isinstance(protocol, dict):
        raise ValueError(f"{source}: the test protocol must be a JSON object, got {type(protocol).__name__}")
    unknown = sorted(set(protocol) - set(PROTOCOL_KEYS))
    if unknown:
        raise ValueError(f"{source}: unknown test protocol key(s) {unknown}; expected some of {list(PROTOCOL_KEYS)}")
    for key, value in protocol.items():
        test, expected = _VALUES[key]
        if not test(value):
            raise ValueError(f"{source}: test protocol {key} must be {expected}, got {value!r}")
    return plain(protocol)


def protocol_from_hf_preprocessor(preprocessor: dict, source: str) -> dict:
    """What an HF video processor config (`preprocessor_config.json`: `crop_size`, `image_mean`, `image_std`,
    `size`) says of the protocol: crop_size, mean, std. Keys it does not have are left out."""
    protocol = {}
    crop = preprocessor.get("crop_size")
    if isinstance(crop, dict):
        crop = crop.get("height") if crop.get("height") == crop.get("width") else None
    if isinstance(crop, int):
        protocol["crop_size"] = crop
    for ours, theirs in (("mean", "image_mean"), ("std", "image_std")):
        if theirs in preprocessor:
            protocol[ours] = preprocessor[theirs]
    return check_protocol(protocol, source)


def describe(protocol: dict) -> str:
    """One line: `8 x 32 dense frames at 30 fps, 224 px, 1 x 3 views, mean 0.45 std 0.225, bilinear`."""
    sampling = (f"{protocol['num_frames']} x {protocol['sampling_rate']} dense frames at {protocol['target_fps']:g} "
                "fps" if protocol["sampling"] == "dense" else f"{protocol['num_frames']} segment frames")
    mean = "/".join(f"{v:g}" for v in sorted(set(protocol["mean"]), key=protocol["mean"].index))
    std = "/".join(f"{v:g}" for v in sorted(set(protocol["std"]), key=protocol["std"].index))
    return (f"{sampling}, {protocol['crop_size']} px, {protocol['temporal_views']} x {protocol['spatial_crops']} "
            f"views, mean {mean} std {std}, {protocol['resize']} resize")
