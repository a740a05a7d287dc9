"""Install NIST's official AVS qrels under the data root, from a pinned public commit or a file the user has.

The manifest ``resources/qrels/sources.json`` names, for each edition, the file's path in a public git
repository pinned to one commit and its git blob id (``sha1(b"blob <size>\\0" + bytes)``, what
``git hash-object FILE`` prints). A file is genuine when its blob id matches. Files are installed at
``<root>/<collection>/TextData/avs.qrels.tvNN`` (where ``avsbench score`` looks for them) with a
sidecar ``avs.qrels.tvNN.source.json`` recording where they came from and whether the id matched.

Everything is downloaded and verified before anything is written, and each file is written
atomically: a failed fetch leaves the data root as it was. Only :mod:`urllib` is used.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from avsbench import __version__
from avsbench.data.atomic import atomic_write_bytes, atomic_write_text
from avsbench.data.collection import qrels_location
from avsbench.data.resources import resource_path
from avsbench.data.root import resolve_root
from avsbench.data.topics import YEARS, Year
from avsbench.errors import (
    ConfigError,
    DownloadError,
    InputFormatError,
    MissingDataError,
)
from avsbench.progress import ProgressFactory

MANIFEST_PATH = ("qrels", "sources.json")
MAX_QRELS_BYTES = 64 * 1024 * 1024  # the largest official qrels file is a few MiB
CHUNK_BYTES = 256 * 1024
TIMEOUT_SECONDS = 60.0
SIDECAR_SUFFIX = ".source.json"


@dataclass(frozen=True)
class QrelsSource:
    """Where one edition's official qrels are published and the blob id they must have."""

    year: Year
    repo_path: str  # path of the file in the pinned repository
    blob_id: str
    url: str


@dataclass(frozen=True)
class InstalledQrels:
    """One qrels file installed under the data root."""

    year: Year
    path: Path
    source: str  # URL or the user's file
    blob_id: str
    verified: bool  # the blob id is the published one for this year
    action: str  # "downloaded", "up to date" (installed before with the published id: not fetched) or "added"
    warning: str | None = None


def git_blob_id(data: bytes) -> str:
    """The git blob id of ``data`` (what ``git hash-object FILE`` prints)."""
    digest = hashlib.sha1(b"blob %d\0" % len(data))
    digest.update(data)
    return digest.hexdigest()


def load_manifest() -> dict:
    """The bundled manifest of public qrels sources (repository, commit, files)."""
    return json.loads(resource_path(*MANIFEST_PATH).read_text(encoding="utf-8"))


def _published_entries() -> dict[str, dict]:
    """Manifest entries by edition ("tv19")."""
    return load_manifest()["files"]


def file_url(repo_path: str, url: str | None = None) -> str:
    """Download URL of a file of the pinned commit; ``url`` replaces the source (a mirror).

    ``url`` may hold ``{path}`` (path in the repository), ``{name}`` (file name) and ``{commit}``;
    without any, the file's repository path is appended to it (``file://`` works too).
    """
    manifest = load_manifest()
    fields = {"path": repo_path, "name": repo_path.rsplit("/", 1)[-1], "commit": manifest["commit"]}
    if url is None:
        return manifest["raw_url_pattern"].format(**fields)
    if "{" in url:
        try:
            return url.format(**fields)
        except (KeyError, IndexError, ValueError):
            raise ConfigError(f"--url {url!r}", expected="placeholders {path}, {name} or {commit} only") from None
    return url.rstrip("/") + "/" + repo_path


def qrels_source(year: Year, url: str | None = None) -> QrelsSource:
    """The published source of ``year``'s qrels; a clear error for an edition nobody publishes."""
    entries = _published_entries()
    entry = entries.get(year.edition)
    if entry is None:
        known = ", ".join(sorted(k for k, y in YEARS.items() if y.edition in entries))
        raise ConfigError(
            f"no public qrels are known for {year.key}",
            expected=f"one of {known} (or `data add-qrels` with your own file)",
        )
    return QrelsSource(year, entry["path"], entry["git_blob_sha1"], file_url(entry["path"], url))


URL_SCHEMES = ("https", "http", "file")


def _checked_url(url: str) -> urllib.parse.SplitResult:
    """``url`` split into its parts; a clear error unless it is an http(s):// or file:// URL."""
    try:
        parsed = urllib.parse.urlsplit(url)
        parsed.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise ConfigError(f"bad URL {url!r} ({exc})", expected="an http(s):// or file:// URL (--url)") from None
    if parsed.scheme.lower() not in URL_SCHEMES or (parsed.scheme.lower() != "file" and not parsed.hostname):
        raise ConfigError(f"bad URL {url!r}", expected="an http(s):// or file:// URL (--url)")
    return parsed


def _read_body(response, url: str, label: str, progress: ProgressFactory | None) -> bytes:
    """Read a response body in chunks, with a bar, refusing more than :data:`MAX_QRELS_BYTES`."""
    length = response.headers.get("Content-Length")
    total = int(length) if length and length.strip().isdigit() else None
    if total is not None and total > MAX_QRELS_BYTES:
        raise DownloadError(
            f"{url}: the server announces {total:,} bytes", expected=f"a qrels file under {MAX_QRELS_BYTES:,} bytes"
        )
    advance = progress(label, total) if progress is not None else None
    chunks: list[bytes] = []
    received = 0
    try:
        while chunk := response.read(CHUNK_BYTES):
            received += len(chunk)
            if received > MAX_QRELS_BYTES:
                raise DownloadError(f"{url}: more than {MAX_QRELS_BYTES:,} bytes", expected="a qrels file of a few MiB")
            chunks.append(chunk)
            if advance is not None:
                advance(len(chunk))
    except (http.client.HTTPException, OSError) as exc:
        raise DownloadError(
            f"{url}: connection broken after {received:,} bytes ({exc.__class__.__name__}); nothing was installed"
        ) from None
    if total is not None and received != total:
        raise DownloadError(f"{url}: connection closed after {received:,} of {total:,} bytes; nothing was installed")
    return b"".join(chunks)


def download(url: str, label: str, progress: ProgressFactory | None = None, timeout: float = TIMEOUT_SECONDS) -> bytes:
    """The bytes at ``url``; every failure (no network, HTTP status, cut connection) is one :class:`DownloadError`."""
    parsed = _checked_url(url)
    request = urllib.request.Request(url, headers={"User-Agent": f"avsbench/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return _read_body(response, url, label, progress)
    except urllib.error.HTTPError as exc:
        raise DownloadError(
            f"{url}: HTTP {exc.code} {exc.reason}; nothing was installed", expected="the file (check --url)"
        ) from None
    except urllib.error.URLError as exc:
        reason = getattr(exc.reason, "strerror", None) or str(exc.reason)
        if parsed.scheme.lower() == "file":
            raise DownloadError(f"cannot read {url} ({reason}); nothing was installed") from None
        raise DownloadError(
            f"cannot reach {parsed.hostname} ({reason}): no network? nothing was written; fetch the file elsewhere and "
            "run `avsbench data add-qrels FILE --year Y`, or give a mirror with --url"
        ) from None
    except (TimeoutError, http.client.HTTPException, OSError) as exc:
        raise DownloadError(
            f"{url}: download failed ({exc.__class__.__name__}: {exc}); nothing was installed"
        ) from None


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _installed_blob_id(path: Path) -> str | None:
    if not path.is_file() or path.stat().st_size > MAX_QRELS_BYTES:
        return None
    return git_blob_id(path.read_bytes())


def _install(item: InstalledQrels, data: bytes, expected: str | None) -> None:
    """Write the qrels file, then its sidecar, each atomically."""
    atomic_write_bytes(item.path, data)
    record = {
        "year": item.year.key,
        "source": item.source,
        "git_blob_sha1": item.blob_id,
        "published_git_blob_sha1": expected,
        "verified": item.verified,
        "bytes": len(data),
        "avsbench": __version__,
    }
    if item.warning:
        record["warning"] = item.warning
    atomic_write_text(_sidecar(item.path), json.dumps(record, indent=2) + "\n")


def _fetch_verified(source: QrelsSource, progress: ProgressFactory | None) -> bytes:
    data = download(source.url, f"qrels {source.year.key}", progress)
    blob_id = git_blob_id(data)
    if blob_id != source.blob_id:
        raise DownloadError(
            f"{source.url}: git blob id {blob_id} ({len(data):,} bytes) is not the published {source.blob_id}; "
            "wrong or altered file, nothing was installed"
        )
    return data


def fetch_qrels(
    years: list[Year],
    rootpath: str | Path | None = None,
    url: str | None = None,
    progress: ProgressFactory | None = None,
) -> list[InstalledQrels]:
    """Download, verify and install the official qrels of ``years`` under the data root.

    All files are downloaded and checked before the first is installed; a file already installed
    with the published blob id is not fetched again. Example::

        fetch_qrels(parse_years("2016,2019"), "~/VisualSearch")
    """
    root = resolve_root(rootpath)
    sources = [qrels_source(year, url) for year in years]
    pending: list[tuple[InstalledQrels, bytes]] = []
    done: list[InstalledQrels] = []
    for source in sources:
        target = qrels_location(root, source.year)
        if _installed_blob_id(target) == source.blob_id:
            done.append(InstalledQrels(source.year, target, source.url, source.blob_id, True, "up to date"))
            continue
        data = _fetch_verified(source, progress)
        pending.append((InstalledQrels(source.year, target, source.url, source.blob_id, True, "downloaded"), data))
    for item, data in pending:
        _install(item, data, item.blob_id)
    return done + [item for item, _ in pending]


def _check_qrels_of_year(data: bytes, path: Path, year: Year) -> None:
    """An unverified file must at least be a qrels file with topics of ``year``."""
    from avsbench.data.qrels import Qrels
    from avsbench.data.topics import qrels_topic_id

    qrels = Qrels.from_bytes(data, path)
    lo, hi = year.topic_range
    wanted = {qrels_topic_id(n) for n in range(lo, hi + 1)}
    if not wanted.intersection(qrels.topic_ids):
        raise InputFormatError(
            f"no topic of {year.key} in these qrels (topics {', '.join(list(qrels.topic_ids)[:5])}...)",
            path=path,
            expected=f"topic ids {qrels_topic_id(lo)}-{qrels_topic_id(hi)}",
        )


def _read_user_qrels(path: Path) -> bytes:
    if not path.is_file():
        raise MissingDataError("qrels file not found", path=path)
    if path.stat().st_size > MAX_QRELS_BYTES:
        raise InputFormatError(
            f"{path.stat().st_size:,} bytes", path=path, expected=f"a qrels file under {MAX_QRELS_BYTES:,} bytes"
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise MissingDataError(f"cannot read qrels file: {exc.strerror or exc}", path=path) from None


def add_qrels(path: str | Path, year: Year, rootpath: str | Path | None = None) -> InstalledQrels:
    """Install a qrels file the user already has for ``year``.

    A file with the published blob id is installed as verified; the published file of another
    year is refused; any other file must parse as qrels with topics of ``year`` and is installed
    with a warning, recorded in its sidecar.
    """
    path = Path(path)
    data = _read_user_qrels(path)
    blob_id = git_blob_id(data)
    entries = _published_entries()
    expected = entries.get(year.edition, {}).get("git_blob_sha1")
    other = next(
        (edition for edition, e in entries.items() if e["git_blob_sha1"] == blob_id and edition != year.edition), None
    )
    if other is not None:
        raise ConfigError(
            f"this is the official {other} qrels file, not {year.edition}'s", expected=f"the qrels of {year.key}"
        )
    target = qrels_location(resolve_root(rootpath), year)
    warning = None
    if blob_id != expected:
        _check_qrels_of_year(data, path, year)
        published = f"the published {expected}" if expected else "no published file for this year"
        recorded = _sidecar(target)
        warning = f"git blob id {blob_id} is not {published}: installed anyway as unverified (recorded in {recorded})"
    item = InstalledQrels(year, target, str(path.resolve()), blob_id, warning is None, "added", warning=warning)
    _install(item, data, expected)
    return item
