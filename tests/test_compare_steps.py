"""Issue 13 item 6 (h-api's part): compare_runs in named steps, one name per meaning, warnings
filtered by category, one synthetic-qrels check."""

from __future__ import annotations

import ast
import inspect

import pytest

import avsbench.eval.compare as compare_module
import avsbench.report.compare_report as report_module
from avsbench import api, extras, interop
from avsbench.data.qrels import Qrels
from avsbench.data.runs import RunFile
from avsbench.eval.sample_eval import evaluate
from avsbench.eval.scoring import WARNING_CATEGORIES, is_synthetic_qrels, run_warnings

MAX_FUNCTION_LINES = 60


@pytest.mark.parametrize("module", [compare_module, api, interop, extras])
def test_no_function_over_60_lines(module: object) -> None:
    tree = ast.parse(inspect.getsource(module))  # type: ignore[arg-type]
    long = [
        (node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_one_compare_runs() -> None:
    assert hasattr(compare_module, "compare_runs")
    assert not hasattr(report_module, "compare_runs")
    assert hasattr(report_module, "build_comparison_report")


def test_one_synthetic_qrels_check() -> None:
    assert compare_module.is_synthetic_qrels is is_synthetic_qrels


QRELS = b"".join(f"1661 0 s{i} 1 {i % 2}\n".encode() for i in range(6)) + b"1662 0 t1 1 1\n"


def messy_run() -> RunFile:
    """Topic 1661 with a duplicate line, 1662 missing, 1999 not in the qrels."""
    lines = [("1661", "s1", 3.0), ("1661", "s1", 2.0), ("1661", "s3", 1.0), ("1999", "x", 1.0)]
    return RunFile.from_entries(lines, name="messy")


def test_run_warnings_filter_by_category() -> None:
    result = evaluate(Qrels.from_bytes(QRELS), messy_run())
    everything = run_warnings(result)
    assert len(everything) == 3
    kept = run_warnings(result, skip=("foreign_topics",))
    assert len(kept) == 2 and all("1999" not in w for w in kept)
    assert run_warnings(result, skip=WARNING_CATEGORIES) == []
    with pytest.raises(ValueError, match="unknown warning categories"):
        run_warnings(result, skip=("not in the qrels",))


def test_compare_drops_only_the_foreign_topic_warning(tmp_path) -> None:
    qrels = tmp_path / "qrels"
    qrels.write_bytes(QRELS)
    other = RunFile.from_entries([("1661", "s3", 1.0), ("1662", "t1", 1.0)], name="other")
    comparison = compare_module.compare_runs(
        [messy_run(), other], qrels=qrels, year=2021, references=False, permutations=100, bootstrap_samples=100
    )
    text = "\n".join(comparison.warnings)
    assert "duplicate shot line" in text and "missing from the run" in text
    assert "not in the qrels" not in text
