"""Atomic writes: single files and folders written as a unit.

* A file is written to a temporary file in the same folder, fsynced and renamed into place.
* A folder (a model, a feature BigFile, a cache entry) is built in a temporary sibling
  ``.<name>.new-<pid>@<host>.<random>`` and swapped in. On Linux the swap is one ``renameat2`` call
  with ``RENAME_EXCHANGE`` (readers see the old folder or the new one, never none); elsewhere,
  or on file systems without it, the old folder is first renamed to ``.<name>.old`` and the new
  one renamed into place. :func:`recover_folder`, run before every read and write of such a
  folder, puts ``.<name>.old`` back when a crash fell between those two renames, and removes
  what a killed writer left behind (old copies, the temporary folders of dead processes on
  this host).
* :func:`write_manifest` records the size and SHA-256 of a folder's files, written last;
  :func:`check_manifest` verifies it when reading, so files from different writes (or a copy
  cut short) are never used together.

Every rename, swap and removal of an old copy is a numbered step: with the environment
variable ``AVSBENCH_KILL_AT=n`` the process SIGKILLs itself just before its n-th step (used by
the kill tests). ``AVSBENCH_NO_RENAME_EXCHANGE=1`` forces the two-rename fallback.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from avsbench.errors import InputFormatError

KILL_AT_ENV = "AVSBENCH_KILL_AT"
NO_EXCHANGE_ENV = "AVSBENCH_NO_RENAME_EXCHANGE"
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "avsbench-manifest"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_steps_done = 0


def atomic_step() -> None:
    """Count one rename/swap/removal step; SIGKILL this process at step ``$AVSBENCH_KILL_AT`` (for tests)."""
    global _steps_done
    target = os.environ.get(KILL_AT_ENV)
    if not target:
        return
    _steps_done += 1
    if _steps_done == int(target):
        os.kill(os.getpid(), signal.SIGKILL)


def atomic_rename(src: str | Path, dst: str | Path) -> None:
    """``os.replace`` as a counted step."""
    atomic_step()
    os.replace(src, dst)


@contextlib.contextmanager
def naming_os_errors(path: str | Path) -> Iterator[None]:
    """Re-raise an ``OSError`` that names no file (a full disk on write or fsync) as one that names ``path``."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from None
        raise


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success fsync and rename it to ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    binary = "b" in mode
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        with naming_os_errors(path):
            with os.fdopen(fd, mode, encoding=None if binary else encoding, newline=None if binary else "") as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            atomic_rename(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically."""
    with atomic_write(path, "w") as fh:
        fh.write(text)


def write_file_synced(path: str | Path, data: bytes | str) -> None:
    """Write a file inside a private staging folder (no rename needed) and fsync it."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with naming_os_errors(path), open(path, "wb") as fh:
        fh.write(raw)
        fh.flush()
        os.fsync(fh.fileno())


# --- folders -------------------------------------------------------------------------------


def folder_target(path: str | Path) -> Path:
    """The folder a unit write replaces: ``path`` itself, or where it points when it is a symbolic link
    (a feature folder linked to a larger disk stays a link, its target is replaced)."""
    path = Path(path)
    return path.resolve() if path.is_symlink() else path


def _staging_prefix(path: Path) -> str:
    return f".{path.name}.new-"


def _old_copy(path: Path) -> Path:
    return path.with_name(f".{path.name}.old")


def new_staging_folder(path: str | Path) -> Path:
    """An empty temporary sibling of ``path`` to build its replacement in (see :func:`swap_in`)."""
    path = folder_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{_staging_prefix(path)}{os.getpid()}@{_host()}.", dir=path.parent))


def _host() -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname()) or "host"


def _renameat2():
    if sys.platform != "linux" or os.environ.get(NO_EXCHANGE_ENV):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def _exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` in one step (Linux ``RENAME_EXCHANGE``); False where that is not supported."""
    function = _renameat2()
    if function is None:
        return False
    atomic_step()
    if function(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove_tree(folder: Path) -> None:
    atomic_step()
    shutil.rmtree(folder, ignore_errors=True)


def swap_in(staging: str | Path, path: str | Path) -> None:
    """Replace folder ``path`` by the complete folder ``staging`` as a unit (see the module docstring)."""
    staging, path = Path(staging), folder_target(path)
    _fsync_dir(staging)
    if not path.exists():
        atomic_rename(staging, path)
    elif _exchange(staging, path):
        _fsync_dir(path.parent)
        _remove_tree(staging)  # now the old folder
        return
    else:
        old = _old_copy(path)
        if old.exists():
            shutil.rmtree(old)
        atomic_rename(path, old)
        atomic_rename(staging, path)
        _fsync_dir(path.parent)
        _remove_tree(old)
    _fsync_dir(path.parent)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def stale_staging_folders(path: str | Path) -> list[Path]:
    """Temporary siblings of ``path`` left by processes that are no longer running."""
    path = Path(path)
    prefix = _staging_prefix(path)
    stale = []
    try:
        siblings = list(os.scandir(path.parent))
    except OSError:
        return []
    for entry in siblings:
        if not entry.name.startswith(prefix):
            continue
        pid, _, rest = entry.name[len(prefix) :].partition("@")
        host = rest.rpartition(".")[0]
        # another host's writer (a shared file system) may be alive: only this host's dead ones are swept
        if host == _host() and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            stale.append(Path(entry.path))
    return stale


def recover_folder(path: str | Path) -> None:
    """Undo what a killed :func:`swap_in` left: restore ``.<name>.old`` when ``path`` is missing, sweep leftovers."""
    path = folder_target(path)
    old = _old_copy(path)
    with contextlib.suppress(OSError):
        if old.is_dir() and not path.exists():
            os.replace(old, path)
        elif old.is_dir():
            shutil.rmtree(old)
        for leftover in stale_staging_folders(path):
            shutil.rmtree(leftover)


@contextlib.contextmanager
def folder_unit(path: str | Path) -> Iterator[Path]:
    """Build the new content of folder ``path`` in the yielded empty staging folder; swapped in on success.

    On an exception the staging folder is removed and ``path`` is left as it was.
    """
    path = folder_target(path)
    recover_folder(path)
    staging = new_staging_folder(path)
    try:
        yield staging
        swap_in(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


# --- manifests ------------------------------------------------------------------------------


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a whole file (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_record(path: str | Path) -> dict[str, object]:
    """Size and SHA-256 of a file, as a manifest stores them."""
    return {"size": Path(path).stat().st_size, "sha256": sha256_file(path)}


def write_manifest(folder: str | Path, names: Iterable[str], extra: dict[str, object] | None = None) -> Path:
    """Write ``manifest.json`` (size and SHA-256 of each named file) into ``folder``; write it last."""
    folder = Path(folder)
    files = {name: file_record(folder / name) for name in sorted(names)}
    document = {"format": MANIFEST_FORMAT, "version": 1, "files": files, **(extra or {})}
    target = folder / MANIFEST_FILE
    write_file_synced(target, json.dumps(document, indent=1, sort_keys=True) + "\n")
    return target


def read_manifest(folder: str | Path) -> dict | None:
    """The manifest of ``folder``, None when it has none; a malformed one is an error."""
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise InputFormatError("manifest is not valid JSON", path=path) from None
    if (
        not isinstance(document, dict)
        or document.get("format") != MANIFEST_FORMAT
        or not isinstance(document.get("files"), dict)
    ):
        raise InputFormatError(
            "not an avsbench manifest", path=path, expected=f"format {MANIFEST_FORMAT!r} with 'files'"
        )
    return document


def check_manifest(folder: str | Path, *, checksums: bool = True) -> dict | None:
    """Verify the files of ``folder`` against its manifest (size, and SHA-256 unless ``checksums`` is False).

    Returns the manifest (None when the folder has none). Raises :class:`InputFormatError`
    naming the first file that is missing or differs.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        return None
    for name, record in manifest["files"].items():
        path = folder / name
        if not isinstance(record, dict) or Path(name).is_absolute() or ".." in Path(name).parts:
            raise InputFormatError(f"bad manifest entry {name!r}", path=folder / MANIFEST_FILE)
        if not path.is_file():
            raise InputFormatError(
                "file listed in the manifest is missing", path=path, expected="the files written together with it"
            )
        if path.stat().st_size != record.get("size") or (checksums and sha256_file(path) != record.get("sha256")):
            raise InputFormatError(
                "file does not match the manifest written with it (from another write, or cut short)",
                path=path,
                expected="the files written together as one unit; write the folder again",
            )
    return manifest
