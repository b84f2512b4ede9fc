#!/usr/bin/env bash
# Records real Grid Engine accounting of how jobs end into tests/grid/data/sge-reasons/ (run as
# root after `tools/sge.sh start`): jobs run through a wrapper like runner_grid's (the wrapper
# survives its runscript), killed by qdel, by h_rt, s_rt and h_vmem, and a job rescheduled with
# `qmod -rj` (states Rq/Rr, two accounting records).
#
# Each case CASE gives CASE.stdout, CASE.stderr and CASE.rc, and a line in sge-reasons/CASES.md.
# Takes about 2 minutes. Only the jobs this script submits are touched.
set -uo pipefail

SCHEDULER=sge-reasons
# shellcheck source=record_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/record_common.sh"
in_qstat() { qstat -u '*' 2>/dev/null | awk 'NR>2 {print $1}' | grep -qx "$1"; }
state_of() { qstat -u '*' 2>/dev/null | awk -v id="$1" 'NR>2 && $1==id {print $5; exit}'; }
wait_state() { # wait_state ID STATE: until qstat shows exactly that state
    local i
    for i in $(seq 1 600); do
        [ "$(state_of "$1")" = "$2" ] && return 0
        sleep 0.3
    done
    echo "job $1 never reached state $2 (last: $(state_of "$1"))" >&2
}
wait_gone() { # until qstat has forgotten the job and qacct knows it
    local i
    for i in $(seq 1 600); do
        if ! in_qstat "$1" && qacct -j "$1" >/dev/null 2>&1; then return 0; fi
        sleep 0.3
    done
    echo "job $1 never reached accounting" >&2
}
submit() { qsub -terse -cwd -o /dev/null -e /dev/null "$@" | cut -d. -f1; }

printf '#!/bin/sh\nsleep "${1:-60}"\n' >sleep.sh
printf '#!/bin/sh\nkill -KILL $$\n' >selfkill.sh
# Three processes of 60 MiB each: every one is below h_vmem=150M, together they are above it.
printf '#!/bin/sh\nfor i in 1 2 3; do python3 -c "import time; b = bytearray(60 << 20); time.sleep(30)" & done\nwait\n' >memory.sh
# The shape of runner_grid's job wrapper: run the runscript, record its status, exit with it.
printf '#!/bin/sh\n"$PWD/$1" "$2"\ns=$?\necho "$s" >"$1.exitcode"\nexit "$s"\n' >wrapper.sh
chmod +x ./*.sh

wk="$(submit -N wrapselfkill wrapper.sh selfkill.sh)"
wq="$(submit -N wrapqdel wrapper.sh sleep.sh 60)"
hrt="$(submit -N wraphrt -l h_rt=3 wrapper.sh sleep.sh 60)"
srt="$(submit -N wrapsrt -l s_rt=3 wrapper.sh sleep.sh 60)"
mem="$(submit -N memory -l h_vmem=150M memory.sh)"
rs="$(submit -N resched -r y sleep.sh 20)"

wait_state "$wq" r
sleep 2
rec qdel_wrapper_running qdel "$wq"
wait_state "$rs" r
rec qmod_reschedule qmod -rj "$rs"
wait_state "$rs" Rq
rec qstat_rescheduled_pending qstat -u '*'
sleep 2
rec qacct_rescheduled_pending qacct -j "$rs"
wait_state "$rs" Rr
rec qstat_rescheduled_running qstat -u '*'

for j in $wk $wq $hrt $srt $mem $rs; do wait_gone "$j"; done
sleep 2
rec qacct_wrapper_selfkill qacct -j "$wk"
cp selfkill.sh.exitcode "$DATA/wrapper_selfkill_exitcode.txt" 2>/dev/null
rec qacct_wrapper_qdel_running qacct -j "$wq"
rec qacct_wrapper_h_rt qacct -j "$hrt"
rec qacct_wrapper_s_rt qacct -j "$srt"
rec qacct_h_vmem qacct -j "$mem"
rec qacct_rescheduled_finished qacct -j "$rs"
rm -rf "$WORK"
echo "recorded into $DATA" >&2
