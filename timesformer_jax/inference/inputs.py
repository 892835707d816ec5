"""What an inference command reads: the video files it was given, and the model in the dtype it runs. Shared by
`predict`, `features` and `attention_maps`, so every tool finds files, names outputs and loads checkpoints alike."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from timesformer_jax.data.video_io import VIDEO_SUFFIXES


def videos_below(folder: Path) -> list[Path]:
    """Every video file (by suffix) below `folder`, sorted. A folder that cannot be listed (permissions) is
    listed itself, so that reading it reports the problem in its place instead of stopping the walk."""
    found = []
    for root, _, files in os.walk(folder, onerror=lambda error: found.append(Path(error.filename))):
        found.extend(Path(root) / name for name in files if Path(name).suffix.lower() in VIDEO_SUFFIXES)
    return sorted(found)


def named_video_files(inputs: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """(video, name) for every video of `inputs`: a file given directly is named by its file name, a file found
    in a folder by its path inside that folder (`a/b.mp4` -> `a__b.mp4`), so output names are stable across
    reruns; names that would still collide (two `clip.mp4` given from different folders) get `~2`, `~3`, ... in
    input order. A path that does not exist or cannot be read is kept, so that it is reported as an error in its
    place."""
    out = []
    for item in map(Path, inputs):
        try:
            is_dir = item.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            out.extend((path, "__".join(path.relative_to(item).parts) or item.name) for path in videos_below(item))
        else:
            out.append((item, item.name))
    return _unique_names(out)


def _unique_names(named: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
    taken = {name for _, name in named}
    seen: dict[str, int] = {}
    out = []
    for path, name in named:
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            number = seen[name]
            while f"{name}~{number}" in taken:
                number += 1
            name = f"{name}~{number}"
            taken.add(name)
        out.append((path, name))
    return out


def video_files(inputs: Sequence[str | Path]) -> list[Path]:
    """The files of `named_video_files`, in its order."""
    return [path for path, _ in named_video_files(inputs)]


def no_videos_error(inputs: Sequence[str | Path]) -> FileNotFoundError:
    return FileNotFoundError(f"no video files in {list(map(str, inputs))} (suffixes {', '.join(VIDEO_SUFFIXES)})")


def inference_dtype(dtype: str) -> str:
    """"auto" -> bfloat16 on GPU/TPU, float32 on CPU; anything else as given."""
    import jax

    if dtype != "auto":
        return dtype
    return "float32" if jax.default_backend() == "cpu" else "bfloat16"


def load_for_inference(checkpoint: str, *, dtype: str = "auto", num_heads: int | None = None,
                       revision: str | None = None):
    """(model, dtype name): `load_pretrained(checkpoint)` computing in `inference_dtype(dtype)`, with
    `num_heads` when the checkpoint cannot tell it."""
    import jax.numpy as jnp

    from timesformer_jax.pretrained import load_pretrained

    dtype = inference_dtype(dtype)
    overrides = {"dtype": jnp.dtype(dtype), **({"num_heads": num_heads} if num_heads is not None else {})}
    return load_pretrained(checkpoint, revision=revision, **overrides), dtype
