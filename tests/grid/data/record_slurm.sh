#!/usr/bin/env bash
# Records real SLURM outputs into tests/grid/data/slurm/ (run as root after `tools/slurm.sh start`).
#
# Each case CASE gives CASE.stdout, CASE.stderr and CASE.rc (exit status), and a line in
# slurm/CASES.md with the exact command line. Job scripts run in a scratch folder. Takes about
# 7 minutes: the last cases wait until slurmctld has purged a finished job (MinJobAge=300).
set -uo pipefail

SCHEDULER=slurm
# shellcheck source=record_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/record_common.sh"
state_of() { scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -n1; }
wait_state() { # wait_state ID STATE...: until the job's state is one of the given
    local id="$1" i s
    shift
    for i in $(seq 1 1000); do
        s="$(state_of "$id")"
        for want in "$@"; do [ "$s" = "$want" ] && return 0; done
        sleep 0.3
    done
    echo "timed out waiting for job $id to reach $* (is $s)" >&2
    return 1
}
submit() { sbatch --parsable "$@" | cut -d';' -f1; }

printf '#!/bin/bash\necho "hello from $SLURM_JOB_ID"\nexit 0\n' >exit0.sh
printf '#!/bin/bash\necho "about to exit 3"\nexit 3\n' >exit3.sh
printf '#!/bin/bash\nsleep "${1:-60}"\n' >sleep.sh
printf '#!/bin/bash\necho "killing myself"\nkill -KILL $$\n' >sigkill.sh
chmod +x ./*.sh

rec sbatch_version sbatch --version

# The time-limit case takes a minute or two: start it first.
timeout_id="$(submit -J timelimit -t 0:01 -o timelimit.out sleep.sh 120)"

rec sbatch_plain sbatch -J exit0 -o exit0.out exit0.sh
id0="$(sed -n 's/^Submitted batch job \([0-9]*\).*/\1/p' "$DATA/sbatch_plain.stdout")"
rec sbatch_parsable sbatch --parsable -J exit3 -o exit3.out exit3.sh
id3="$(cut -d';' -f1 "$DATA/sbatch_parsable.stdout")"
rec sbatch_array_plain sbatch -J arrplain -o /dev/null --array=1-5 sleep.sh 1
rec sbatch_array_parsable sbatch --parsable -J arrpars -o /dev/null --array=1-5 sleep.sh 1
rec sbatch_bad_option sbatch --no-such-option exit0.sh
rec sbatch_missing_script sbatch does-not-exist.sh
sigid="$(submit -J sigkill -o sigkill.out sigkill.sh)"
wait_state "$id0" COMPLETED
wait_state "$id3" FAILED
wait_state "$sigid" FAILED COMPLETED CANCELLED
rec scontrol_show_job_exit0 scontrol show job "$id0"
rec scontrol_show_job_exit3 scontrol show job "$id3"
rec scontrol_show_job_sigkill scontrol show job "$sigid"
rec squeue_pinned_finished_in_minjobage squeue --noheader --format='%i %t' --jobs="$id0"
rec squeue_pinned_finished_states_all squeue --noheader --format='%i %t' --states=all --jobs="$id0,$id3"

# A queue with running, pending (resources, held, dependency) and array jobs.
big="$(submit -J big -c 32 -o /dev/null sleep.sh 30)"
wait_state "$big" RUNNING
pend="$(submit -J pending -o /dev/null sleep.sh 5)"
arr="$(submit -J array -o /dev/null --array=1-5 sleep.sh 15)"
thr="$(submit -J throttled -o /dev/null --array=1-5%2 sleep.sh 15)"
held="$(submit -J held --hold -o /dev/null sleep.sh 5)"
dep="$(submit -J dependent --dependency=afterok:"$big" -o /dev/null sleep.sh 1)"
space="$(submit -J 'my job' -o /dev/null sleep.sh 5)"
sleep 3
ours="$big,$pend,$arr,$thr,$held,$dep,$space"
rec squeue_pinned_pending squeue --noheader --format='%i %t' --jobs="$ours"
rec squeue_pinned_long_state_pending squeue --noheader --format='%i %T' --jobs="$ours"
rec squeue_default_pending squeue
rec squeue_default_jobs_pending squeue --jobs="$ours"
rec scontrol_show_job_pending scontrol show job "$pend"
rec scontrol_show_job_held scontrol show job "$held"
rec scontrol_show_job_array_pending scontrol show job "$arr"
# SQUEUE_FORMAT in the environment must not change a pinned --format.
rec squeue_pinned_with_env_SQUEUE_FORMAT env SQUEUE_FORMAT='%j %u' squeue --noheader --format='%i %t' --jobs="$ours"
rec squeue_default_with_env_SQUEUE_FORMAT env SQUEUE_FORMAT='%j %u' squeue --jobs="$ours"

scancel "$big"
rec scancel_running_rc scontrol show job "$big"
wait_state "${arr}_1" RUNNING
sleep 2
rec squeue_pinned_running squeue --noheader --format='%i %t' --jobs="$ours"
rec squeue_default_running squeue
rec squeue_array_tasks_pinned squeue --noheader --format='%i %t' --jobs="$arr,$thr"
rec squeue_array_tasks_pinned_array_flag squeue --noheader --array --format='%i %t' --jobs="$arr,$thr"
rec scontrol_show_job_running scontrol show job "$space"
rec scontrol_show_job_array_running scontrol show job "$arr"
rec scontrol_show_job_cancelled_big scontrol show job "$big"

# Cancel a running job and a pending (held) one.
can="$(submit -J tocancel -o /dev/null sleep.sh 60)"
wait_state "$can" RUNNING
rec scancel_running scancel "$can"
rec scancel_pending scancel "$held"
wait_state "$can" CANCELLED
rec scontrol_show_job_cancelled_running scontrol show job "$can"
rec scontrol_show_job_cancelled_pending scontrol show job "$held"
rec scancel_unknown_id scancel 999999
rec squeue_never_existed squeue --noheader --format='%i %t' --jobs=999999
rec squeue_default_never_existed squeue --jobs=999999
rec squeue_never_existed_and_live squeue --noheader --format='%i %t' --jobs="999999,$thr"
rec scontrol_show_job_never_existed scontrol show job 999999

wait_state "$timeout_id" TIMEOUT
rec scontrol_show_job_timelimit scontrol show job "$timeout_id"
cp timelimit.out "$DATA/timelimit_job_output.txt" 2>/dev/null

# After MinJobAge (300 s) slurmctld forgets finished jobs: squeue then says "Invalid job id".
echo "waiting for slurmctld to purge job $id0 (MinJobAge=300)..." >&2
for i in $(seq 1 1200); do
    scontrol show job "$id0" >/dev/null 2>&1 || break
    sleep 1
done
live="$(submit -J live -o /dev/null sleep.sh 30)"
wait_state "$live" RUNNING
rec squeue_pinned_purged squeue --noheader --format='%i %t' --jobs="$id0"
rec squeue_default_purged squeue --jobs="$id0"
rec squeue_pinned_purged_and_live squeue --noheader --format='%i %t' --jobs="$id0,$live"
rec squeue_pinned_live_and_purged squeue --noheader --format='%i %t' --jobs="$live,$id0"
rec scontrol_show_job_purged scontrol show job "$id0"
rec scontrol_show_partition scontrol --oneliner show partition
scancel "$live"
rm -rf "$WORK"
echo "recorded into $DATA" >&2
