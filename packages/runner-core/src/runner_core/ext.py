"""The public surface for runner authors: what runner-grid and users' own runners build on.

A runner is a `JobRunner` subclass that overrides `call()` (see the docs page
"Writing a runner subclass"). From inside `call` (it runs in the job's own thread):

- `current_results()`: the Results of the job this `call` runs.
- `report_failure(message, reason=None)`: the job ends FAILED with `message`,
  although `call` returns an exit code.
- `report_reason(reason)`: why the job ended (the scheduler's "timeout",
  "out_of_memory", ...), for `results.reason`.
- `report_jobid(jobid, native_id=None)`: the scheduler's id of the job, for
  `results.jobid` (and the run journal); the job is in the scheduler's queue now
  (SUBMITTED, for a runner whose `scheduler_queue` is true).
- `report_started(results, at=None)`: from any thread, a SUBMITTED job has started
  on a node (RUNNING), at the time the job recorded or now.
- `report_end(own_end=..., started_at=..., finished_at=...)`: what the job itself
  recorded of its end (a blocking `call`): its exit code is its own (a cancel that
  came meanwhile does not make it CANCELLED), and its real start and end times.
- `report_tag(tag)`: the tag a grid runner gives the job in the scheduler's queue,
  on record before the submit, so a resume finds a job whose id never reached the
  journal.
- `journaled(results)`: whether the job is recorded in a run journal.
- `deferred_interrupts()`: a step a Ctrl-C or SIGTERM must not cut in half (start
  a process or a submission and record it); the signal is raised when it ends.
- `wait_event(event, timeout)`: an `Event.wait` the main thread can be interrupted
  in (a serial runner waits in the main thread).
- `can_detach(runner)`: whether this thread runs a job of `runner` that may
  detach (not a call made by user code, nor one from inside another runner's job).
- `detach_job()`: the job leaves its thread. `call` returns at once (its return
  value is ignored), the job keeps its state and its `maxjobs` slot, and the
  returned `Completion` ends it later from any thread: `complete(exit_code,
  reason=None)` or `fail(message)` (and `report_jobid(jobid)` before that, for a job
  submitted after `call` returned, as a task of a job array). One poller thread can
  so complete thousands of jobs that hold no thread.

Hooks a runner overrides (call `super()` first):

- `JobRunner.cancel_job(results)`: called by `job.cancel()`; must return at once,
  handing slow work (a cancel command) to another thread.
- `JobRunner._cancel_jobs()`: called once by `shutdown(cancel=True)`, and so on
  Ctrl-C, SIGTERM and SIGHUP: stop every job inside `call`.
- `JobRunner.runs_in_caller()`: asked by `job.run()` of a parallel runner; True runs
  the job's whole life (prepare, `call`, finalize or `detach_job()`) in the calling
  thread, with no job thread and no `maxjobs` slot (`call` neither waits for one nor
  takes one). For a `call` that only collects the job (GridRunner in `batch()`).
- `JobRunner.check_runflags(runflags)`: refuse run flags the runner cannot use, at
  `job.run()`, before the job is queued (GridRunner parses the resources here).
- `JobRunner.grow_request(runflags, factors)`: the request of a job's next attempt under
  a `runner_core.Retry` (``{"memory": "200M"}``), or why it cannot grow; GridRunner
  clamps it to the cluster's limits. A detached job's attempt that ended with
  `Completion.complete(code, reason)` is run again by the runner from the thread that
  completed it: that call returns at once, the next attempt queued.

How many job threads a runner uses (call it, do not override it):

- `JobRunner.limit_threads(threads, bounded=True)`: at most `threads` job threads;
  `bounded=False` for a runner whose `call` detaches at once, so that `job.run()`
  never blocks and the jobs wait in the runner's queue, not in threads. Job threads
  are reused, and one with no job waits a moment (1 s) for the next before it ends.

Hooks for the run journal and resume (see the docs page "Long runs"):

- `JobRunner.journal_info()`: what the journal records about the runner, e.g.
  `{"kind": "grid", "scheme": "slurm", "maxjobs": 0}`; `kind` "local" is the local
  runner's.
- `JobRunner.from_journal_info(info)` (classmethod): the runner again, for
  `runner resume DIR`.
- `JobRunner.reattach(record)`: a resumed job whose earlier try did not end (a
  `JobRecord` with `jobid`/`tag`) goes here instead of `call`; detach and return
  True to wait for it, False to run it again.
- `JobRunner.observe_recorded(records, ask_scheduler)` (classmethod): where jobs
  of a dead driver are now (a `RecordedState` each: started, or ended by
  themselves with exit code and times), from their folders and the scheduler;
  `runner status` shows it and `runner cancel` keeps the ends it finds.
- `JobRunner.cancel_recorded(records)` (classmethod): cancel jobs from their records
  with no live runner (`runner cancel DIR` with a dead driver); the CLI finds the
  class of "grid" records through the entry point group `runner_core.grid_runners`.
- `JobRunner._leave_jobs_queued()`: with `config.grid_jobs_on_exit = "keep"`, at an
  interrupted exit: `Completion.leave()` each journaled job and return how many.

`tail_of(path)` gives the last lines of a job's stderr, the text `results.error`
holds for a CRASHED job.

`REASONS` lists the words `results.reason` may hold.
"""

from __future__ import annotations

from runner_core._context import (
    can_detach,
    current_results,
    detach_job,
    journaled,
    report_end,
    report_failure,
    report_jobid,
    report_reason,
    report_started,
    report_tag,
)
from runner_core._errors import JobStateError
from runner_core._interrupts import (
    MAIN_WAIT_SLICE,
    Terminated,
    deferred_interrupts,
    in_main_thread,
    wait_event,
    wait_slice,
)
from runner_core._jobs import tail_of
from runner_core._journal import JobRecord, RecordedState
from runner_core._pool import PoolSnapshot
from runner_core._runner import Completion
from runner_core._status import REASONS

__all__ = [
    "MAIN_WAIT_SLICE",
    "REASONS",
    "Completion",
    "JobRecord",
    "JobStateError",
    "PoolSnapshot",
    "RecordedState",
    "Terminated",
    "can_detach",
    "current_results",
    "deferred_interrupts",
    "detach_job",
    "in_main_thread",
    "journaled",
    "report_end",
    "report_failure",
    "report_jobid",
    "report_reason",
    "report_started",
    "report_tag",
    "tail_of",
    "wait_event",
    "wait_slice",
]
