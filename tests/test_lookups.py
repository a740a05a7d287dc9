"""One implementation each (issue 13): the qrels of a year, RECALL_LEVELS, the topic-text lookup,
the progress bars, the tokenizer and the top-k the synthetic generator shares with ranking."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from avsbench.cli import main
from avsbench.data import captions, synthetic
from avsbench.data.collection import SYNTHETIC_MARKER, Collection, find_qrels, lookup_qrels, qrels_location
from avsbench.data.fetch import add_qrels
from avsbench.data.resources import bundled_qrels, bundled_runs
from avsbench.data.topics import get_year, topic_text
from avsbench.errors import MissingDataError
from avsbench.eval import sample_eval
from avsbench.progress import progress_bars
from avsbench.ranking.topk import TopK, scorer_sort, shot_id_keys

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "avsbench"
QRELS_2019 = b"1611 0 shot00001_1 1 1\n1611 0 shot00002_1 1 0\n"


# -- qrels of a year: qrels_location / lookup_qrels / find_qrels, used by score, collection and fetch ------------


def test_qrels_location_is_under_the_years_collection_or_the_given_one(tmp_path):
    assert qrels_location(tmp_path, get_year(2019)) == tmp_path / "v3c1" / "TextData" / "avs.qrels.tv19"
    assert qrels_location(tmp_path, get_year(2016), "mine") == tmp_path / "mine" / "TextData" / "avs.qrels.tv16"


def test_lookup_prefers_installed_then_bundled_and_never_bundled_for_synthetic(tmp_path):
    year = get_year(2021)
    assert lookup_qrels(tmp_path, year) == bundled_qrels("tv21")
    installed = qrels_location(tmp_path, year)
    installed.parent.mkdir(parents=True)
    installed.write_bytes(bundled_qrels("tv21").read_bytes())
    assert lookup_qrels(tmp_path, year) == installed
    installed.unlink()
    (tmp_path / "v3c1" / SYNTHETIC_MARKER).write_text("synthetic")
    assert lookup_qrels(tmp_path, year) is None
    with pytest.raises(MissingDataError, match="synthetic collection has no qrels for 2021"):
        find_qrels(year, tmp_path)


def test_a_collection_under_another_name_finds_its_own_qrels(tmp_path):
    """Collection.qrels_path goes through lookup_qrels with the collection's own name."""
    text = tmp_path / "v3c1-copy" / "TextData"
    text.mkdir(parents=True)
    (text / "avs.qrels.tv19").write_bytes(QRELS_2019)
    assert Collection(tmp_path, "v3c1-copy").qrels_path(get_year(2019)) == text / "avs.qrels.tv19"
    assert Collection(tmp_path, "v3c1-copy").qrels_path(get_year(2020)) is None


def test_missing_qrels_say_how_to_fetch_them(tmp_path):
    with pytest.raises(MissingDataError) as err:
        find_qrels(get_year(2019), tmp_path)
    message = str(err.value)
    assert "avsbench data fetch qrels --year 2019" in message and "add-qrels FILE --year 2019" in message
    assert str(qrels_location(tmp_path, get_year(2019))) in message and "--qrels FILE" in message


def test_what_fetch_installs_is_what_score_and_collection_find(tmp_path):
    user_file = tmp_path / "q"
    user_file.write_bytes(QRELS_2019)
    root = tmp_path / "root"
    installed = add_qrels(user_file, get_year(2019), root)
    assert installed.path == find_qrels(get_year(2019), root) == Collection(root, "v3c1").qrels_path(get_year(2019))


def test_find_qrels_has_one_definition():
    assert _definitions("find_qrels") == ["avsbench/data/collection.py"]
    assert _definitions("qrels_location") == ["avsbench/data/collection.py"]


# -- RECALL_LEVELS ---------------------------------------------------------------------------------------------------


def _definitions(name: str) -> list[str]:
    """Files of the package that define ``name`` (a function, class or module-level assignment)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            targets = []
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                targets = [node.name]
            elif isinstance(node, ast.Assign):
                targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                targets = [node.target.id]
            if name in targets:
                found.append(str(path.relative_to(REPO)))
    return found


def test_recall_levels_are_one_constant():
    from avsbench.report import plots

    assert _definitions("RECALL_LEVELS") == ["avsbench/eval/sample_eval.py"]
    assert plots.RECALL_LEVELS is sample_eval.RECALL_LEVELS
    assert sample_eval.RECALL_LEVELS == tuple(i / 10 for i in range(11))


# -- topic text ------------------------------------------------------------------------------------------------------


def test_topic_text_by_plain_number_or_qrels_id():
    assert topic_text(611) == topic_text("1611") == get_year(2019).topics().get(611).text
    assert topic_text(591) == get_year("progress").topics().get(591).text
    assert topic_text(999) == topic_text("1999") == topic_text("shot") == topic_text("611x") == ""


def test_score_and_compare_show_the_same_topic_text():
    from avsbench.eval.compare import compare_runs

    rucmm, godspeed = (str(p) for p in bundled_runs())
    csv_text = CliRunner().invoke(main, ["score", "-q", "--format", "csv", rucmm]).stdout
    row = next(line for line in csv_text.splitlines() if ",1661," in line)
    assert topic_text("1661") and topic_text("1661") in row
    comparison = compare_runs([rucmm, godspeed], qrels=bundled_qrels("tv21"), permutations=100, bootstrap_samples=100)
    texts = {r["topic"]: r["text"] for r in comparison.per_topic.to_dict("records")}
    assert texts["1661"] == topic_text(661)


# -- progress bars ---------------------------------------------------------------------------------------------------


def test_progress_bars_only_on_a_terminal(monkeypatch):
    with progress_bars() as bars:  # pytest's stderr is not a terminal
        assert bars is None
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with progress_bars(enabled=False) as bars:
        assert bars is None
    for unit in (None, "bytes", "shots"):
        with progress_bars(unit=unit, remove_finished=True) as bars:
            assert bars is not None
            outer, inner = bars("outer", 2), bars("inner", 3)
            for _ in range(3):
                inner(1)
            outer(2)
            bars.log("a line")
            unknown = bars("unknown total", None)
            unknown(10)


def test_no_rich_outside_the_cli_the_report_and_the_progress_module():
    allowed = {"cli", "report"}
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).parts
        if parts[0] in allowed or parts == ("progress.py",):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "rich" or n.startswith("rich.") for n in names):
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def test_training_reports_through_the_progress_callback(small_demo_root, tmp_path):
    from avsbench.model.train import DEMO_SETTINGS, train_model

    calls: list[tuple[str, int | None]] = []
    steps: dict[str, int] = {}
    lines: list[str] = []

    def factory(label: str, total: int | None):
        calls.append((label, total))
        return lambda n: steps.__setitem__(label, steps.get(label, 0) + n)

    settings = DEMO_SETTINGS.updated({"epochs": 2, "batch_size": 256})
    train_model(
        "demotrain",
        "demo_clip512",
        "bow",
        settings=settings,
        rootpath=small_demo_root,
        progress=factory,
        log=lines.append,
    )
    assert calls[0] == ("epochs", 2) and [label for label, _ in calls[1:]] == ["epoch 1", "epoch 2"]
    assert steps["epochs"] == 2 and steps["epoch 1"] == calls[1][1]
    assert len(lines) == 2 and lines[0].startswith("epoch=1 loss=")


# -- tokenizer and top-k of the synthetic generator ------------------------------------------------------------------


def test_one_tokenizer_for_captions_queries_and_the_generator():
    from avsbench.model import text

    assert synthetic.tokenize is captions.tokenize and text.tokenize is captions.tokenize
    assert captions.tokenize("A man's DOG, jumping-over 2 fences!") == [
        "a",
        "man",
        "s",
        "dog",
        "jumping",
        "over",
        "2",
        "fences",
    ]
    assert _definitions("tokenize") == ["avsbench/data/captions.py"]


def test_generator_pools_with_the_rankings_top_k_in_the_scorers_order():
    rng = np.random.default_rng(3)
    ids = [f"shot{v:05d}_{s}" for v in range(1, 40) for s in range(1, 30)]
    scores = rng.integers(0, 50, size=(3, len(ids))).astype(np.float32)  # many ties
    scores[:, ::7] = -np.inf  # dropped shots never enter
    keys = shot_id_keys(ids)
    pool = TopK(3, 100, keys)
    for start in range(0, len(ids), 250):
        synthetic._push_run_scores(pool, scores[:, start : start + 250], start)
    for topic in range(3):
        finite = np.flatnonzero(np.isfinite(scores[topic]))
        expected = finite[scorer_sort(scores[topic, finite], keys[finite])][:100]
        assert pool.rows[topic].tolist() == expected.tolist()
    assert _definitions("TopK") == ["avsbench/ranking/topk.py"]


def test_the_generator_and_top_k_import_without_torch():
    code = "import sys, avsbench.data.synthetic, avsbench.ranking.topk; assert 'torch' not in sys.modules, 'torch'"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
