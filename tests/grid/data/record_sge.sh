#!/usr/bin/env bash
# Records real Grid Engine outputs into tests/grid/data/sge/ (run as root after `tools/sge.sh start`).
#
# Each case CASE gives CASE.stdout, CASE.stderr and CASE.rc (exit status), and a line in
# sge/CASES.md with the exact command line. Job scripts run in a scratch folder. Takes about
# 2 minutes. Pending jobs are made by disabling the queue (`qmod -d all.q`) for a moment.
set -uo pipefail

SCHEDULER=sge
# shellcheck source=record_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/record_common.sh"
HOST="$(hostname)"
in_qstat() { qstat -u '*' 2>/dev/null | awk 'NR>2 {print $1}' | grep -qx "$1"; }
state_of() { qstat -u '*' 2>/dev/null | awk -v id="$1" 'NR>2 && $1==id {print $5; exit}'; }
wait_running() {
    local i
    for i in $(seq 1 300); do
        case "$(state_of "$1")" in *r*) return 0 ;; esac
        sleep 0.3
    done
    echo "job $1 never ran" >&2
}
wait_gone() { # until qstat has forgotten the job and qacct knows it
    local i
    for i in $(seq 1 600); do
        if ! in_qstat "$1" && qacct -j "$1" >/dev/null 2>&1; then return 0; fi
        sleep 0.3
    done
    echo "job $1 never reached accounting" >&2
}
submit() { qsub -terse "$@" | cut -d. -f1; }

printf '#!/bin/bash\necho "hello from $JOB_ID"\nexit 0\n' >exit0.sh
printf '#!/bin/bash\necho "about to exit 3"\nexit 3\n' >exit3.sh
printf '#!/bin/bash\nsleep "${1:-60}"\n' >sleep.sh
printf '#!/bin/bash\necho "killing myself"\nkill -KILL $$\n' >sigkill.sh
printf '#!/bin/bash\necho "MYVAR=[$MYVAR]"\n' >env_echo.sh
chmod +x ./*.sh

rec qsub_version qsub --version
rec qsub_help qsub -help
rec qstat_help qstat -help

rt="$(submit -N timelimit -cwd -o timelimit.out -j y -l h_rt=0:0:5 sleep.sh 60)"
rec qsub_plain qsub -N exit0 -cwd -o exit0.out -e exit0.err exit0.sh
id0="$(sed -n 's/^Your job \([0-9]*\) .*/\1/p' "$DATA/qsub_plain.stdout")"
rec qsub_terse qsub -terse -N exit3 -cwd -o exit3.out -e exit3.err exit3.sh
id3="$(cut -d. -f1 "$DATA/qsub_terse.stdout")"
rec qsub_array_plain qsub -N arrplain -cwd -o /dev/null -e /dev/null -t 1-5 sleep.sh 1
rec qsub_array_terse qsub -terse -N arrterse -cwd -o /dev/null -e /dev/null -t 1-5 sleep.sh 1
rec qsub_bad_option qsub -no-such-option exit0.sh
rec qsub_missing_script qsub does-not-exist.sh
# Grid Engine refuses a job name (and an account string) with a space; a -v value may hold one.
rec qsub_name_with_space qsub -N 'my job' -cwd -o /dev/null -e /dev/null exit0.sh
rec qsub_v_value_with_space qsub -terse -N envspace -cwd -o envspace.out -j y -v 'MYVAR=hello world' env_echo.sh
envid="$(cut -d. -f1 "$DATA/qsub_v_value_with_space.stdout")"
sigid="$(submit -N sigkill -cwd -o sigkill.out -j y sigkill.sh)"
wait_gone "$id0"
wait_gone "$id3"
wait_gone "$sigid"
wait_gone "$envid"
cp envspace.out "$DATA/qsub_v_value_with_space_job_output.txt"
rec qacct_exit0 qacct -j "$id0"
rec qacct_exit3 qacct -j "$id3"
rec qacct_sigkill qacct -j "$sigid"
rec qstat_j_finished qstat -j "$id0"
rec qstat_j_finished_two qstat -j "$id0,$id3"
rec qstat_j_never_existed qstat -j 999999
rec qacct_never_existed qacct -j 999999

# A queue with running, pending, held and array jobs.
run1="$(submit -N running -cwd -o /dev/null -e /dev/null sleep.sh 40)"
arr_r="$(submit -N arrayrun -cwd -o /dev/null -e /dev/null -t 1-5 sleep.sh 40)"
wait_running "$run1"
wait_running "$arr_r"
qmod -d "all.q@$HOST" >/dev/null
pend="$(submit -N pending -cwd -o /dev/null -e /dev/null sleep.sh 5)"
arr_p="$(submit -N arraypend -cwd -o /dev/null -e /dev/null -t 1-5 sleep.sh 5)"
held="$(submit -N held -h -cwd -o /dev/null -e /dev/null sleep.sh 5)"
sleep 2
rec qstat_default qstat
rec qstat_u_all qstat -u '*'
rec qstat_u_root qstat -u root
rec qstat_xml qstat -xml
rec qstat_u_all_xml qstat -u '*' -xml
rec qstat_g_d qstat -g d -u '*'
rec qstat_f qstat -f
rec qstat_s_r qstat -s r -u '*'
rec qstat_s_p qstat -s p -u '*'
rec qstat_j_pending qstat -j "$pend"
rec qstat_j_running qstat -j "$run1"
rec qstat_j_two_live qstat -j "$run1,$pend"
rec qstat_j_live_and_finished qstat -j "$run1,$id0"
qmod -e "all.q@$HOST" >/dev/null
wait_running "$pend"
wait_running "$arr_p"
rec qstat_default_all_running qstat -u '*'

# Delete a running and a pending (held) job.
rec qdel_running qdel "$run1"
rec qdel_pending qdel "$held"
rec qstat_after_qdel qstat -u '*'
rec qdel_unknown qdel 999999
wait_gone "$run1"
while in_qstat "$held"; do sleep 0.3; done
sleep 2
rec qacct_qdel_running qacct -j "$run1"
rec qacct_qdel_pending qacct -j "$held"

wait_gone "$rt"
rec qacct_timelimit qacct -j "$rt"
cp timelimit.out "$DATA/timelimit_job_output.txt" 2>/dev/null

wait_gone "$arr_r"
rec qacct_array qacct -j "$arr_r"
rec qstat_after_all qstat -u '*'
rec qconf_sq_all qconf -sq '*'
rec qconf_sconf qconf -sconf
for j in $pend $arr_p; do qdel "$j" >/dev/null 2>&1; done
rm -rf "$WORK"
echo "recorded into $DATA" >&2
