"""bench.cpu's pure parts: /proc lines, CPU deltas of a process group, py-spy's collapsed stacks."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.cpu_proc import (
    CLOCK_TICKS,
    Snapshot,
    off_core,
    parse_kb_fields,
    parse_stat,
    pin,
    pss_kb,
    read_stat,
    task_ids,
    tree,
    usage,
)
from bench.cpu_profile import NO_PYTHON_FRAME, format_summary, own_time, profile_path
from bench.soak import rss_kb
from tests.waiting import eventually_sync

pytestmark = pytest.mark.unit

# A real line's shape, the command name holding spaces and parentheses: utime 1234, stime 56,
# 7 threads, started 98765 ticks after boot.
STAT_LINE = (
    "4242 (python3 -m (x) y) S 100 4242 4242 0 -1 4194304 5000 0 12 0 1234 56 0 0 20 0 7 0 98765 "
    "123456789 4321 18446744073709551615 1 1 0 0 0 0 16386 16781312 0 0 0 17 1 0 0 0 0 0"
)

SMAPS_ROLLUP = """\
55d0c8a4a000-7ffd1f1f3000 ---p 00000000 00:00 0                          [rollup]
Rss:               61424 kB
Pss:               44012 kB
Pss_Anon:          40000 kB
Shared_Clean:      17000 kB
"""


def test_a_stat_line_is_read_past_a_command_name_with_spaces_and_parentheses():
    stat = parse_stat(STAT_LINE)
    assert (stat.pid, stat.comm, stat.ppid) == (4242, "python3 -m (x) y", 100)
    assert (stat.utime, stat.stime, stat.ticks) == (1234, 56, 1290)
    assert (stat.threads, stat.starttime) == (7, 98765)


def test_this_process_own_stat_names_it_and_counts_its_threads():
    stat = read_stat(os.getpid())
    assert stat is not None
    assert stat.pid == os.getpid()
    assert stat.ppid == os.getppid()
    assert stat.threads == len(task_ids(os.getpid()))
    assert stat.ticks >= 0


def test_a_gone_process_has_no_stat_and_no_threads():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert read_stat(child.pid) is None
    assert task_ids(child.pid) == []


def test_kb_fields_of_smaps_rollup_and_status():
    fields = parse_kb_fields(SMAPS_ROLLUP)
    assert fields == {"Rss": 61424, "Pss": 44012, "Pss_Anon": 40000, "Shared_Clean": 17000}
    status = parse_kb_fields("Name:\tpython3\nThreads:\t5\nVmRSS:\t  1024 kB\n")
    assert status == {"VmRSS": 1024}


def test_this_process_has_a_proportional_set_size_within_its_resident_size():
    pss, rss = pss_kb(os.getpid()), rss_kb(os.getpid())
    assert 0 < pss <= rss


def test_a_group_uses_the_change_of_each_process_and_a_new_one_from_zero():
    before = Snapshot({(10, 500): 300, (11, 600): 50, (12, 700): 9})
    # 10 used 200 ticks; 11 ended; 12 is a new process with the same pid (another start time);
    # 13 started in the window
    after = Snapshot({(10, 500): 500, (12, 900): 40, (13, 950): 60})
    used = usage(before, after)
    assert used.cpu_s == pytest.approx((200 + 40 + 60) / CLOCK_TICKS)
    assert used.lost == 2  # 11, and the first 12


def test_a_group_that_did_nothing_used_nothing():
    same = Snapshot({(10, 500): 300})
    assert usage(same, same).cpu_s == 0
    assert usage(same, same).lost == 0


def test_a_child_with_two_threads_is_pinned_thread_by_thread():
    allowed = sorted(os.sched_getaffinity(0))
    code = "import sys, threading; threading.Thread(target=sys.stdin.read, daemon=True).start(); sys.stdin.read()"
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
    try:
        eventually_sync(lambda: len(task_ids(child.pid)) == 2, "the child's second thread")
        assert child.pid in tree(os.getpid())
        assert pin([child.pid], {allowed[0]}) == 2
        assert off_core([child.pid], {allowed[0]}) == 0
        if len(allowed) > 1:
            assert off_core([child.pid], {allowed[1]}) == 2
    finally:
        child.kill()
        child.wait()


COLLAPSED = (
    # the edge (--subprocesses): Granian's main process, then a worker, then the worker's stack
    'process 10:"python3 -m gateway";process 11:"python3 -m gateway";main (gateway/__main__.py);'
    "read_body (gateway/asgi_io.py) 30\n"
    'process 10:"python3 -m gateway";process 11:"python3 -m gateway";main (gateway/__main__.py);'
    "Pipeline._serve (gateway/pipeline.py);read_body (gateway/asgi_io.py) 12\n"
    # a thread of the worker process with no Python frame
    'process 10:"python3 -m gateway";process 11:"python3 -m gateway" 5\n'
    # a command line spanning lines, and a frame with a line number
    'process 12:"python3 -c \nimport x;\nx.run()";<module> (<string>);run (x.py:17) 8\n'
    "main (gateway/__main__.py);Pipeline._serve (gateway/pipeline.py) 4\n"
)


def test_collapsed_stacks_sum_by_leaf_function():
    summary = own_time(COLLAPSED)
    assert summary.samples == 30 + 12 + 5 + 8 + 4
    assert summary.top == [
        ("read_body (gateway/asgi_io.py)", 42),
        ("run (x.py)", 8),
        (NO_PYTHON_FRAME, 5),
        ("Pipeline._serve (gateway/pipeline.py)", 4),
    ]


def test_the_top_is_cut_at_the_asked_length():
    summary = own_time(COLLAPSED, most=2)
    assert [name for name, _ in summary.top] == ["read_body (gateway/asgi_io.py)", "run (x.py)"]
    assert summary.samples == 59
    assert own_time("").samples == 0


def test_profile_files_are_named_by_time_commit_target_phase_and_process():
    path = profile_path("20261202T180000Z", "47d5575+", "llmgw", "stream", "worker-0")
    assert path.name == "20261202T180000Z-47d5575+-llmgw-stream-worker-0.txt"
    assert path.parent.name == "results"
    assert profile_path("t", "c", "floor", "idle", "load generator").name == "t-c-floor-idle-load_generator.txt"


def test_the_summary_table_gives_each_function_its_share_of_the_samples():
    text = format_summary("whole / edge", own_time(COLLAPSED, most=3), window_s=10.0, rate=100, cpu_s=2.5)
    lines = text.splitlines()
    assert lines[0] == "#### whole / edge: top 3 functions by own time"
    assert "59 samples at 100/s" in lines[1] and "2.50 CPU s" in lines[1]
    assert lines[-3:] == [
        "| 71.2 | 42 | `read_body (gateway/asgi_io.py)` |",
        "| 13.6 | 8 | `run (x.py)` |",
        f"| 8.5 | 5 | `{NO_PYTHON_FRAME}` |",
    ]
