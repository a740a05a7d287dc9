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

The entry is written atomically (BigFile writer, then the manifest), so a crash leaves no
entry that looks complete.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from avsbench.data.atomic import atomic_write_text
from avsbench.data.bigfile import ID_FILE, BigFile, BigFileWriter

CACHE_FORMAT = 1
SAMPLE_BLOCKS = 16
SAMPLE_BYTES = 65536
MANIFEST = "manifest.json"


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a whole file (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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


class EmbeddingCache:
    """One cache entry (present or to be written) for a set of encoding inputs."""

    def __init__(self, cache_dir: str | Path, inputs: dict[str, object]) -> None:
        self.inputs = {"format": CACHE_FORMAT, **inputs}
        canonical = json.dumps(self.inputs, sort_keys=True, separators=(",", ":"))
        self.key = hashlib.sha256(canonical.encode()).hexdigest()[:32]
        self.path = Path(cache_dir) / self.key
        self.embeddings_path = self.path / "embeddings"

    @property
    def complete(self) -> bool:
        """True when the entry holds the embeddings of exactly these inputs."""
        manifest = self.path / MANIFEST
        if not manifest.is_file() or not self.embeddings_path.is_dir():
            return False
        try:
            return json.loads(manifest.read_text(encoding="utf-8")).get("inputs") == json.loads(json.dumps(self.inputs))
        except (OSError, ValueError):
            return False

    def open(self) -> BigFile:
        return BigFile(self.embeddings_path)

    def writer(self, shot_ids: Sequence[str], dim: int) -> BigFileWriter:
        """A writer for the embeddings; call :meth:`seal` after it closed cleanly."""
        (self.path / MANIFEST).unlink(missing_ok=True)
        return BigFileWriter(self.embeddings_path, shot_ids, dim)

    def seal(self) -> None:
        atomic_write_text(self.path / MANIFEST, json.dumps({"inputs": self.inputs}, indent=1, sort_keys=True) + "\n")
