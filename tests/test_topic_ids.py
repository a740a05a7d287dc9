"""Topic ids typed by users: 611 and its run/qrels id 1611 (what `score` prints) are one topic (issue 11.16)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from avsbench.cli import main
from avsbench.data.topics import get_year, topic_number
from avsbench.errors import ConfigError


@pytest.mark.parametrize(
    ("given", "plain"), [(611, 611), ("611", 611), (1611, 611), ("1611", 611), (" 1501 ", 501), ("0591", 591)]
)
def test_topic_number_accepts_plain_and_run_ids(given: int | str, plain: int) -> None:
    assert topic_number(given) == plain


@pytest.mark.parametrize("given", ["", "61a", "-611", "2611", "1000", "0", "6.11", "١٦١١", True, "611\n612"])
def test_topic_number_rejects_anything_else(given: object) -> None:
    with pytest.raises(ConfigError, match="expected a topic number such as 611, or its run/qrels id 1611"):
        topic_number(given)  # type: ignore[arg-type]


def test_topic_set_get_accepts_both_forms() -> None:
    topics = get_year(2019).topics()
    assert topics.get(1611) == topics.get("611") == topics.get(611)


def test_topics_command_looks_topics_up_by_either_id() -> None:
    runner = CliRunner()
    by_run_id = runner.invoke(main, ["topics", "--topic", "1611,612"])
    assert by_run_id.exit_code == 0, by_run_id.output
    assert by_run_id.output.splitlines() == [
        "# tv19 (v3c1, 30 topics)",
        "611\ta drone flying",
        "612\ta truck being driven in the daytime",
    ]
    assert (
        runner.invoke(main, ["topics", "--topic", "611"]).output
        == runner.invoke(main, ["topics", "--topic", "1611"]).output
    )
    qrels = runner.invoke(main, ["topics", "--year", "2021", "--topic", "661", "--qrels-ids"])
    assert qrels.exit_code == 0 and qrels.output.splitlines()[1].startswith("1661\t")
    for args, needle in [
        (["--topic", "61a"], "bad topic '61a'"),
        (["--year", "2021", "--topic", "1611"], "611 not in tv21"),
        (["--topic", "999"], "topic 999"),
        ([], "no year and no topic"),
    ]:
        res = runner.invoke(main, ["topics", *args])
        assert res.exit_code == 2 and needle in res.output, res.output


def test_explain_topic_option_parses_both_forms() -> None:
    """The conversion happens before the model is loaded: a bad topic is the error, a good one is not."""
    runner = CliRunner()
    bad = runner.invoke(main, ["explain", "--model", "no-model", "--year", "2019", "--topic", "16x1"])
    assert bad.exit_code == 2 and "bad topic '16x1'" in bad.output
    good = runner.invoke(main, ["explain", "--model", "no-model", "--year", "2019", "--topic", "1611"])
    assert good.exit_code == 2 and "topic" not in good.output.split("error:")[-1]
