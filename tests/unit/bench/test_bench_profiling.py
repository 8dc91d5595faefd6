"""Top functions from py-spy's collapsed stacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.profiling import hotspots, summarize

COLLAPSED = """main (w.py:1);loop (w.py:5);decode (e.py:9) 60
main (w.py:1);loop (w.py:5);send (k.py:3) 30
main (w.py:1);idle (w.py:8) 10
not a sample line
"""


def test_hotspots_share_time_on_stack_and_time_running() -> None:
    spots = {h.frame: h for h in hotspots(COLLAPSED)}
    assert spots["main (w.py:1)"].total_share == pytest.approx(1.0)
    assert spots["main (w.py:1)"].self_share == 0.0
    assert spots["loop (w.py:5)"].total_share == pytest.approx(0.9)
    assert spots["decode (e.py:9)"].self_share == pytest.approx(0.6)


def test_a_recursive_frame_counts_once_per_sample() -> None:
    (spot,) = hotspots("f (a.py:1);f (a.py:1) 4")
    assert spot.total_share == 1.0 and spot.self_share == 1.0


def test_no_samples_no_hotspots() -> None:
    assert hotspots("") == []


def test_summary_lists_both_rankings(tmp_path: Path) -> None:
    path = tmp_path / "profile.txt"
    path.write_text(COLLAPSED)
    text = summarize(path)
    assert text.index("decode (e.py:9)") < text.index("send (k.py:3)")
    assert "60.0%" in text
