"""Hostile input for ``avsbench data fetch qrels`` and ``data add-qrels``: lying or endless servers,
malformed URLs, huge or binary files. Each is one clear error (exit 2), memory stays bounded and
nothing is written under the data root."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from avsbench.data.fetch import MAX_QRELS_BYTES
from tests.hostile import assert_one_clear_error, run_cli_limited, tree_snapshot


class HostileHandler(BaseHTTPRequestHandler):
    """``/huge/...`` announces 10 GB; ``/endless/...`` streams zeros without a length until the client stops."""

    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self.send_response(200)
        if self.path.startswith("/huge/"):
            self.send_header("Content-Length", str(10 * 1024**3))
            self.end_headers()
            self.wfile.write(b"1661 0 shot00001_1 1 1\n")
            return
        self.end_headers()
        block = b"0" * (1024 * 1024)
        try:
            for _ in range(MAX_QRELS_BYTES // len(block) + 8):
                self.wfile.write(block)
        except OSError:
            pass

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), HostileHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def root(tmp_path):
    folder = tmp_path / "root"
    folder.mkdir()
    (folder / "keep.txt").write_text("x")
    return folder


def fetch(root, url: str):
    return run_cli_limited(["data", "fetch", "qrels", "--year", "2021", "--rootpath", str(root), "--url", url])


def test_a_server_announcing_10_gb_is_refused_before_reading(server, root):
    before = tree_snapshot(root)
    assert_one_clear_error(fetch(root, server + "/huge"), "announces 10,737,418,240 bytes")
    assert tree_snapshot(root) == before


def test_an_endless_body_stops_at_the_size_limit_with_bounded_memory(server, root):
    before = tree_snapshot(root)
    assert_one_clear_error(fetch(root, server + "/endless"), f"more than {MAX_QRELS_BYTES:,} bytes")
    assert tree_snapshot(root) == before


@pytest.mark.parametrize(
    "url, needle",
    [
        ("notaurl", "bad URL"),
        ("http://[bad", "Invalid IPv6 URL"),
        ("http://127.0.0.1:99999", "Port out of range"),
        ("javascript:alert(1)", "bad URL"),
        ("http://127.0.0.1:1/{nope}", "placeholders"),
        ("file:///nonexistent/folder", "cannot read file:///nonexistent/folder"),
    ],
)
def test_malformed_or_unreadable_urls(root, url, needle):
    before = tree_snapshot(root)
    assert_one_clear_error(fetch(root, url), needle)
    assert tree_snapshot(root) == before


def test_add_qrels_refuses_huge_binary_empty_and_folder_inputs(tmp_path, root):
    huge = tmp_path / "huge.qrels"
    with huge.open("wb") as fh:  # sparse: refused by its size, never read
        fh.truncate(MAX_QRELS_BYTES + 1)
    binary = tmp_path / "binary.qrels"
    binary.write_bytes(bytes(range(256)) * 64)
    empty = tmp_path / "empty.qrels"
    empty.write_bytes(b"")
    before = tree_snapshot(root)
    for path, needle in ((huge, "bytes"), (binary, str(binary)), (empty, str(empty)), (tmp_path, str(tmp_path))):
        done = run_cli_limited(["data", "add-qrels", str(path), "--year", "2019", "--rootpath", str(root)])
        assert_one_clear_error(done, needle)
    assert tree_snapshot(root) == before
