"""``avsbench data fetch qrels`` and ``data add-qrels`` against a local HTTP server on 127.0.0.1:
a good file installs (and a run then scores with no --qrels); wrong bytes, a cut connection, a 404
and no network each give one clear error and leave nothing installed."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from avsbench.cli import main
from avsbench.data import fetch
from avsbench.data.fetch import (
    add_qrels,
    fetch_qrels,
    file_url,
    git_blob_id,
    load_manifest,
)
from avsbench.data.resources import bundled_qrels, bundled_runs
from avsbench.data.topics import get_year, parse_years
from avsbench.errors import ConfigError, DownloadError, InputFormatError
from tests.hostile import assert_one_clear_error, run_cli_limited, tree_snapshot

TV21 = bundled_qrels("tv21").read_bytes()
TV21_PATH = "/data/AVS/avs.qrels.main.tv21"
TV19_PATH = "/data/AVS/avs.qrels.tv19"

# a small, valid 2019 qrels file (two topics, three strata) and a run for it
SMALL_TV19 = "".join(
    f"{topic} 0 shot{video:05d}_{shot} {stratum} {judgment}\n"
    for topic in (1611, 1612)
    for video, shot, stratum, judgment in [
        (1, 1, 1, 1),
        (1, 2, 1, 0),
        (2, 5, 2, 1),
        (3, 7, 2, 0),
        (4, 1, 3, -1),
        (5, 2, 3, 1),
    ]
).encode()
SMALL_RUN = "".join(
    f"{t} 0 shot00001_1 1 9 r\n{t} 0 shot00002_5 2 8 r\n{t} 0 shot00009_9 3 7 r\n" for t in (1611, 1612)
)


class Handler(BaseHTTPRequestHandler):
    """Serves ``server.files`` (path -> bytes); ``/cut/...`` announces the full length and closes half-way."""

    def do_GET(self) -> None:
        cut = self.path.startswith("/cut/")
        body = self.server.files.get(self.path.removeprefix("/cut"))
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if cut else body)
        self.wfile.flush()
        if cut:
            self.close_connection = True

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.files = {TV21_PATH: TV21, TV19_PATH: SMALL_TV19, "/wrong" + TV21_PATH: TV21[:-10] + b"1661 0 x\n"}
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def base(server: ThreadingHTTPServer, prefix: str = "") -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{prefix}"


@pytest.fixture
def small_tv19_published(monkeypatch) -> str:
    """Pretend the manifest publishes SMALL_TV19 as the 2019 qrels (the real file is not in the repository)."""
    manifest = load_manifest()
    manifest["files"]["tv19"]["git_blob_sha1"] = git_blob_id(SMALL_TV19)
    monkeypatch.setattr(fetch, "load_manifest", lambda: manifest)
    return git_blob_id(SMALL_TV19)


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def one_error(result, *needles: str) -> str:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("avsbench: error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def test_bundled_2021_qrels_have_the_manifest_blob_id():
    entry = load_manifest()["files"]["tv21"]
    assert git_blob_id(TV21) == entry["git_blob_sha1"] and len(TV21) == entry["bytes"]


def test_git_blob_id_is_what_git_hash_object_prints():
    assert git_blob_id(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    assert git_blob_id(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_default_url_is_the_pinned_commit_and_url_overrides_it():
    manifest = load_manifest()
    assert file_url("data/AVS/avs.qrels.tv19") == (
        "https://raw.githubusercontent.com/bmezaris/TextToVideoRetrieval-TtimesV/"
        f"{manifest['commit']}/data/AVS/avs.qrels.tv19"
    )
    assert file_url("data/AVS/avs.qrels.tv19", "http://mirror/x/") == "http://mirror/x/data/AVS/avs.qrels.tv19"
    assert file_url("data/AVS/avs.qrels.tv19", "http://mirror/{name}") == "http://mirror/avs.qrels.tv19"
    with pytest.raises(ConfigError):
        file_url("data/AVS/avs.qrels.tv19", "http://mirror/{nope}")


def test_good_file_installs_and_a_2019_run_then_scores_without_qrels(server, small_tv19_published, tmp_path):
    root = tmp_path / "root"
    result = cli("data", "fetch", "qrels", "--year", "2019", "--rootpath", str(root), "--url", base(server))
    assert result.exit_code == 0, result.output
    installed = root / "v3c1" / "TextData" / "avs.qrels.tv19"
    assert installed.read_bytes() == SMALL_TV19
    assert "downloaded, git blob id verified" in result.stdout
    sidecar = json.loads((installed.parent / "avs.qrels.tv19.source.json").read_text())
    assert sidecar["verified"] and sidecar["git_blob_sha1"] == small_tv19_published
    assert sidecar["source"] == base(server) + TV19_PATH
    assert sorted(p.name for p in installed.parent.iterdir()) == ["avs.qrels.tv19", "avs.qrels.tv19.source.json"]

    run = tmp_path / "run.txt"
    run.write_text(SMALL_RUN)
    scored = cli("score", str(run), "--rootpath", str(root), "--format", "json")
    assert scored.exit_code == 0, scored.output
    assert json.dumps(str(installed)) in scored.stdout  # the installed 2019 qrels were found under the root

    again = cli("data", "fetch", "qrels", "--year", "2019", "--rootpath", str(root), "--url", base(server, "/gone"))
    assert again.exit_code == 0 and "up to date" in again.stdout  # already installed: nothing fetched


def test_real_2021_entry_installs_from_a_mirror_and_scores_like_the_bundled_file(server, tmp_path):
    root = tmp_path / "root"
    installed = fetch_qrels(parse_years("2021"), root, url=base(server))
    assert [i.path for i in installed] == [root / "v3c1" / "TextData" / "avs.qrels.tv21"]
    assert installed[0].path.read_bytes() == TV21 and installed[0].verified
    scored = cli("score", str(bundled_runs()[0]), "--rootpath", str(root))
    assert scored.exit_code == 0 and "0.3430" in scored.stdout


@pytest.mark.parametrize(
    "prefix, needles",
    [
        ("/wrong", ["git blob id", "is not the published 186163667d401c7e62d8471d7b09fb09b5963300"]),
        ("/cut", ["connection closed after 1,549,936 of 3,099,872 bytes"]),
        ("/missing", ["HTTP 404"]),
    ],
    ids=["wrong-bytes", "cut-connection", "404"],
)
def test_bad_download_is_one_clear_error_and_installs_nothing(server, tmp_path, prefix, needles):
    root = tmp_path / "root"
    root.mkdir()
    result = cli("data", "fetch", "qrels", "--year", "2021", "--rootpath", str(root), "--url", base(server, prefix))
    one_error(result, *needles)
    assert list(root.rglob("*")) == []


def test_one_bad_year_installs_none_of_the_others(server, small_tv19_published, tmp_path):
    root = tmp_path / "root"
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch_qrels(parse_years("2021,2019,2020"), root, url=base(server))  # 2021 and 2019 are good, 2020 is not served
    assert not root.exists()


def test_no_network_is_one_line_and_writes_nothing(tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = tmp_path / "root"
    result = cli(
        "data", "fetch", "qrels", "--year", "2021", "--rootpath", str(root), "--url", f"http://127.0.0.1:{port}"
    )
    one_error(result, "cannot reach 127.0.0.1", "no network?", "nothing was written", "add-qrels")
    assert not root.exists()


def test_years_without_published_qrels_are_a_clear_error(tmp_path):
    one_error(
        cli("data", "fetch", "qrels", "--year", "progress", "--rootpath", str(tmp_path)),
        "no public qrels are known for progress",
    )
    one_error(cli("data", "fetch", "qrels", "--year", "2015", "--rootpath", str(tmp_path)), "unknown AVS year")
    assert list(tmp_path.iterdir()) == []


def test_add_qrels_with_the_published_id_is_verified(tmp_path):
    user_file = tmp_path / "qrels.txt"
    user_file.write_bytes(TV21)
    result = cli("data", "add-qrels", str(user_file), "--year", "2021", "--rootpath", str(tmp_path / "root"))
    assert result.exit_code == 0 and "added, git blob id verified" in result.stdout
    assert (tmp_path / "root" / "v3c1" / "TextData" / "avs.qrels.tv21").read_bytes() == TV21


def test_add_qrels_with_an_unknown_id_installs_with_a_warning_recorded_in_the_sidecar(tmp_path):
    user_file = tmp_path / "mine.qrels"
    user_file.write_bytes(SMALL_TV19)
    result = cli("data", "add-qrels", str(user_file), "--year", "2019", "--rootpath", str(tmp_path / "root"))
    assert result.exit_code == 0, result.output
    assert "avsbench: warning: git blob id" in result.stderr and "UNVERIFIED" in result.stdout
    text_dir = tmp_path / "root" / "v3c1" / "TextData"
    sidecar = json.loads((text_dir / "avs.qrels.tv19.source.json").read_text())
    assert (
        sidecar["verified"] is False
        and sidecar["published_git_blob_sha1"] == load_manifest()["files"]["tv19"]["git_blob_sha1"]
    )
    assert "not the published" in sidecar["warning"] and sidecar["source"] == str(user_file.resolve())


def test_add_qrels_refuses_another_years_file_and_bad_files(tmp_path):
    root = tmp_path / "root"
    official = tmp_path / "tv21"
    official.write_bytes(TV21)
    with pytest.raises(ConfigError, match="official tv21 qrels file, not tv19"):
        add_qrels(official, get_year(2019), root)
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"1611 0 shot00001_1 1\n")
    one_error(cli("data", "add-qrels", str(garbage), "--year", "2019", "--rootpath", str(root)), str(garbage))
    wrong_year = tmp_path / "wrong_year"
    wrong_year.write_bytes(SMALL_TV19.replace(b"1611 ", b"1501 ").replace(b"1612 ", b"1502 "))
    with pytest.raises(InputFormatError, match="no topic of 2019"):
        add_qrels(wrong_year, get_year(2019), root)
    one_error(
        cli("data", "add-qrels", str(tmp_path / "absent"), "--year", "2019", "--rootpath", str(root)), "not found"
    )
    assert not root.exists()


def test_cli_in_a_child_process_fails_cleanly_under_a_memory_limit(server, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "keep.txt").write_text("x")
    before = tree_snapshot(root)
    done = run_cli_limited(
        ["data", "fetch", "qrels", "--year", "2021", "--rootpath", str(root), "--url", base(server, "/cut")]
    )
    assert_one_clear_error(done, "connection closed after")
    assert tree_snapshot(root) == before
