"""The suite's pure helpers: the percentile, the statement counting and the table.

Not collected by the project's ``pytest`` run (``testpaths = ["tests"]``); run it with
``PYTHONPATH=$PWD .venv/bin/pytest benchmarks/test_suite.py``. Quick: no processes, no I/O.
"""

from __future__ import annotations

from collections import Counter

import pytest

from benchmarks.suite import Row, count_statements, markdown_table, percentile, ratio


def test_p99_of_fifty_samples_is_the_slowest_and_p50_the_25th() -> None:
    samples = [float(i) for i in range(50, 0, -1)]  # unsorted on purpose
    assert percentile(samples, 99) == 50.0
    assert percentile(samples, 50) == 25.0
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 99)


def test_statements_are_counted_for_the_run_database_only() -> None:
    db = "pimbot_bench_0123456789"
    log = [
        f"2026-12-04 20:00:00.001 UTC [11] postgres@{db} LOG:  statement: BEGIN",
        f"2026-12-04 20:00:00.002 UTC [11] postgres@{db} LOG:  execute <unnamed>: ;",
        f"2026-12-04 20:00:00.003 UTC [11] postgres@{db} LOG:  execute <unnamed>: SELECT a.id",
        "\tFROM a WHERE a.id = $1",  # a continuation line is not a statement
        f"2026-12-04 20:00:00.004 UTC [11] postgres@{db} DETAIL:  parameters: $1 = 'x'",
        f"2026-12-04 20:00:00.005 UTC [11] postgres@{db} LOG:  execute _pg3_0: UPDATE a SET b=1",
        f"2026-12-04 20:00:00.006 UTC [11] postgres@{db} LOG:  statement: COMMIT",
        f"2026-12-04 20:00:00.007 UTC [12] postgres@{db}x LOG:  statement: BEGIN",  # other db
        "2026-12-04 20:00:00.008 UTC [13] postgres@test LOG:  statement: SELECT 1",
    ]
    assert count_statements(log, db) == Counter(
        {"BEGIN": 1, "ping": 1, "SELECT": 1, "UPDATE": 1, "COMMIT": 1}
    )


def test_the_table_is_markdown_with_one_line_per_row_and_escaped_pipes() -> None:
    table = markdown_table(
        [Row("ack p99 (a|b)", "300 ms", "bare Bolt: 50 ms", ratio(0.3, 0.05))]
    ).splitlines()
    assert table == [
        "| what | pimbot | baseline in the same run | ratio |",
        "| --- | --- | --- | --- |",
        "| ack p99 (a\\|b) | 300 ms | bare Bolt: 50 ms | 6.00× |",
    ]
    assert ratio(1.0, 0.0) == "—"
