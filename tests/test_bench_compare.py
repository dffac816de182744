"""bench/compare.py's table: this tree against the base in the same round, the order of runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.compare import ServiceRow, in_turn, service_table, sustained


def _phase(rate: int, web: float, workers: tuple[float, ...], nlu: float) -> dict[str, Any]:
    cpu = {"web": web, "rasa-1": nlu, "scheduler-1": 0.0}
    cpu |= {f"worker-{n}": ms for n, ms in enumerate(workers, 1)}
    return {
        "rate": rate, "achieved_rate": rate, "errors": 0, "lost": 0, "duplicates": 0,
        "out_of_order": 0, "ack_p50_ms": 2.0, "ack_p99_ms": 9.0, "e2e_p50_ms": 250.0,
        "e2e_p99_ms": 300.0, "drain_s": 11.0, "others_cpu_pct": 5, "cpu_ms": cpu,
    }  # fmt: skip


def _row(round_: int, base: bool, phase: dict[str, Any]) -> ServiceRow:
    start = {"accepted_s": 3.0, "answered_s": 10.0}
    label = "base 2a8e744" if base else "this commit"
    return ServiceRow(round_, label, "", base, "200", start, phase)


def test_each_row_of_this_tree_is_compared_with_the_base_of_its_round_and_rate() -> None:
    rows = [  # in the order they ran: the base first in round 1, this tree first in round 2
        _row(1, True, _phase(100, 3.0, (5.0,), 4.0)),  # 12.0
        _row(1, False, _phase(100, 2.0, (2.0, 1.6), 0.4)),  # 6.0: -50 %
        _row(2, False, _phase(100, 2.0, (3.0, 1.8), 0.2)),  # 7.0
        _row(2, True, _phase(100, 3.0, (6.0,), 5.0)),  # 14.0: -50 %
        _row(1, True, _phase(300, 2.0, (4.0,), 4.0)),  # 10.0
        _row(1, False, _phase(300, 1.0, (2.0, 1.0), 0.5)),  # 4.5: -55 %
        _row(2, True, _phase(300, 2.0, (4.0,), 2.0)),  # 8.0
        _row(2, False, _phase(300, 1.0, (2.0, 2.0), 1.0)),  # 6.0: -25 %
    ]
    lines = service_table(rows)
    table = [line for line in lines if line.startswith("| ") and "round" not in line]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table]
    assert [(c[0], c[1], c[4]) for c in cells] == [
        ("1", "base 2a8e744", "100"), ("1", "this commit", "100"),
        ("2", "base 2a8e744", "100"), ("2", "this commit", "100"),
        ("1", "base 2a8e744", "300"), ("1", "this commit", "300"),
        ("2", "base 2a8e744", "300"), ("2", "this commit", "300"),
    ]  # fmt: skip
    assert [c[16] for c in cells] == [
        "12.00",
        "6.00",
        "14.00",
        "7.00",
        "10.00",
        "4.50",
        "8.00",
        "6.00",
    ]
    assert [c[17] for c in cells] == ["", "-50 %", "", "-50 %", "", "-55 %", "", "-25 %"]
    assert cells[1][15] == "2.00 / 3.60 / 0.40 / 0.00"  # the workers summed
    assert lines[-4:] == [
        "Highest rate kept up with, msg/s (0 errors, none lost, e2e p99 < 1 s at that rate and"
        " every lower one offered), round 1: base 2a8e744 300, this commit 300",
        "Highest rate kept up with, msg/s (0 errors, none lost, e2e p99 < 1 s at that rate and"
        " every lower one offered), round 2: base 2a8e744 300, this commit 300",
        "CPU per message against the base, 100 msg/s: median -50 % (-50 %, -50 %)",
        "CPU per message against the base, 300 msg/s: median -40 % (-55 %, -25 %)",
    ]


def test_the_highest_rate_kept_up_with_stops_at_the_first_rate_missed() -> None:
    slow = _phase(200, 3.0, (5.0,), 4.0) | {"e2e_p99_ms": 2500.0}
    lost = _phase(150, 3.0, (5.0,), 4.0) | {"lost": 1}
    rows = [
        _row(1, True, _phase(100, 3.0, (5.0,), 4.0)),
        _row(1, True, slow),
        _row(1, True, _phase(300, 3.0, (5.0,), 4.0)),  # fine again: does not count
        _row(1, False, _phase(100, 2.0, (2.0,), 1.0)),
        _row(1, False, _phase(200, 2.0, (2.0,), 1.0)),
        _row(1, False, _phase(300, 2.0, (2.0,), 1.0) | {"errors": 3}),
        _row(2, False, lost),
        _row(2, True, _phase(150, 3.0, (5.0,), 4.0)),
    ]
    assert sustained(rows) == {
        ("", 1): [("base 2a8e744", 100), ("this commit", 200)],
        ("", 2): [("base 2a8e744", 150), ("this commit", 0)],
    }


def test_the_trees_take_turns_going_first() -> None:
    trees = {"base": Path("/base"), "this commit": Path("/this")}
    assert [name for name, _ in in_turn(trees, 1)] == ["base", "this commit"]
    assert [name for name, _ in in_turn(trees, 2)] == ["this commit", "base"]
    assert [name for name, _ in in_turn(trees, 3)] == ["base", "this commit"]
