"""The public surface for runner authors: what runner-grid and users' own runners build on.

A runner is a `JobRunner` subclass that overrides `call()` (see the docs page
"Writing a runner subclass"). From inside `call` (it runs in the job's own thread):

- `current_results()`: the Results of the job this `call` runs.
- `report_failure(message, reason=None)`: the job ends FAILED with `message`,
  although `call` returns an exit code.
- `report_reason(reason)`: why the job ended (the scheduler's "timeout",
  "out_of_memory", ...), for `results.reason`.
- `report_jobid(jobid)`: the scheduler's id of the job, for `results.jobid`.
- `deferred_interrupts()`: a step a Ctrl-C or SIGTERM must not cut in half (start
  a process or a submission and record it); the signal is raised when it ends.
- `wait_event(event, timeout)`: an `Event.wait` the main thread can be interrupted
  in (a serial runner waits in the main thread).
- `can_detach(runner)`: whether this thread runs a job of `runner` that may
  detach (not a call made by user code, nor one from inside another runner's job).
- `detach_job()`: the job leaves its thread. `call` returns at once (its return
  value is ignored), the job stays RUNNING and keeps its `maxjobs` slot, and the
  returned `Completion` ends it later from any thread: `complete(exit_code,
  reason=None)` or `fail(message)` (and `report_jobid(jobid)` before that, for a job
  submitted after `call` returned, as a task of a job array). One poller thread can
  so complete thousands of jobs that hold no thread.

Hooks a runner overrides (call `super()` first):

- `JobRunner.cancel_job(results)`: called by `job.cancel()`; must return at once,
  handing slow work (a cancel command) to another thread.
- `JobRunner._cancel_jobs()`: called once by `shutdown(cancel=True)`, and so on
  Ctrl-C, SIGTERM and SIGHUP: stop every job inside `call`.

`REASONS` lists the words `results.reason` may hold.
"""

from __future__ import annotations

from runner_core._context import (
    can_detach,
    current_results,
    detach_job,
    report_failure,
    report_jobid,
    report_reason,
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
from runner_core._pool import PoolSnapshot
from runner_core._runner import Completion
from runner_core._status import REASONS

__all__ = [
    "MAIN_WAIT_SLICE",
    "REASONS",
    "Completion",
    "JobStateError",
    "PoolSnapshot",
    "Terminated",
    "can_detach",
    "current_results",
    "deferred_interrupts",
    "detach_job",
    "in_main_thread",
    "report_failure",
    "report_jobid",
    "report_reason",
    "wait_event",
    "wait_slice",
]
