"""What an inference command reads: the video files it was given, and the model in the dtype it runs. Shared by
`predict`, `features` and `attention_maps`, so every tool finds files, names outputs and loads checkpoints alike."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from timesformer_jax.data.video_io import VIDEO_SUFFIXES


def videos_below(folder: Path) -> list[Path]:
    """Every video file (by suffix) below `folder`, sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


def named_video_files(inputs: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """(video, name) for every video of `inputs`: a file given directly is named by its stem, a file found in a
    folder by its path inside that folder (`a/b.mp4` -> `a__b`), so output names are stable across reruns. A
    path that does not exist is kept, so that it is reported as an error in its place."""
    out = []
    for item in map(Path, inputs):
        if item.is_dir():
            out.extend((path, "__".join(path.relative_to(item).with_suffix("").parts)) for path in videos_below(item))
        else:
            out.append((item, item.stem))
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

    from timesformer_jax.convert.pretrained import load_pretrained

    dtype = inference_dtype(dtype)
    overrides = {"dtype": jnp.dtype(dtype), **({"num_heads": num_heads} if num_heads is not None else {})}
    return load_pretrained(checkpoint, revision=revision, **overrides), dtype
