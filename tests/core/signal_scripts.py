"""Texts for tests/core/test_signals.py: the user's driver script and the runscripts of its jobs."""

from __future__ import annotations

# A user's script with runners and their jobs, set up from the JSON file in argv[1]:
#   dir       folder for the files the script writes (state, handled, handler_kept, calls)
#   work      the JobManager's folder
#   runners   [{"parallel": bool, "bodies": [runscript body, ...]}, ...], started in order
#   where     where the main thread is when the signal comes: "job.run" (a serial job
#             runs), "runner.wait", "results.wait", "exit" (the last line starts the last
#             job of a parallel runner; the exit hook waits), "wait loop" (waits until the
#             user's own SIGTERM handler set a flag, then shuts the runners down)
#   handler   None, "exit" (SIGTERM: write `handled`, os._exit(7)), "flag" (SIGTERM: set a
#             flag) or "ignore-hup" (SIGHUP ignored, as under nohup); set before any runner
#   subclass  use a JobRunner subclass whose `call` records the call and calls super()
# When the jobs end without a signal it prints their names, statuses and exit codes as JSON.
DRIVER = '''\
"""A user's script: runners with jobs, then a wait; the test sends it a signal."""

import json
import os
import signal
import sys
from pathlib import Path

from runner_core import JobManager, JobRunner, SingleJob, config

cfg = json.loads(Path(sys.argv[1]).read_text())
here = Path(cfg["dir"])
config.kill_grace = 0.5
stop = []


def note(text):
    """Tell the test where the main thread is (written whole, so it is never read half)."""
    part = here / "state.part"
    part.write_text(text)
    os.replace(part, here / "state")


def on_sigterm_exit(signum, frame):
    (here / "handled").write_text(str(signum))
    os._exit(7)


def on_sigterm_flag(signum, frame):
    stop.append(signum)


users = {
    "exit": (signal.SIGTERM, on_sigterm_exit),
    "flag": (signal.SIGTERM, on_sigterm_flag),
    "ignore-hup": (signal.SIGHUP, signal.SIG_IGN),
}
if cfg["handler"]:
    users_signal, users_handler = users[cfg["handler"]]
    signal.signal(users_signal, users_handler)


class LoggingRunner(JobRunner):
    """A user's own runner: records each call, then hands it on to JobRunner's."""

    def call(self, runscript, workdir, out, err, runflags):
        with open(here / "calls", "a") as f:
            f.write(workdir + "\\n")
        return super().call(runscript, workdir, out, err, runflags)


def finish():
    """The jobs ended: report them."""
    jobs = [[job.name, job.results.status.name, job.results.exit_code] for _, job in planned]
    print(json.dumps({"stop": stop, "jobs": jobs}), flush=True)


kind = LoggingRunner if cfg["subclass"] else JobRunner
manager = JobManager(cfg["work"])
runners = []
planned = []
for r, spec in enumerate(cfg["runners"]):
    runner = kind(parallel=spec["parallel"])
    runners.append(runner)
    for j, body in enumerate(spec["bodies"]):
        planned.append((runner, SingleJob(name=f"r{r}j{j}", runscript=body)))
where = cfg["where"]
first = planned[:-1] if where == "exit" else planned
# a serial runner's job runs right here, the main thread waiting for its process
results = [job.run(jobrunner=runner, jobmanager=manager) for runner, job in first]
if cfg["handler"]:
    kept = signal.getsignal(users_signal) is users_handler
    (here / "handler_kept").write_text(json.dumps(kept))
if where == "exit":
    note(where)
    last_runner, last_job = planned[-1]
    last_job.run(jobrunner=last_runner, jobmanager=manager)  # the end: the exit hook waits
elif where == "job.run":
    finish()
else:
    note(where)
    if where == "runner.wait":
        for runner in runners:
            runner.wait()
    elif where == "results.wait":
        results[0].wait()
    elif where == "wait loop":
        while not stop:
            try:
                runners[0].wait(timeout=0.05)
            except TimeoutError:
                continue
            break
        for runner in runners:
            runner.shutdown(cancel=True)
    finish()
'''

# Every runscript starts like this: where to record pids, and the file that lets UNTIL_GO end.
PREAMBLE = "PIDS={pids}; GO={go}; export PIDS GO\n"

# The runscript, a child shell, and the child's two background grandchildren: 4 pids. The
# runscript's own `sleep 300` would only come after them.
NESTED = r"""echo $$ >> "$PIDS"
sh -c 'echo $$ >> "$PIDS"
  sh -c "echo \$\$ >> \"\$PIDS\"; exec sleep 300" &
  sh -c "echo \$\$ >> \"\$PIDS\"; exec sleep 300" &
  wait'
sleep 300
"""

# The runscript and a background `sleep 300` it waits for: 2 pids.
BACKGROUND = """echo $$ >> "$PIDS"
sleep 300 &
echo $! >> "$PIDS"
wait
"""

# The runscript, which ends by itself (exit code 0) once the test creates $GO: 1 pid.
UNTIL_GO = """echo $$ >> "$PIDS"
while [ ! -e "$GO" ]; do sleep 0.01; done
"""

PIDS_OF = {NESTED: 4, BACKGROUND: 2, UNTIL_GO: 1}
