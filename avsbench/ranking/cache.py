"""On-disk cache of a collection's video embeddings, so re-ranking with new queries does not re-encode.

An entry is a BigFile of the flattened embeddings (float32, one row per shot of the shot list)
plus ``manifest.json``, under ``<cache dir>/<key>/``. The key is the SHA-256 of a JSON
document naming every input of the encoding:

* the checkpoint's hash (SHA-256 of its files, computed by the caller);
* per video feature: name, shape, size and mtime (ns) of ``feature.bin``, the SHA-256 of
  ``id.txt`` and of 16 sampled 64 KiB blocks of ``feature.bin`` (evenly spaced, first and
  last included). Hashing every byte of a 9 GB file would cost as much as encoding it; a
  rewrite that keeps size, mtime and every sampled block is the one change this misses;
* the SHA-256 of the shot list;
* the encoding precision (bf16 embeddings are stored as their float32 values).

An entry is written as a unit: built in a temporary sibling folder, with a manifest (the
inputs, and the size and SHA-256 of each file) written last, then swapped in
(:mod:`avsbench.data.atomic`). Before an entry is used its files are checked against the
manifest (hashing reads the entry once, at disk speed: far less than encoding it again); a
damaged or unfinished entry is removed and rebuilt, with a warning. Temporary folders of killed
runs are swept when the cache is next opened.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from avsbench.data.atomic import (
    check_manifest,
    new_staging_folder,
    recover_folder,
    sha256_file,
    swap_in,
    write_manifest,
)
from avsbench.data.bigfile import FEATURE_FILE, ID_FILE, SHAPE_FILE, BigFile, BigFileWriter
from avsbench.errors import AvsbenchError, AvsbenchWarning

CACHE_FORMAT = 1
SAMPLE_BLOCKS = 16
SAMPLE_BYTES = 65536
EMBEDDINGS = "embeddings"


def sha256_lines(lines: Sequence[str]) -> str:
    """SHA-256 of lines joined with newlines (e.g. a shot list)."""
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode())
        h.update(b"\n")
    return h.hexdigest()


def feature_fingerprint(name: str, bigfile: BigFile) -> dict[str, object]:
    """Size + mtime + sampled-bytes hash of a BigFile (see the module docstring)."""
    stat = bigfile.feature_path.stat()
    h = hashlib.sha256()
    with open(bigfile.feature_path, "rb") as fh:
        span = max(stat.st_size - SAMPLE_BYTES, 0)
        for i in range(SAMPLE_BLOCKS):
            fh.seek(span * i // (SAMPLE_BLOCKS - 1))
            h.update(fh.read(SAMPLE_BYTES))
    return {
        "name": name,
        "shape": [bigfile.nrows, bigfile.dim],
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "sampled_sha256": h.hexdigest(),
        "ids_sha256": sha256_file(bigfile.path / ID_FILE),
    }


class CacheWarning(AvsbenchWarning):
    """An embedding cache entry was damaged or unfinished and is rebuilt."""


def sweep_cache(cache_dir: str | Path) -> None:
    """Remove what killed runs left in ``cache_dir``: temporary entry folders of dead processes, old copies."""
    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir():
        return
    keys = {entry.name[1:].split(".", 1)[0] for entry in os.scandir(cache_dir) if entry.name.startswith(".")}
    for key in keys:
        recover_folder(cache_dir / key)


class EmbeddingCache:
    """One cache entry (present or to be written) for a set of encoding inputs."""

    def __init__(self, cache_dir: str | Path, inputs: dict[str, object]) -> None:
        self.inputs = {"format": CACHE_FORMAT, **inputs}
        canonical = json.dumps(self.inputs, sort_keys=True, separators=(",", ":"))
        self.key = hashlib.sha256(canonical.encode()).hexdigest()[:32]
        self.path = Path(cache_dir) / self.key
        self.embeddings_path = self.path / EMBEDDINGS
        sweep_cache(cache_dir)

    @property
    def complete(self) -> bool:
        """True when the entry holds the embeddings of exactly these inputs, its files verified.

        A damaged or unfinished entry is removed (with a :class:`CacheWarning`), to be rebuilt.
        """
        if not self.path.exists():
            return False
        try:
            manifest = check_manifest(self.path)
            if manifest is None:
                raise ValueError("it has no manifest")
            if manifest.get("inputs") != json.loads(json.dumps(self.inputs)):
                raise ValueError("its manifest is for other inputs")
        except (AvsbenchError, OSError, ValueError) as exc:
            reason = exc.message if isinstance(exc, AvsbenchError) else str(exc)
            warnings.warn(
                f"embedding cache entry {self.path} is not usable ({reason}); encoding again",
                CacheWarning,
                stacklevel=2,
            )
            shutil.rmtree(self.path, ignore_errors=True)
            return False
        return True

    def open(self) -> BigFile:
        return BigFile(self.embeddings_path)

    def writer(self, shot_ids: Sequence[str], dim: int) -> CacheEntryWriter:
        """A writer for the embeddings; on a clean exit the entry is complete."""
        return CacheEntryWriter(self, shot_ids, dim)


class CacheEntryWriter:
    """Writes an entry in a temporary sibling folder; on a clean exit adds the manifest and swaps it in."""

    def __init__(self, cache: EmbeddingCache, shot_ids: Sequence[str], dim: int) -> None:
        self.cache = cache
        self.shot_ids = shot_ids
        self.dim = dim
        self._staging: Path | None = None
        self._bigfile: BigFileWriter | None = None

    def __enter__(self) -> CacheEntryWriter:
        self._staging = new_staging_folder(self.cache.path)
        self._bigfile = BigFileWriter(self._staging / EMBEDDINGS, self.shot_ids, self.dim).__enter__()
        return self

    def append(self, rows: np.ndarray) -> None:
        assert self._bigfile is not None
        self._bigfile.append(rows)

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self._staging is not None and self._bigfile is not None
        try:
            self._bigfile.__exit__(exc_type, exc, tb)
            if exc_type is None:
                names = [f"{EMBEDDINGS}/{name}" for name in (FEATURE_FILE, ID_FILE, SHAPE_FILE)]
                write_manifest(self._staging, names, {"inputs": self.cache.inputs})
                swap_in(self._staging, self.cache.path)
        finally:
            if self._staging.exists():
                shutil.rmtree(self._staging, ignore_errors=True)
