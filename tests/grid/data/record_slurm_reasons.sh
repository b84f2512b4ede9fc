#!/usr/bin/env bash
# Records real SLURM outputs about how jobs end into tests/grid/data/slurm-reasons/ (run as root
# after `tools/slurm.sh start`): the DEADLINE state, requeued jobs (scontrol requeue, requeuehold,
# requeuehold State=SpecialExit), a job cancelled after a requeue, sacct where accounting is off,
# and jobs run through a wrapper like runner_grid's (the wrapper survives its runscript).
#
# Each case CASE gives CASE.stdout, CASE.stderr and CASE.rc, and a line in slurm-reasons/CASES.md.
# Takes about 2 minutes (SLURM removes a job past its deadline within a minute). Only the jobs
# this script submits are touched.
set -uo pipefail

SCHEDULER=slurm-reasons
# shellcheck source=record_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/record_common.sh"
state_of() { squeue --noheader --states=all --format=%T --jobs="$1" 2>/dev/null | head -n1; }
wait_state() { # wait_state ID STATE: until squeue shows that (long) state
    local i
    for i in $(seq 1 400); do
        [ "$(state_of "$1")" = "$2" ] && return 0
        sleep 0.3
    done
    echo "job $1 never reached $2 (last: $(state_of "$1"))" >&2
}
submit() { sbatch --parsable "$@" | cut -d';' -f1; }

printf '#!/bin/sh\nsleep "${1:-60}"\n' >sleep.sh
printf '#!/bin/sh\nkill -KILL $$\n' >selfkill.sh
# The shape of runner_grid's job wrapper: run the runscript, record its status, exit with it.
printf '#!/bin/sh\n"$PWD/$1"\ns=$?\necho "$s" >"$1.exitcode"\nexit "$s"\n' >wrapper.sh
chmod +x ./*.sh

# A job whose deadline passes before it could end: SLURM removes it (state DEADLINE).
dl="$(submit -J deadline -o /dev/null -t 5 --deadline=now+60 sleep.sh 1)"
# A wrapped runscript that kills itself: the wrapper survives and exits 137.
wk="$(submit -J wrapselfkill -o /dev/null wrapper.sh selfkill.sh)"

rq="$(submit -J requeue -o /dev/null sleep.sh 300)"
rh="$(submit -J requeuehold -o /dev/null sleep.sh 300)"
se="$(submit -J specialexit -o /dev/null sleep.sh 300)"
wait_state "$rq" RUNNING
wait_state "$rh" RUNNING
wait_state "$se" RUNNING
rec scontrol_requeue scontrol requeue "$rq"
rec squeue_pinned_requeue_transition squeue --noheader --format='%i %t' --states=all --jobs="$rq"
wait_state "$rq" PENDING
rec squeue_pinned_requeued squeue --noheader --format='%i %t' --states=all --jobs="$rq"
rec scontrol_show_job_requeued scontrol show job "$rq"
rec scontrol_requeuehold scontrol requeuehold "$rh"
wait_state "$rh" PENDING
rec squeue_pinned_requeue_held squeue --noheader --format='%i %t' --states=all --jobs="$rh"
rec scontrol_show_job_requeue_held scontrol show job "$rh"
rec scontrol_requeuehold_special_exit scontrol requeuehold State=SpecialExit "$se"
wait_state "$se" SPECIAL_EXIT
rec squeue_pinned_special_exit squeue --noheader --format='%i %t' --states=all --jobs="$se"
rec scontrol_show_job_special_exit scontrol show job "$se"

# Cancelled after a requeue: final, with Restarts=1.
scancel "$rq"
wait_state "$rq" CANCELLED
rec scontrol_show_job_cancelled_after_requeue scontrol show job "$rq"

wait_state "$wk" FAILED
rec scontrol_show_job_wrapper_selfkill scontrol show job "$wk"
cp selfkill.sh.exitcode "$DATA/wrapper_selfkill_exitcode.txt" 2>/dev/null

wait_state "$dl" DEADLINE
rec squeue_pinned_deadline squeue --noheader --format='%i %t' --states=all --jobs="$dl"
rec scontrol_show_job_deadline scontrol show job "$dl"

# The exit-code query runner_grid's scheme runs second, on a SLURM without accounting.
rec sacct_no_accounting sacct --noheader --parsable2 --allocations --format=JobID,State,ExitCode --jobs="$dl"

scancel "$rh" "$se" >/dev/null 2>&1
rm -rf "$WORK"
echo "recorded into $DATA" >&2
