"""Read throughput of BigFile: chunked memmap (``BigFile.iter_chunks``) against the reference
reader's naive per-row access (open, seek, ``array('f').fromfile`` for every row).

Writes a float32 BigFile of at least ``--size-gb`` GB to a temporary folder (deleted afterwards),
then times, on the same bytes and in the same process:

* warm: the file is in the page cache (what a second pass over a collection sees);
* cold: the file's cached pages are dropped first with ``posix_fadvise(DONTNEED)`` (only this file;
  a virtual disk may still be served from the host's cache).

It also times gathering random ids (``BigFile.read``) against naive per-id reads. Each figure is
the best of ``--repeats`` runs.

    .venv/bin/python benchmarks/bench_bigfile.py [--size-gb 2] [--dim 2048] [--chunk-rows N] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from array import array
from pathlib import Path

import numpy as np

from avsbench.data.bigfile import BigFile, BigFileWriter


def make_bigfile(path: Path, nrows: int, dim: int) -> BigFile:
    """A BigFile of ``nrows`` x ``dim`` random float32 rows, written in 16k-row chunks."""
    rng = np.random.default_rng(0)
    ids = [f"shot{i // 100:05d}_{i % 100 + 1}" for i in range(nrows)]
    with BigFileWriter(path, ids, dim) as writer:
        for start in range(0, nrows, 16384):
            writer.append(rng.standard_normal((min(16384, nrows - start), dim), dtype=np.float32))
    return BigFile(path)


def drop_from_page_cache(path: Path) -> bool:
    """Ask the kernel to drop this file's cached pages; False where posix_fadvise is unavailable."""
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return True


def read_chunked(path: Path, rows_per_chunk: int | None) -> float:
    """Seconds to open the BigFile at ``path`` and read every row through ``iter_chunks``.

    The BigFile (and its memmap) is dropped on return, so that a later posix_fadvise(DONTNEED)
    can evict the pages it mapped.
    """
    started = time.perf_counter()
    bigfile = BigFile(path)
    checksum = 0.0
    for _, _, chunk in bigfile.iter_chunks(rows_per_chunk):
        checksum += float(chunk[-1, -1])
    elapsed = time.perf_counter() - started
    assert np.isfinite(checksum)
    return elapsed


def read_naive(feature_path: Path, rows: np.ndarray, dim: int) -> tuple[float, array]:
    """Seconds to read ``rows`` the reference way: open, seek, array('f').fromfile, close, per row."""
    started = time.perf_counter()
    last = array("f")
    for row in rows.tolist():
        values = array("f")
        with open(feature_path, "rb") as fh:
            fh.seek(row * dim * 4)
            values.fromfile(fh, dim)
        last = values
    return time.perf_counter() - started, last


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-gb", type=float, default=2.0, help="file size in GB (1e9 bytes), at least this much")
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument(
        "--chunk-rows", type=int, default=None, help="rows per chunk (default: BigFile's, about 32 MiB)"
    )
    parser.add_argument("--random-ids", type=int, default=20000, help="ids gathered in the random-access test")
    parser.add_argument("--repeats", type=int, default=2, help="timed repetitions; the best is reported")
    parser.add_argument("--tmpdir", default=None, help="where to write the temporary file (default: system temp)")
    args = parser.parse_args(argv)

    nrows = int(np.ceil(args.size_gb * 1e9 / (args.dim * 4)))
    workdir = Path(tempfile.mkdtemp(prefix="avsbench-bench-bigfile-", dir=args.tmpdir))
    try:
        started = time.perf_counter()
        bigfile = make_bigfile(workdir / "feature", nrows, args.dim)  # opened, never read before the cold passes
        write_s = time.perf_counter() - started
        gb = bigfile.nbytes / 1e9
        chunk_rows = args.chunk_rows or bigfile.default_chunk_rows()
        print(
            f"BigFile {nrows:,} x {args.dim} float32 = {gb:.2f} GB, written in {write_s:.1f} s ({gb / write_s:.2f} "
            f"GB/s) under {workdir}"
        )

        all_rows = np.arange(nrows)
        for mode in ("cold", "warm"):
            if mode == "cold" and not drop_from_page_cache(bigfile.feature_path):
                continue
            if mode == "warm":
                read_chunked(bigfile.path, chunk_rows)  # make sure every page is cached
            chunked = naive = float("inf")
            print(f"{mode:>4}: reading {chunk_rows:,} rows ({chunk_rows * args.dim * 4 / 2**20:.0f} MiB) per chunk")
            for _ in range(args.repeats):
                if mode == "cold":
                    drop_from_page_cache(bigfile.feature_path)
                chunked = min(chunked, read_chunked(bigfile.path, chunk_rows))
                if mode == "cold":
                    drop_from_page_cache(bigfile.feature_path)
                naive_s, last_row = read_naive(bigfile.feature_path, all_rows, args.dim)
                naive = min(naive, naive_s)
            assert np.array_equal(np.frombuffer(last_row, dtype="<f4"), BigFile(bigfile.path).read_rows([nrows - 1])[0])
            print(
                f"{mode:>4} sequential read of all rows: chunked memmap {gb / chunked:6.2f} GB/s ({chunked:6.2f} s), "
                f"naive per-row {gb / naive:6.3f} GB/s ({naive:6.2f} s), ratio {naive / chunked:6.1f}x"
            )

        rng = np.random.default_rng(1)
        picked = rng.choice(nrows, size=min(args.random_ids, nrows), replace=False)
        ids = [bigfile.ids[i] for i in picked]
        row_of = {name: i for i, name in enumerate(bigfile.ids)}
        gather_s = naive_gather_s = float("inf")
        for _ in range(args.repeats + 1):  # the first round only warms up allocations
            started = time.perf_counter()
            gathered = bigfile.read(ids)
            gather_s = min(gather_s, time.perf_counter() - started)
            naive_s, last_row = read_naive(bigfile.feature_path, np.array([row_of[i] for i in ids]), args.dim)
            naive_gather_s = min(naive_gather_s, naive_s)
        assert np.array_equal(np.frombuffer(last_row, dtype="<f4"), gathered[-1])
        gathered_gb = gathered.nbytes / 1e9
        print(
            f"warm random gather of {len(ids):,} ids: BigFile.read {gathered_gb / gather_s:6.2f} GB/s ({gather_s:.3f} "
            f"s), "
            f"naive per-id {gathered_gb / naive_gather_s:6.3f} GB/s ({naive_gather_s:.3f} s), ratio "
            f"{naive_gather_s / gather_s:6.1f}x"
        )
        print(f"cpu count {os.cpu_count()}, numpy {np.__version__}, python {sys.version.split()[0]}")
        print(
            "reproduce: .venv/bin/python benchmarks/bench_bigfile.py "
            f"--size-gb {args.size_gb:g} --dim {args.dim} --chunk-rows {chunk_rows} --random-ids {args.random_ids} "
            f"--repeats {args.repeats}"
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
