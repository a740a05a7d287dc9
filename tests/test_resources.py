"""Bundled files (issue 13 item 7): every topic file pinned, every resource present in the package.

Run against the installed wheel by ``.ci/run`` (``AVSBENCH_TEST_INSTALLED=1``, from a folder
outside the source tree, ``AVSBENCH_SOURCE_TREE`` naming the tree the wheel was built from), so a
file left out of the package data fails here.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import avsbench
from avsbench.data.resources import bundled_qrels, bundled_runs, bundled_topic_file, resource_path, v3c1_dropped_shots
from avsbench.data.topics import TopicSet, get_year

PACKAGE = Path(avsbench.__file__).resolve().parent
SOURCE_TREE = os.environ.get("AVSBENCH_SOURCE_TREE") or (
    str(PACKAGE.parent) if (PACKAGE.parent / "pyproject.toml").is_file() else None
)

# file -> (topics, first (number, text), last (number, text))
TOPIC_FILES = {
    "tv16.avs.txt": (30, (501, "a person playing guitar outdoors"), (530, "people shopping")),
    "tv17.avs.txt": (
        30,
        (531, "one or more people eating food at a table indoors"),
        (560, "a person holding, opening, closing or handing over a box"),
    ),
    "tv18.avs.txt": (
        30,
        (561, "exactly two men at a conference or meeting table talking in a room"),
        (590, "a person where a gate is visible in the background"),
    ),
    "tv19.avs.txt": (30, (611, "a drone flying"), (640, "a red hat or cap")),
    "tv20.avs.txt": (
        20,
        (641, "an aerial view of buildings near water in the daytime"),
        (660, "train tracks during the daytime"),
    ),
    "tv21.avs.txt": (20, (661, "a hang glider floating in the sky on a sunny day"), (680, "a bow tie")),
    "progress.avs.txt": (20, (591, "a person holding an opened umbrella outdoors"), (610, "electrical power lines")),
}
YEAR_OF_FILE = {
    "tv16.avs.txt": "2016",
    "tv17.avs.txt": "2017",
    "tv18.avs.txt": "2018",
    "tv19.avs.txt": "2019",
    "tv20.avs.txt": "2020",
    "tv21.avs.txt": "2021",
    "progress.avs.txt": "progress",
}

# package data that must ship (relative to the avsbench package)
REQUIRED_FILES = [
    "py.typed",
    "eval/leaderboard.json",
    "data/dtd/README.md",
    "data/dtd/videoAdhocSearchResults.tv2016.dtd",
    "data/dtd/videoAdhocSearchResults.tv2019.dtd",
    "resources/README.md",
    "resources/qrels/avs.qrels.tv21",
    "resources/qrels/sources.json",
    "resources/runs/test_run.tv21.GodSpeed.txt",
    "resources/runs/test_run.tv21.RUCMM.txt",
    "resources/shots/V3C1.dropped.shots.list",
    *(f"resources/topics/{name}" for name in TOPIC_FILES),
]


def package_data_files(package_dir: Path) -> set[str]:
    """Files of a package folder that are data, not code (relative paths)."""
    return {
        str(path.relative_to(package_dir))
        for path in package_dir.rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    }


@pytest.mark.parametrize("name", sorted(TOPIC_FILES))
def test_bundled_topic_file_is_pinned(name: str) -> None:
    count, first, last = TOPIC_FILES[name]
    topics = list(TopicSet.read(bundled_topic_file(name)))
    assert len(topics) == count
    assert (topics[0].number, topics[0].text) == first
    assert (topics[-1].number, topics[-1].text) == last
    assert [t.number for t in topics] == list(range(first[0], last[0] + 1))
    by_year = list(get_year(YEAR_OF_FILE[name]).topics())
    assert [(t.number, t.text) for t in by_year] == [(t.number, t.text) for t in topics]


def test_every_topic_file_is_pinned() -> None:
    shipped = {p.name for p in resource_path("topics").iterdir() if p.name.endswith(".avs.txt")}
    assert shipped == set(TOPIC_FILES)


def test_required_files_are_package_data() -> None:
    missing = [name for name in REQUIRED_FILES if not (PACKAGE / name).is_file()]
    assert missing == []


def test_bundled_qrels_runs_and_shots() -> None:
    qrels = bundled_qrels("tv21")
    assert qrels is not None and len(qrels.read_bytes().splitlines()) == 124431
    assert [len(path.read_bytes().splitlines()) for path in bundled_runs()] == [20000, 20000]
    assert len(v3c1_dropped_shots()) == 8
    assert bundled_qrels("tv19") is None


@pytest.mark.skipif(SOURCE_TREE is None, reason="no source tree to compare the package with")
def test_installed_package_data_equals_the_source_tree() -> None:
    source = Path(SOURCE_TREE or ".") / "avsbench"
    expected = package_data_files(source)
    installed = package_data_files(PACKAGE)
    assert sorted(expected - installed) == []
    for name in sorted(expected):
        installed_digest = hashlib.sha256((PACKAGE / name).read_bytes()).digest()
        assert installed_digest == hashlib.sha256((source / name).read_bytes()).digest(), name


@pytest.mark.skipif(os.environ.get("AVSBENCH_TEST_INSTALLED") != "1", reason="runs against the installed wheel only")
def test_tests_run_against_the_installed_package() -> None:
    assert "site-packages" in PACKAGE.parts


def build_wheel(tree: Path, out: Path) -> set[str]:
    """Build a wheel of ``tree`` (no isolation, no network) and list its avsbench data files."""
    done = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(tree)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    return {n.removeprefix("avsbench/") for n in names if n.startswith("avsbench/") and not n.endswith(".py")}


def copy_source_tree(source: Path, tree: Path) -> Path:
    """The files a wheel is built from, without build leftovers."""
    shutil.copytree(source / "avsbench", tree / "avsbench", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(source / name, tree / name)
    return tree


@pytest.mark.slow
@pytest.mark.skipif(SOURCE_TREE is None, reason="needs the source tree")
def test_wheel_check_catches_a_file_left_out(tmp_path: Path) -> None:
    pytest.importorskip("build")
    source = Path(SOURCE_TREE or ".")
    full = copy_source_tree(source, tmp_path / "full")
    assert package_data_files(full / "avsbench") <= build_wheel(full, tmp_path / "full-dist")
    broken = copy_source_tree(source, tmp_path / "broken")
    pyproject = broken / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"eval/*.json"', '"eval/*.yaml"'))
    left_out = package_data_files(broken / "avsbench") - build_wheel(broken, tmp_path / "broken-dist")
    assert left_out == {"eval/leaderboard.json"}
