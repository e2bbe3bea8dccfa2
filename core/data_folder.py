"""`folder:DIR[@HxW]`: one subfolder per class of PNG/JPEG images (the layout of torchvision's ImageFolder and
Keras' `image_dataset_from_directory`), read with Pillow.

Layout: images on disk are height x width x channels; the reader returns (N, C, H, W), the layout the tracer,
the artifact and torch use. Channels: 1 when every image is greyscale, else 3 (RGB; alpha dropped). Without
`@HxW` every image must have the same size; with it each is resized (bilinear). Files whose names do not end in
.png/.jpg/.jpeg are skipped (.DS_Store, notes); a file that does but is not a readable image is refused.
Bounds, checked from the header before any pixel is decoded: LIMITS["image_file"] bytes per file,
MAX_PIXELS per image (a decompression bomb declares millions), LIMITS["folder"] decoded bytes in all.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np

from .dataset import Dataset, build
from .errors import DataError
from .readers import LIMITS, read_bytes

__all__ = ["load_folder", "MAX_PIXELS", "IMAGE_SUFFIXES"]

MAX_PIXELS = 4096 * 4096  # per image, before decoding
MAX_SIDE = 4096  # a requested size
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _parse(arg: str) -> tuple[Path, tuple[int, int] | None]:
    m = re.fullmatch(r"(.+)@(\d{1,5})x(\d{1,5})", arg)
    if m and not os.path.lexists(arg):
        h, w = int(m[2]), int(m[3])
        if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
            raise DataError(f"folder:{arg}: image size must be HxW with sides in 1..{MAX_SIDE}")
        return Path(m[1]), (h, w)
    return Path(arg), None


def _classes(root: Path) -> list[tuple[str, list[Path]]]:
    if not root.is_dir():
        raise DataError(f"folder:{root}: {'not a directory' if root.exists() else 'no such directory'}")
    classes = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith("."))
        if files:
            classes.append((d.name, files))
    if not classes:
        raise DataError(f"folder:{root}: holds no class subfolders with .png/.jpg images (expected DIR/CLASS/IMAGE)")
    if len(classes) < 2:
        raise DataError(f"folder:{root}: holds one class ({classes[0][0]!r}); at least two class subfolders are "
                        "needed")
    return classes


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    data = read_bytes(path, LIMITS["image_file"], "image", DataError)
    try:
        im = Image.open(io.BytesIO(data), formats=["PNG", "JPEG"])  # reads the header only
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise DataError(f"{path}: not a PNG or JPEG image") from None
    except Image.DecompressionBombError:
        raise DataError(f"{path}: image too large (a decompression bomb?)") from None
    w, h = im.size
    if w * h > MAX_PIXELS:
        raise DataError(f"{path}: {w}x{h} pixels is more than the {MAX_PIXELS} allowed per image")
    return im


def _pixels(path: Path, im, mode: str, size: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image

    try:
        im.load()
        im = im.convert(mode)
        if size is not None and im.size != (size[1], size[0]):
            im = im.resize((size[1], size[0]), Image.BILINEAR)
        a = np.asarray(im, dtype=np.uint8)
    except Image.DecompressionBombError:
        raise DataError(f"{path}: image too large (a decompression bomb?)") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise DataError(f"{path}: corrupt or truncated image ({str(e).splitlines()[0][:80]})") from None
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)  # HWC on disk -> CHW


def load_folder(arg: str, task: str | None = None) -> Dataset:
    """The dataset of `folder:ARG`; DataError with one line naming the file or folder at fault."""
    import warnings

    from PIL import Image

    root, size = _parse(arg)
    classes = _classes(root)
    heads = []
    for ci, (_, files) in enumerate(classes):
        for f in files:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                try:
                    heads.append((ci, f, _open(f)))
                except Image.DecompressionBombWarning:
                    raise DataError(f"{f}: image too large (a decompression bomb?)") from None
    grey = all(im.mode in ("1", "L", "I", "I;16", "F") for _, _, im in heads)
    mode, channels = ("L", 1) if grey else ("RGB", 3)
    if size is None:
        first = heads[0][2].size
        for _, f, im in heads:
            if im.size != first:
                raise DataError(f"{f}: {im.size[0]}x{im.size[1]} pixels, the first image has {first[0]}x{first[1]}; "
                                f"give a size to resize all, e.g. folder:{root}@{first[1]}x{first[0]}")
        size_hw = (first[1], first[0])
    else:
        size_hw = size
    total = len(heads) * channels * size_hw[0] * size_hw[1]
    if total > LIMITS["folder"]:
        raise DataError(f"folder:{root}: {len(heads)} images of {channels}x{size_hw[0]}x{size_hw[1]} are {total} "
                        f"bytes, more than the {LIMITS['folder'] >> 20} MiB limit for folders")
    x = np.empty((len(heads), channels, *size_hw), np.uint8)
    for i, (_, f, im) in enumerate(heads):
        x[i] = _pixels(f, im, mode, size)
    y = np.array([ci for ci, _, _ in heads], dtype=np.int64)
    return build(x, y, f"folder:{arg}", task, [name for name, _ in classes])
