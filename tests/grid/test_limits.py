"""Tests for runner_grid._limits: the refusal of a request above a queue's limits, the cache,
and the room the submit limits leave."""

from __future__ import annotations

import logging
import subprocess
import threading
from typing import TYPE_CHECKING, Optional

import pytest

from runner_core import Resources
from runner_grid import Limits, QueueLimits, Scheduler
from runner_grid._limits import LimitsCache, SubmitRoom, clamp, refusal, submit_pools

if TYPE_CHECKING:
    from collections.abc import Sequence

GB = 1024**3
SLURM = Limits(
    {
        "debug": QueueLimits(),
        "short": QueueLimits(walltime=300, memory=2000 * 1024**2),
        "long": QueueLimits(walltime=7 * 86400),
    },
    "debug",
    "partition",
    "MaxTime",
    "MaxMemPerNode",
    "node",
)
ONLY_SHORT = SLURM._replace(queues={"short": SLURM.queues["short"]}, default="short")
SGE = Limits({"all.q": QueueLimits(memory=GB)}, "all.q", "queue", "h_rt", "h_vmem", "slot")


def test_a_walltime_above_the_partition_s_maxtime_names_the_limit_and_a_partition_that_fits() -> (
    None
):
    assert refusal(Resources(walltime=48 * 3600, queue="short"), SLURM) == (
        "walltime 48:00:00 exceeds partition 'short' MaxTime 0:05:00 (use partition 'debug', "
        "or less walltime)"
    )
    assert refusal(Resources(walltime=30 * 86400, queue="long"), SLURM) == (
        "walltime 720:00:00 exceeds partition 'long' MaxTime 168:00:00 (use partition 'debug', "
        "or less walltime)"
    )


def test_memory_is_compared_per_node_and_per_slot() -> None:
    assert refusal(Resources(memory=4 * GB, queue="short"), SLURM) == (
        "memory 4G per node exceeds partition 'short' MaxMemPerNode 2000M (use partition "
        "'debug', or less memory)"
    )
    assert refusal(Resources(memory=4 * GB, nodes=2, queue="short"), SLURM) is not None
    assert refusal(Resources(memory=2 * 1000 * 1024**2, nodes=2, queue="short"), SLURM) is None
    # Grid Engine's h_vmem counts per slot: 4G over 4 cores is 1G a slot
    assert refusal(Resources(memory=4 * GB, cores=4), SGE) is None
    assert refusal(Resources(memory=4 * GB, cores=2), SGE) == (
        "memory 2G per slot exceeds queue 'all.q' h_vmem 1G (no queue allows it: ask for less "
        "memory)"
    )


def test_a_job_naming_no_queue_is_compared_with_the_default_one() -> None:
    assert refusal(Resources(walltime=48 * 3600), SLURM) is None
    assert refusal(Resources(walltime=48 * 3600), ONLY_SHORT) == (
        "walltime 48:00:00 exceeds partition 'short' MaxTime 0:05:00 (no partition allows it: "
        "ask for less walltime)"
    )


def test_what_the_limits_do_not_tell_is_not_refused() -> None:
    assert refusal(Resources(walltime=48 * 3600, queue="elsewhere"), SLURM) is None
    assert refusal(Resources(walltime=48 * 3600), SLURM._replace(default=None)) is None
    assert refusal(Resources(walltime=60, memory=GB, queue="short"), SLURM) is None


class Counted(Scheduler):
    """A scheduler whose limit query answers `answer` and counts how often it was asked."""

    name = "counted"

    def __init__(self, answer: str = "short 300\n", returncode: int = 0) -> None:
        self.answer, self.returncode, self.asked = answer, returncode, 0

    def run(
        self, argv: Sequence[str], *, timeout: Optional[float] = None
    ) -> subprocess.CompletedProcess[str]:
        self.asked += 1
        return subprocess.CompletedProcess(list(argv), self.returncode, self.answer, "down\n")

    def limit_argvs(self) -> list[list[str]]:
        return [["limits"]]

    def parse_limits(self, output: str) -> Limits:
        name, _, seconds = output.strip().partition(" ")
        if not seconds.isdigit():
            raise ValueError(f"not understood: {output!r}")
        return Limits({name: QueueLimits(walltime=int(seconds))}, name)


def test_the_limits_are_asked_once_for_many_jobs_and_threads() -> None:
    scheduler, cache = Counted(), LimitsCache()
    fits, too_long = Resources(walltime=60), Resources(walltime=600)
    threads = [threading.Thread(target=cache.check, args=(scheduler, fits)) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for _ in range(5):
        with pytest.raises(ValueError, match=r"^walltime 0:10:00 exceeds queue 'short' walltime"):
            cache.check(scheduler, too_long)
    assert scheduler.asked == 1


def test_only_walltime_and_memory_make_the_limits_read() -> None:
    scheduler, cache = Counted(), LimitsCache()
    cache.check(scheduler, Resources(cores=4, queue="short"))
    cache.check(scheduler, Resources())
    assert scheduler.asked == 0
    cache.check(Scheduler(), Resources(walltime=10**6))  # a scheduler that reads no limits


@pytest.mark.parametrize(("answer", "returncode"), [("short 300\n", 1), ("garbled\n", 0)])
def test_limits_that_cannot_be_read_are_logged_once_and_nothing_is_refused(
    answer: str, returncode: int, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler, cache = Counted(answer, returncode), LimitsCache()
    with caplog.at_level(logging.WARNING, logger="runner_grid"):
        for _ in range(3):
            cache.check(scheduler, Resources(walltime=10**6))
    assert scheduler.asked == 1
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "could not read the queues' limits, jobs are submitted unchecked" in record.message


QOS = SLURM._replace(
    qos={"normal": QueueLimits(walltime=2 * 86400), "small": QueueLimits(600, 500 * 1024**2)},
    default_qos="normal",
)


def test_a_request_over_its_qos_is_refused_after_the_partition_fits() -> None:
    assert refusal(Resources(walltime=3 * 86400, queue="long"), QOS) == (
        "walltime 72:00:00 exceeds QOS 'normal' MaxWall 48:00:00 (less walltime)"
    )
    assert refusal(Resources(walltime=3600), QOS, "small") == (
        "walltime 1:00:00 exceeds QOS 'small' MaxWall 0:10:00 (use QOS 'normal' if your "
        "account may, or less walltime)"
    )
    assert refusal(Resources(walltime=3600), QOS, "unknown") is None  # not listed: not known
    assert refusal(Resources(walltime=3 * 86400, queue="long"), SLURM) is None  # no QOS read


def test_a_grown_request_is_clamped_to_its_qos_too() -> None:
    grown, notes = clamp(Resources(walltime=1200, memory=GB), QOS, "small")
    assert grown == Resources(walltime=600, memory=500 * 1024**2)
    assert notes == [
        "walltime 0:20:00 is more than QOS 'small' MaxWall 0:10:00",
        "memory 1G is more than QOS 'small' MaxTRES mem 500M",
    ]
    grown, notes = clamp(Resources(walltime=600, queue="short"), QOS)
    assert grown == Resources(walltime=300, queue="short")
    assert notes == ["walltime 0:10:00 is more than partition 'short' MaxTime 0:05:00"]


def test_a_limit_query_after_the_first_may_fail_and_is_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Accounting(Counted):
        """Partitions answer; the accounting query fails (a cluster without slurmdbd)."""

        def limit_argvs(self) -> list[list[str]]:
            return [["printf", "short 300\n"], ["sh", "-c", "echo no slurmdbd >&2; exit 1"]]

        def run(
            self, argv: Sequence[str], *, timeout: Optional[float] = None
        ) -> subprocess.CompletedProcess[str]:
            return subprocess.run(list(argv), capture_output=True, text=True, check=False)

    with caplog.at_level(logging.INFO, logger="runner_grid"):
        limits = Accounting().limits()
    assert limits is not None
    assert dict(limits.queues) == {"short": QueueLimits(walltime=300)}
    assert any(
        "a limit query is left out" in r.message and "no slurmdbd" in r.message
        for r in caplog.records
    )


# --- submit limits: the pools a job counts in, and the room they leave ----------------------

SUBMIT = QOS._replace(
    submit={"qos:normal": 20, "qos:small": 5, "account:chem": 50, "account:": 50, "user": 100}
)


def test_a_job_counts_in_its_qos_its_account_and_the_user_s_limit() -> None:
    assert submit_pools(SUBMIT, Resources()) == {"user": 100, "account:": 50, "qos:normal": 20}
    assert submit_pools(SUBMIT, Resources(account="chem"), "small") == {
        "user": 100,
        "account:chem": 50,
        "qos:small": 5,
    }
    assert submit_pools(SUBMIT, Resources(account="phys"), "fast") == {"user": 100}  # not known
    assert submit_pools(SUBMIT._replace(default_qos=None), Resources()) == {
        "user": 100,
        "account:": 50,
    }
    assert submit_pools(QOS, Resources()) == {}  # no submit limit read: none kept to
    assert submit_pools(None, Resources()) == {}
    queues = SGE._replace(submit={"queue:all.q": 3})
    assert submit_pools(queues, Resources()) == {"queue:all.q": 3}  # the default queue's


def test_the_room_takes_what_fits_and_frees_a_place_per_job_that_leaves() -> None:
    room = SubmitRoom(LimitsCache())
    pools = {"qos:normal": 5, "user": 8}
    assert room.take(pools, 3) == 3
    room.keep(["1", "2", "3"], pools)
    assert room.take(pools, 4) == 2  # an array of 4 is cut to the 2 places left
    assert room.take({"user": 8}, 10) == 3  # the user's limit alone: 8 - 5
    assert room.take(pools, 1) == 0
    room.give_back(pools, 2)  # the array's submission queued nothing: normal 3, user 6
    assert room.take({}, 7) == 7  # no limit known: everything fits
    assert room.free("2")  # normal 2, user 5
    assert not room.free("2")  # freed once only
    assert not room.free("unknown")  # a job the room never kept
    assert room.take(pools, 5) == 3  # "user" has 3 places left, "qos:normal" 3
    assert room.take(pools, 1) == 0


def test_submit_workers_taking_at_once_never_go_over_a_limit() -> None:
    room = SubmitRoom(LimitsCache())
    pools = {"qos:normal": 20}
    taken: list[int] = []
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(50):
            taken.append(room.take(pools, 1))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(taken) == 20


def test_the_log_names_a_full_limit_once() -> None:
    room = SubmitRoom(LimitsCache())
    pools = {"qos:normal": 1, "account:": 9}
    assert room.take(pools, 1) == 1
    assert room.full(pools) == "QOS 'normal' lets 1 jobs be queued"
    assert room.full(pools) is None
    assert room.full({"account:": 0}) == "the default association lets 0 jobs be queued"
