"""Decode image files once into a uint8 (N, 3, S, S) array, in several processes, and cache it on disk.

JPEG, PNG, BMP, WebP, TIFF and GIF (its first frame) of any size and mode are read with Pillow; grayscale, palette and
alpha images become RGB (transparent pixels over white); 16-bit images (PNG, TIFF: microscopy, medical scans) are
scaled from their full 16-bit range to 8 bits (Pillow's own conversion would clip every value above 255 to white);
32-bit float images are refused (their range is unknown: save them as 8 or 16 bits). ``resize_mode="crop"`` keeps the aspect ratio and centre-crops to S x S;
``"resize"`` stretches to S x S.

The cache file ``<cache_dir>/<key>.npy`` (plus ``<key>.json`` listing the files that failed) is keyed by the
ordered file list with each file's size and modification time, the image size and the resize mode: a changed,
added, removed or reordered file, or another size, gives another key and a fresh decode.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # "I": how some Pillow versions open a 16-bit PNG
RESIZE_MODES = ("crop", "resize")
CACHE_MODES = ("memory", "mmap", "off")
CACHE_VERSION = 2  # 2: 16-bit images scaled to 8 bits (1 clipped them)
MAX_LISTED = 10


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def decode_image(path: str, size: int, resize_mode: str = "crop") -> np.ndarray:
    """One image file -> uint8 (3, size, size) RGB."""
    with Image.open(path) as im:
        if im.format == "JPEG":
            im.draft("RGB", (size, size))  # DCT-domain downscaling: never below the requested size
        im = ImageOps.exif_transpose(im)
        im = eight_bit(im)
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")
            im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        im = im.convert("RGB")
        if resize_mode == "crop":
            im = ImageOps.fit(im, (size, size), Image.Resampling.BICUBIC)
        else:
            im = im.resize((size, size), Image.Resampling.BICUBIC)
        return np.ascontiguousarray(np.asarray(im, dtype=np.uint8).transpose(2, 0, 1))


def eight_bit(im: Image.Image) -> Image.Image:
    """A 16-bit grayscale image as 8-bit grayscale, its full 0-65535 range onto 0-255 (others as they are); a
    32-bit float image is refused with what to do."""
    if im.mode == "F":
        raise ValueError("32-bit float images are not supported (their value range is unknown): save them as 8- or "
                         "16-bit images")
    if im.mode not in SIXTEEN_BIT_MODES:
        return im
    values = np.asarray(im, dtype=np.float64)
    return Image.fromarray(np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8), mode="L")


def _decode_chunk(args) -> tuple[int, np.ndarray, list[tuple[int, str]]]:
    start, paths, size, resize_mode = args
    out = np.zeros((len(paths), 3, size, size), np.uint8)
    errors = []
    for j, path in enumerate(paths):
        try:
            out[j] = decode_image(path, size, resize_mode)
        except FileNotFoundError:
            errors.append((start + j, "missing"))
        except Exception as e:  # Pillow raises several types for unreadable files; the reason is reported
            errors.append((start + j, f"does not decode ({type(e).__name__}: {e})"))
    return start, out, errors


@dataclass
class DecodedImages:
    images: np.ndarray                  # uint8 (N, 3, S, S); a memory map when cache="mmap"
    bad: dict[int, str]                 # index -> reason, for files that are missing or do not decode
    key: str | None                     # cache key (None without a cache file)

    def ok_mask(self) -> np.ndarray:
        mask = np.ones(len(self.images), bool)
        mask[list(self.bad)] = False
        return mask


def cache_key(paths: list[str], size: int, resize_mode: str) -> str:
    h = hashlib.sha256(json.dumps([CACHE_VERSION, size, resize_mode]).encode())
    for p in paths:
        try:
            st = os.stat(p)
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}\0missing\n".encode())
    return h.hexdigest()[:24]


def decode_all(paths: list[str], size: int, resize_mode: str = "crop", workers: int | None = None,
               out: np.ndarray | None = None, description: str = "decoding images") -> tuple[np.ndarray, dict]:
    """Decode ``paths`` into ``out`` (or a new array) with ``workers`` processes (0/1: in this process) and a
    progress bar; returns (images, {index: reason} for failures)."""
    from rich.progress import Progress

    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"data.resize_mode: unknown value {resize_mode!r}; choose one of {list(RESIZE_MODES)}")
    n = len(paths)
    out = np.zeros((n, 3, size, size), np.uint8) if out is None else out
    workers = min(8, os.cpu_count() or 1) if workers is None else workers
    chunk = max(1, min(256, n // max(1, 4 * workers)))
    jobs = [(s, paths[s:s + chunk], size, resize_mode) for s in range(0, n, chunk)]
    bad: dict[int, str] = {}
    with Progress(transient=True) as progress:
        task = progress.add_task(description, total=n)
        if workers > 1 and len(jobs) > 1:
            # fork: workers need no re-import of the caller's modules (torch, Lightning) and decode with Pillow only
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
                results = pool.map(_decode_chunk, jobs)
                for start, images, errors in results:
                    out[start:start + len(images)] = images
                    bad.update(errors)
                    progress.advance(task, len(images))
        else:
            for job in jobs:
                start, images, errors = _decode_chunk(job)
                out[start:start + len(images)] = images
                bad.update(errors)
                progress.advance(task, len(images))
    return out, bad


def load_or_decode(paths: list[str], size: int, resize_mode: str = "crop", cache: str = "memory",
                   cache_dir: str | None = None, workers: int | None = None) -> DecodedImages:
    """The decoded images of ``paths``, from the cache file when its key matches, else decoded (and cached).

    ``cache``: ``memory`` loads the cache file into memory, ``mmap`` memory-maps it (for sets larger than memory),
    ``off`` decodes every time and writes no file.
    """
    if cache not in CACHE_MODES:
        raise ValueError(f"data.cache: unknown value {cache!r}; choose one of {list(CACHE_MODES)}")
    if cache == "off" or cache_dir is None:
        images, bad = decode_all(paths, size, resize_mode, workers)
        return DecodedImages(images, bad, None)
    key = cache_key(paths, size, resize_mode)
    npy, meta = os.path.join(cache_dir, f"{key}.npy"), os.path.join(cache_dir, f"{key}.json")
    if not (os.path.isfile(npy) and os.path.isfile(meta)):
        try:
            os.makedirs(cache_dir, exist_ok=True)
        except OSError as e:
            warnings.warn(f"data.cache_dir: cannot create {cache_dir} ({e}); decoding without a cache file")
            images, bad = decode_all(paths, size, resize_mode, workers)
            return DecodedImages(images, bad, None)
        tmp = f"{npy}.{os.getpid()}.tmp"
        target = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), 3, size, size))
        _, bad = decode_all(paths, size, resize_mode, workers, out=target)
        target.flush()
        del target
        os.replace(tmp, npy)
        with open(f"{meta}.{os.getpid()}.tmp", "w") as f:
            json.dump({"n": len(paths), "size": size, "resize_mode": resize_mode,
                       "bad": [[i, reason] for i, reason in sorted(bad.items())]}, f)
        os.replace(f"{meta}.{os.getpid()}.tmp", meta)  # several ranks may write the same key: atomic renames
    with open(meta) as f:
        bad = {int(i): reason for i, reason in json.load(f)["bad"]}
    images = np.load(npy, mmap_mode="c" if cache == "mmap" else None)
    return DecodedImages(images, bad, key)


def describe_bad(paths: list[str], bad: dict[int, str]) -> str:
    """'N files: path (reason), ...' listing at most MAX_LISTED of them."""
    listed = [f"{paths[i]} ({reason})" for i, reason in sorted(bad.items())[:MAX_LISTED]]
    more = f", and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
    return f"{len(bad)} file(s): " + "; ".join(listed) + more
