"""`jaxconv.experiment.cores`: the other work on a run's cores, and whether they were quiet."""

import os

import pytest

from jaxconv.experiment import cores

STAT = """cpu  99 99 99 99 99 99 99 99 0 0
cpu0 10 1 2 500 50 3 4 7 0 0
cpu1 20 2 4 600 60 6 8 9 0 0
intr 1 2 3
"""


def test_busy_time_counts_user_system_and_interrupts_on_the_cores_given():
    tick = os.sysconf("SC_CLK_TCK")
    assert cores.cpu_seconds(STAT, {0}) == (20 / tick, 7 / tick)
    assert cores.cpu_seconds(STAT, {0, 1}) == (60 / tick, 16 / tick)
    with pytest.raises(ValueError, match=r"no cpuN line for core\(s\) \[2\]"):
        cores.cpu_seconds(STAT, {0, 2})


def test_quiet_means_other_work_and_stolen_time_under_two_percent_of_the_cores():
    assert cores.quiet(3.9, wall_s=100, cores=2)
    assert not cores.quiet(4.1, wall_s=100, cores=2)
    assert not cores.quiet(-4.1, wall_s=100, cores=2)    # the accounts disagree
    assert not cores.quiet(2.0, wall_s=100, cores=2, steal_s=2.1)
    # a short run may always see a quarter of a CPU second of interrupts and daemons
    assert cores.quiet(0.24, wall_s=2, cores=2) and not cores.quiet(0.26, wall_s=2, cores=2)


@pytest.mark.skipif(cores.Watch().stop() is None,
                    reason="needs /proc/stat with a line for each of this process's cores")
def test_a_watch_counts_this_processs_work_as_its_own():
    watch = cores.Watch()
    start = os.times()
    while os.times().user - start.user < 0.3:
        pass
    figures = watch.stop()
    assert figures["own_cpu_s"] >= 0.3 and figures["wall_s"] >= 0.3
    assert figures["core_count"] == len(os.sched_getaffinity(0))
    # the cores' busy time includes the burn: counted apart from the process's own, the other
    # work would come out at least 0.3 s below zero
    assert figures["other_cpu_s"] > -0.2


def test_a_watch_without_proc_stat_or_known_cores_measures_nothing(monkeypatch, tmp_path):
    assert cores.cpu_seconds(STAT, set()) == (0.0, 0.0)
    unknown = cores.Watch()
    unknown.cores = set()
    assert unknown.stop() is None
    monkeypatch.setattr(cores, "STAT", tmp_path / "missing")
    assert cores.Watch().stop() is None
