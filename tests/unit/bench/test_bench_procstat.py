"""Reading memory and CPU of a process under test from /proc."""

from __future__ import annotations

import os

import pytest

from bench.procstat import CpuTrace, cpu_ticks, interpolate, status_kb, usage

STATUS = """Name:\tpython
VmPeak:\t  612340 kB
VmHWM:\t  181234 kB
VmRSS:\t  150000 kB
Threads:\t4
"""


def test_status_fields_in_kb() -> None:
    assert status_kb(STATUS, "VmHWM") == 181234
    assert status_kb(STATUS, "VmRSS") == 150000
    assert status_kb(STATUS, "VmSwap") == 0


def test_cpu_ticks_add_user_and_system_time_even_with_odd_process_names() -> None:
    # pid (comm) state ppid ... utime(14) stime(15): the name may hold spaces and parentheses
    stat = "4242 (Faust:Worker (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0"
    assert cpu_ticks(stat) == 300


def test_interpolate_between_samples_and_clamp_outside() -> None:
    samples = [(10.0, 1.0), (20.0, 3.0)]
    assert interpolate(samples, 15.0) == pytest.approx(2.0)
    assert interpolate(samples, 5.0) == 1.0
    assert interpolate(samples, 25.0) == 3.0
    assert interpolate([], 1.0) == 0.0


def test_cpu_trace_cuts_out_a_window() -> None:
    trace = CpuTrace(pid=1, samples=[(0.0, 0.0), (10.0, 5.0), (20.0, 15.0)])
    assert trace.between(5.0, 15.0) == pytest.approx(7.5)


def test_usage_of_this_process() -> None:
    own = usage(os.getpid())
    assert own.peak_rss_mb >= own.rss_mb > 1
    assert own.cpu_s > 0
