"""Hostile runs, qrels and XML submissions for score and validate: one clear error, exit 2, no
traceback, bounded memory (the CLI runs under an address-space limit), nothing written."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hostile import assert_one_clear_error, run_cli_limited, tree_snapshot

from avsbench.data.resources import resource_path

QRELS = resource_path("qrels", "avs.qrels.tv21")
RUN = resource_path("runs", "test_run.tv21.RUCMM.txt")
GOOD_LINE = b"1661 Q0 shot00615_76 1 9999 r\n"

HOSTILE_RUNS = {
    "binary": (b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 4, "binary data"),
    "nul_in_line": (GOOD_LINE + b"1661 Q0 shot0\x001_1 2 9998 r\n", ":2:"),
    "one_huge_line": (b"1661 Q0 " + b"x" * (3 << 20) + b" 1 1 r\n", "field of 3,145,728 bytes"),
    "no_newline_at_all": (b"1661 " * 600_000, "line longer than"),
    "huge_field": (b"1661 Q0 " + b"s" * 5000 + b" 1 1 r\n", "field of 5,000 bytes"),
    "seven_fields": (GOOD_LINE + b"1661 Q0 shot00001_1 2 9998 r extra\n", ":2: line has 7 fields"),
    "nan_score": (GOOD_LINE + b"1661 Q0 shot00001_1 2 nan r\n", ":2: score 'nan'"),
    "overflow_score": (GOOD_LINE + b"1661 Q0 shot00001_1 2 1e999 r\n", "out of range"),
    "invalid_utf8": (GOOD_LINE + b"1661 Q0 shot\xff\xfe_1 2 1 r\n", "not UTF-8"),
    "leading_blank": (b"\n" + GOOD_LINE, "starts with whitespace"),
    "empty": (b"", "empty run file"),
    "bom": (b"\xef\xbb\xbf" + GOOD_LINE, "byte-order mark"),
    "gzip_bomb_of_one_line": (gzip.compress(b"y" * (64 << 20)), "line longer than"),
    "truncated_gzip": (gzip.compress(RUN.read_bytes())[:5000], "gzip"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_RUNS))
def test_hostile_run_files(tmp_path: Path, name: str) -> None:
    data, needle = HOSTILE_RUNS[name]
    path = tmp_path / f"{name}.txt"
    path.write_bytes(data)
    before = tree_snapshot(tmp_path)
    for fmt in ("sample-eval", "json"):  # the click-free path and the click command
        done = run_cli_limited(["score", "--format", fmt, "--qrels", str(QRELS), str(path)])
        assert_one_clear_error(done, needle)
    assert tree_snapshot(tmp_path) == before


HOSTILE_QRELS = {
    "four_fields": (b"1661 0 shot00001_1 1\n", "line has 4 fields"),
    "judgment_not_integer": (b"1661 0 shot00001_1 1 yes\n", "judgment 'yes' is not an integer"),
    "binary": (bytes(range(256)) * 100, "binary data"),
    "one_huge_line": (b"1661 0 " + b"z" * (2 << 20) + b" 1 1\n", "field of 2,097,152 bytes"),
    "empty": (b"   \n", "empty qrels file"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_QRELS))
def test_hostile_qrels_files(tmp_path: Path, name: str) -> None:
    data, needle = HOSTILE_QRELS[name]
    path = tmp_path / f"{name}.qrels"
    path.write_bytes(data)
    cache = tmp_path / "cache"
    done = run_cli_limited(
        ["score", "--format", "sample-eval", "--qrels", str(path), str(RUN)], env={"AVSBENCH_CACHE": str(cache)}
    )
    assert_one_clear_error(done, needle)
    assert not cache.exists() or not any(cache.rglob("*.qrels"))  # nothing cached for a bad file


def _xml(body: str, doctype: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n{doctype}<videoAdhocSearchResults>\n<videoAdhocSearchRunResult '
        f'trType="D" class="F" task="M" novelty="C" pid="T" priority="1" desc="d">\n{body}\n'
        "</videoAdhocSearchRunResult>\n</videoAdhocSearchResults>\n"
    ).encode()


LAUGHS = '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>\n'
HOSTILE_XML = {
    "billion_laughs": (_xml('<videoAdhocSearchTopicResult tNum="661" elapsedTime="&lol2;"/>', LAUGHS), "entity"),
    "external_entity": (
        _xml(
            '<videoAdhocSearchTopicResult tNum="&x;" elapsedTime="1"/>',
            '<!DOCTYPE x [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n',
        ),
        "entity",
    ),
    "deep_nesting": (_xml("<a>" * 100_000 + "</a>" * 100_000), ":4:"),
    "truncated": (_xml('<videoAdhocSearchTopicResult tNum="661" elapsedTime="1">')[:-40], "not well-formed"),
    "bad_seqnum": (
        _xml(
            '<videoAdhocSearchTopicResult tNum="661" elapsedTime="1"><item seqNum="x" shotId="shot00001_1"/>'
            "</videoAdhocSearchTopicResult>"
        ),
        "seqNum",
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_XML))
def test_hostile_xml_for_score(tmp_path: Path, name: str) -> None:
    data, needle = HOSTILE_XML[name]
    path = tmp_path / f"{name}.xml"
    path.write_bytes(data)
    done = run_cli_limited(["score", "--qrels", str(QRELS), str(path)])
    assert_one_clear_error(done, needle)


@pytest.mark.parametrize("name", ["billion_laughs", "external_entity", "deep_nesting", "truncated"])
def test_hostile_xml_for_validate(tmp_path: Path, name: str) -> None:
    data, needle = HOSTILE_XML[name]
    path = tmp_path / f"{name}.xml"
    path.write_bytes(data)
    done = run_cli_limited(["validate", str(path)])
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert needle in done.stdout and "passwd" not in done.stdout.replace("file:///etc/passwd", "")
