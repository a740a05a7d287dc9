"""A binary cache of parsed qrels, so that a qrels file is parsed once and loaded in milliseconds.

One cache file per (content hash, size, mtime, reading mode) in the cache folder
(``$AVSBENCH_CACHE``, else ``$XDG_CACHE_HOME/avsbench``, else ``~/.cache/avsbench``), under
``qrels/``. The file is hashed (BLAKE2b) on every read and its size and mtime compared, and the
same key is stored inside the cache entry: an entry is used only when all of it matches, so a
file rewritten with the same size and mtime is parsed again. The newest :data:`MAX_ENTRIES`
entries are kept. Entries are written atomically (never changed in place, so they are mapped
into memory, not read); an unreadable, truncated or foreign entry is ignored and rebuilt. A
cache folder that cannot be written is not an error (the qrels are then parsed every time).
The scorer's start-up counts here: this module imports neither pathlib nor hashlib.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from avsbench.data.qrels import Qrels, QrelsTopic
from avsbench.data.root import CACHE_ENV, cache_dir_name

if TYPE_CHECKING:
    from pathlib import Path

try:  # the builtin module: hashlib would load OpenSSL, a few milliseconds of every scorer call
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - CPython always has it
    from hashlib import blake2b

__all__ = [
    "CACHE_ENV",
    "MAX_ENTRIES",
    "cache_folder",
    "file_key",
    "entry_path",
    "read_cached",
    "save_entry",
    "load_entry",
]

MAGIC = b"AVSBENCH-QRELS-CACHE-4\n"
_HEADER_LENGTH = struct.Struct("<Q")
_HASH_PIECE = 8 << 20
MAX_ENTRIES = 32


def cache_folder() -> str:
    """Where parsed qrels are kept: ``qrels/`` in avsbench's cache folder (:func:`avsbench.data.root.cache_dir`)."""
    return os.path.join(cache_dir_name(), "qrels")


def file_key(path: str | Path, lenient: bool) -> dict[str, object]:
    """The key of a qrels file: size, mtime (ns), BLAKE2b-160 of the content, reading mode."""
    try:
        stat = os.stat(path)
        digest = blake2b(digest_size=20)
        with open(path, "rb") as fh:
            try:  # hashed where the page cache holds it (mapped, not copied)
                with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                    digest.update(mapped)
            except (OSError, ValueError):  # empty, or a file system without mapping: read it
                for piece in iter(lambda: fh.read(_HASH_PIECE), b""):
                    digest.update(piece)
    except OSError:
        return {}
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "blake2b": digest.hexdigest(), "lenient": lenient}


def entry_path(key: dict[str, object]) -> str:
    mode = "lenient" if key["lenient"] else "strict"
    return os.path.join(cache_folder(), f"{key['blake2b']}-{key['size']}-{key['mtime_ns']}-{mode}.qrels")


def read_cached(path: str | Path, *, lenient: bool = False, key: dict[str, object] | None = None) -> Qrels:
    """The qrels of ``path``: from the cache when its key matches, else parsed (and cached).

    ``key``: the file's :func:`file_key`, when the caller has just computed it.
    """
    key = file_key(path, lenient) if key is None else key
    if not key:  # missing or unreadable: the plain reader gives the clear error
        return Qrels.parse(path, lenient=lenient)
    entry = entry_path(key)
    loaded = load_entry(entry, key, str(path))
    if loaded is not None:
        return loaded
    qrels = Qrels.parse(path, lenient=lenient)
    with contextlib.suppress(OSError):
        save_entry(entry, key, qrels)
        _sweep(os.path.dirname(entry), keep=entry)
    return qrels


def build_in_background(path: str | Path, *, lenient: bool = False) -> Callable[[], Qrels] | None:
    """Start parsing and caching a qrels file that has no cache entry yet in a forked process, so that it
    is parsed while the caller reads something else; returns the function that waits for that process
    and gives the qrels.

    That function reads them as :func:`read_cached` does (for the file as it was when this was called,
    hashed once): from the entry, or, when the process failed (a bad file, a cache folder that cannot
    be written), by parsing them itself, so the errors are the ones it would have had. With an entry
    already there nothing is started. None when the file cannot be keyed or no fork is safe (see
    :func:`avsbench.eval.workers.fork_is_safe`).
    """
    from avsbench.eval.workers import fork_is_safe

    if not fork_is_safe() or str(path) == "-":
        return None
    key = file_key(path, lenient)
    if not key:
        return None
    if os.path.isfile(entry_path(key)):
        return lambda: read_cached(path, lenient=lenient, key=key)
    pid = os.fork()
    if pid == 0:  # the child: build the entry, then leave without the parent's exit handlers
        status = 1
        with contextlib.suppress(BaseException):
            read_cached(path, lenient=lenient, key=key)
            status = 0
        os._exit(status)

    def wait() -> Qrels:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        return read_cached(path, lenient=lenient, key=key)

    return wait


def _sweep(folder: str, keep: str) -> None:
    """Remove the oldest entries beyond :data:`MAX_ENTRIES` (entries of files changed since are never used again)."""
    entries = []
    for name in os.listdir(folder):
        if name.endswith(".qrels"):
            with contextlib.suppress(OSError):
                entries.append((os.stat(os.path.join(folder, name)).st_mtime_ns, os.path.join(folder, name)))
    for _, old in sorted(entries, reverse=True)[MAX_ENTRIES:]:
        if old != keep:
            with contextlib.suppress(OSError):
                os.unlink(old)


def save_entry(entry: str, key: dict[str, object], qrels: Qrels) -> None:
    """Write ``qrels`` as a cache entry (header JSON, then the per-topic arrays back to back)."""
    topics = list(qrels.topics.values())
    width = max((t.shot_ids.dtype.itemsize for t in topics), default=1)
    header = {
        "key": key,
        "width": width,
        "topics": [
            {
                "topic": t.topic,
                "strata": list(t.strata),
                "pool_size": t.pool_size,
                "sampled": t.sampled,
                "relevant": t.relevant,
                "grade_counts": t.grade_counts,
                "shots": len(t.keys),
                "idcg": t.ideal_dcg(),
            }
            for t in topics
        ],
    }
    head = json.dumps(header).encode()
    head += b" " * (-(len(MAGIC) + _HEADER_LENGTH.size + len(head)) % 8)  # the arrays start 8-byte aligned
    folder, name = os.path.split(entry)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.writelines([MAGIC, _HEADER_LENGTH.pack(len(head)), head])
            for section, dtype in _sections(width):
                for t in topics:  # each array written as it is held (no copy of the whole entry in memory)
                    fh.write(np.ascontiguousarray(getattr(t, section), dtype=dtype).data.cast("B"))
        os.replace(tmp, entry)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def load_entry(entry: str, key: dict[str, object], path: str) -> Qrels | None:
    """The qrels held by a cache entry, or None when it is missing, damaged or for another key.

    The entry is mapped, not read: only the pages the scorer touches are loaded.
    """
    try:
        with open(entry, "rb") as fh:
            data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):  # ValueError: an empty file cannot be mapped
        return None
    try:
        return _decode(data, key, path)
    except (ValueError, KeyError, TypeError, struct.error):
        return None


def _sections(width: int) -> tuple[tuple[str, str], ...]:
    """The per-topic arrays of an entry, in their order in the file: 8-byte items first, so that each
    array starts 8-byte aligned (the header is padded to a multiple of 8 bytes)."""
    return (
        ("keys", "<u8"),
        ("judgments", "<f8"),
        ("appearance", "<i8"),
        ("stratum_index", "<i2"),
        ("shot_ids", f"S{width}"),
    )


def _decode(data: mmap.mmap, key: dict[str, object], path: str) -> Qrels | None:
    if data[: len(MAGIC)] != MAGIC:
        return None
    (length,) = _HEADER_LENGTH.unpack_from(data, len(MAGIC))
    start = len(MAGIC) + _HEADER_LENGTH.size
    header = json.loads(data[start : start + length])
    if header["key"] != key:
        return None
    width = int(header["width"])
    metas = header["topics"]
    offset = start + length
    arrays: dict[str, list[np.ndarray]] = {}
    for name, dtype in _sections(width):
        size = np.dtype(dtype).itemsize
        arrays[name] = []
        for meta in metas:
            count = int(meta["shots"])
            arrays[name].append(np.frombuffer(data, dtype=dtype, count=count, offset=offset))
            offset += count * size
    if offset != len(data):
        return None
    topics: dict[str, QrelsTopic] = {}
    for i, meta in enumerate(metas):
        counts = {s: (n, meta["sampled"].get(s, 0), meta["relevant"].get(s, 0)) for s, n in meta["pool_size"].items()}
        table = QrelsTopic(
            meta["topic"],
            tuple(meta["strata"]),
            counts,
            meta["grade_counts"],
            tuple(arrays[name][i] for name in ("keys", "shot_ids", "stratum_index", "judgments")),  # type: ignore[arg-type]
            ideal_dcg=float(meta["idcg"]),
            appearance=arrays["appearance"][i],
        )
        topics[meta["topic"]] = table
    return Qrels(topics, path)
