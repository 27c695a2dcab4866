"""The benchmark's timing helper: what it runs, in which order, and what it reports."""

from __future__ import annotations

from edgecv.bench import _time_in_blocks


def test_timing_alternates_blocks_with_an_untimed_run_first():
    calls: list[str] = []

    def side(name: str):
        def run() -> str:
            calls.append(name)
            return name + str(len(calls))

        return run

    (a, a_got), (b, b_got) = _time_in_blocks([side("a"), side("b")], warmup=1, repeat=7, block=3)
    # warm-up of each, then blocks of 3, 3, 1 timed runs, each block after one untimed run
    assert "".join(calls) == "ab" + "aaaabbbb" + "aaaabbbb" + "aabb"
    assert a["runs"] == b["runs"] == 7 and len(a_got) == len(b_got) == 7
    assert a_got[0] == "a4" and b_got[0] == "b8"  # what the timed runs returned, not the untimed
    assert 0 <= a["min_ms"] <= a["median_ms"] <= a["p90_ms"]


def test_timing_one_function_has_no_untimed_runs_between_blocks():
    calls = []
    ((summary, got),) = _time_in_blocks([lambda: calls.append(1)], warmup=2, repeat=6, block=5)
    assert len(calls) == 8 and summary["runs"] == 6 and len(got) == 6
