#!/usr/bin/env bash
# tools/sge.sh: a single-node Grid Engine (Debian's gridengine 8.1.9) on this machine, for
# integration tests and benchmarks.
#
# Usage: tools/sge.sh install|start|stop|status
#   install  preseed debconf (cell "default", master = this host) and apt-get install
#            gridengine-master gridengine-exec gridengine-client (non-interactive; no-op if present).
#   start    install if needed, start sge_qmaster (through its init script, no systemd needed), load
#            the configuration from tools/schedulers/sge-*.conf, register this host as exec,
#            submit and admin host in host group @allhosts with queue all.q (32 slots), start
#            sge_execd, then wait until a trivial job has run. A second `start` while it runs
#            with this configuration only clears a max_u_jobs a test left behind; a configuration
#            that differs is loaded again (no restart).
#   stop     stop sge_execd and sge_qmaster.
#   status   exit 0 when qstat answers, queue all.q on this host can take jobs and the limits
#            below are in place; otherwise say what is wrong and exit 1.
#
# What the cluster has, like a production Grid Engine:
#   - h_vmem is a consumable, 2G per slot by default (a default of 0 would give every job that
#     does not ask for h_vmem a 10 MB address-space limit); the exec host offers h_vmem=64G (32
#     slots x 2G). h_vmem is enforced as RLIMIT_AS per slot: one process over it gets ENOMEM, and
#     execd kills a job whose processes together go over it (qacct failed 37);
#   - h_rt is enforced (qacct failed 37, exit_status 137 past it);
#   - parallel environment smp ($pe_slots, 32 slots) on all.q: `qsub -pe smp 4`;
#   - max_u_jobs (global configuration) 0 after `start`; tests set it (`qconf -Mconf` of an edited
#     `qconf -sconf global`) and reset it to 0: qsub refuses the user's job over it (exit 25).
#
# Must run as root. SGE_ROOT=/var/lib/gridengine, SGE_CELL=default: the Debian clients (qsub,
# qstat, qdel, qacct) find them without any environment variable, and /etc/profile.d/gridengine.sh
# exports them for login shells too. Facts this script handles:
#   - commlib refuses clients when the host name and 127.0.0.1's reverse name differ (e.g. "vm"
#     vs "localhost"), so $SGE_ROOT/default/common/host_aliases maps localhost to the host name;
#   - root's jobs are refused while min_uid/min_gid are 1000: the global configuration sets 0
#     before the exec daemon starts;
#   - schedule_interval is 1 s (default 15 s) and accounting is flushed every second
#     (flush_time in reporting_params), so `qacct -j N` answers about 1-2 s after a job ends;
#   - jobs honour their #! line (shell_start_mode unix_behavior);
#   - the daemons have no option to choose the address they listen on: they are started with a
#     tiny LD_PRELOAD helper (tools/schedulers/bind_loopback.c, built with cc on first start) that
#     makes them bind to 127.0.0.1; without a C compiler they listen on all interfaces (warning).
# Logs: /var/spool/gridengine/qmaster/messages and /var/spool/gridengine/execd/<host>/messages.
# Environment: SGE_START_TIMEOUT (seconds, default 90).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TEMPLATES="$HERE/schedulers"
export SGE_ROOT=/var/lib/gridengine
export SGE_CELL=default
COMMON="$SGE_ROOT/$SGE_CELL/common"
PACKAGES=(gridengine-master gridengine-exec gridengine-client)
TIMEOUT="${SGE_START_TIMEOUT:-90}"
HOST="$(hostname)"
QMASTER_LOG=/var/spool/gridengine/qmaster/messages

SCRIPT_NAME=sge.sh
# shellcheck source=schedulers/common.sh
source "$HERE/schedulers/common.sh"

do_install() {
    need_root
    local missing p
    missing="$(missing_packages | tr '\n' ' ')"
    if [ -z "${missing// /}" ]; then
        say "packages already installed"
        return 0
    fi
    for p in gridengine-common "${PACKAGES[@]}"; do
        printf '%s shared/gridengineconfig boolean true\n' "$p"
        printf '%s shared/gridenginecell string default\n' "$p"
        printf '%s shared/gridenginemaster string %s\n' "$p" "$HOST"
    done | debconf-set-selections
    apt_install "$missing"
}

# A template without its comment lines (qconf's file parser does not take comments).
template() {
    [ -r "$TEMPLATES/$1" ] || die "missing template $TEMPLATES/$1"
    grep -v '^#' "$TEMPLATES/$1"
}

queue_ready() {
    # Queue instance line: "all.q@vm  BIP  0/0/32  0.05  lx-amd64  [states]"; no state letters
    # means usable (a=alarm, u=unknown/execd not heard, d=disabled, E=error, s/S=suspended).
    local line
    line="$(timeout 5 qstat -f -q all.q 2>/dev/null | grep "^all.q@" | head -n1)" || return 1
    [ -n "$line" ] || return 1
    [ "$(echo "$line" | awk '{print NF}')" -eq 5 ]
}

# Sets PROBLEM to what is wrong and returns 1, or returns 0 when the cluster is usable as this
# script configures it.
check() {
    PROBLEM=""
    if ! command -v qstat >/dev/null; then
        PROBLEM="qstat is not installed"
        return 1
    fi
    if ! queue_ready; then
        PROBLEM="queue all.q@$HOST cannot take jobs: $(timeout 5 qstat -f -q all.q 2>&1 | grep "^all.q@" | head -n1)"
        return 1
    fi
    if [ "$(h_vmem_complex)" != "YES 2G" ]; then
        PROBLEM="h_vmem is not a consumable with a 2G default (qconf -sc)"
        return 1
    fi
    # Outputs captured first: with pipefail, `qconf ... | grep -q` fails when grep stops early.
    local out
    out="$(timeout 5 qconf -se "$HOST" 2>/dev/null || true)"
    if ! grep -q '^complex_values .*h_vmem=64G' <<<"$out"; then
        PROBLEM="exec host $HOST does not offer h_vmem=64G (qconf -se $HOST)"
        return 1
    fi
    out="$(timeout 5 qconf -sq all.q 2>/dev/null || true)"
    if ! grep -q '^pe_list .*\bsmp\b' <<<"$out"; then
        PROBLEM="all.q has no parallel environment smp (qconf -sq all.q)"
        return 1
    fi
    return 0
}

# "consumable default" of the h_vmem complex, e.g. "YES 2G".
h_vmem_complex() { timeout 5 qconf -sc 2>/dev/null | awk '$1 == "h_vmem" {print $6, $7}'; }

max_u_jobs() { timeout 5 qconf -sconf global 2>/dev/null | awk '$1 == "max_u_jobs" {print $2}'; }

write_host_files() {
    # Grid Engine names hosts by resolving them: this host's name must resolve.
    if ! getent hosts "$HOST" >/dev/null; then
        say "host name $HOST does not resolve: adding '127.0.0.1 $HOST' to /etc/hosts"
        echo "127.0.0.1 $HOST" >>/etc/hosts || die "cannot make $HOST resolve (edit /etc/hosts)"
    fi
    [ -d "$COMMON" ] || die "$COMMON is missing: the gridengine-master install did not initialise" \
        "the cell (purge and reinstall gridengine-master with shared/gridengineconfig=true)"
    echo "$HOST" >"$COMMON/act_qmaster"
    if [ "$HOST" != localhost ]; then
        echo "$HOST localhost" >"$COMMON/host_aliases"
    else
        rm -f "$COMMON/host_aliases"
    fi
    chown sgeadmin:sgeadmin "$COMMON/act_qmaster" "$COMMON/host_aliases" 2>/dev/null || true
    cat >/etc/profile.d/gridengine.sh <<PROFILE
# Written by tools/sge.sh: where Grid Engine clients find their cell.
export SGE_ROOT=$SGE_ROOT
export SGE_CELL=$SGE_CELL
PROFILE
}

PRELOAD_SOURCE="$TEMPLATES/bind_loopback.c"
PRELOAD_LIB=/usr/local/lib/runner-sge-bind-loopback.so

# Grid Engine's daemons bind to every interface; with a C compiler at hand, build the small
# LD_PRELOAD helper that makes them bind to 127.0.0.1 instead. Prints the library's path, or
# nothing (with a warning on stderr) when it cannot be built.
loopback_preload() {
    if [ ! -f "$PRELOAD_LIB" ] || [ "$PRELOAD_SOURCE" -nt "$PRELOAD_LIB" ]; then
        if ! command -v cc >/dev/null; then
            echo "sge.sh: warning: no C compiler (cc): Grid Engine's daemons will listen on all" \
                "interfaces; install gcc to keep them on loopback" >&2
            return 0
        fi
        mkdir -p "$(dirname "$PRELOAD_LIB")"
        if ! cc -shared -fPIC -O2 -o "$PRELOAD_LIB" "$PRELOAD_SOURCE" -ldl >&2; then
            echo "sge.sh: warning: could not build $PRELOAD_LIB: daemons listen on all interfaces" >&2
            rm -f "$PRELOAD_LIB"
            return 0
        fi
    fi
    echo "$PRELOAD_LIB"
}

qmaster_up() { timeout 5 qconf -sh >/dev/null 2>&1; }

start_qmaster() {
    if qmaster_up; then
        return 0
    fi
    say "starting sge_qmaster"
    LD_PRELOAD="$(loopback_preload)" /etc/init.d/gridengine-master start >/dev/null || die "sge_qmaster did not start (see $QMASTER_LOG)"
    local deadline=$((SECONDS + TIMEOUT))
    while [ $SECONDS -lt $deadline ]; do
        qmaster_up && return 0
        sleep 0.3
    done
    die "sge_qmaster does not answer after ${TIMEOUT}s (see $QMASTER_LOG)"
}

# Load a configuration object: $1 = add flag, $2 = modify flag, $3 = file, $4 = "exists" test.
load_object() {
    local add="$1" modify="$2" file="$3" out
    shift 3
    if "$@" >/dev/null 2>&1; then
        out="$(qconf "$modify" "$file" 2>&1)" || die "qconf $modify $file failed: $out"
    else
        out="$(qconf "$add" "$file" 2>&1)" || die "qconf $add $file failed: $out"
    fi
}

configure() {
    local dir
    dir="$(mktemp -d)"
    # qconf -Mconf takes the configuration's name from the file name: it must be "global".
    template sge-global.conf >"$dir/global"
    qconf -Mconf "$dir/global" >/dev/null 2>&1 || die "qconf -Mconf global failed: $(qconf -Mconf "$dir/global" 2>&1)"
    template sge-sched.conf >"$dir/sched"
    qconf -Msconf "$dir/sched" >/dev/null 2>&1 || die "qconf -Msconf failed: $(qconf -Msconf "$dir/sched" 2>&1)"
    # h_vmem a consumable with a non-zero default (every job gets that limit per slot unless it
    # asks for another), the rest of the complex list as this Grid Engine ships it.
    qconf -sc | awk '$1 == "h_vmem" {$6 = "YES"; $7 = "2G"} {print}' >"$dir/complex"
    if [ "$(h_vmem_complex)" != "YES 2G" ]; then
        qconf -Mc "$dir/complex" >/dev/null 2>&1 || die "qconf -Mc failed: $(qconf -Mc "$dir/complex" 2>&1)"
    fi
    printf 'hostname %s\nload_scaling NONE\ncomplex_values h_vmem=64G\nuser_lists NONE\nxuser_lists NONE\nprojects NONE\nxprojects NONE\nusage_scaling NONE\nreport_variables NONE\n' \
        "$HOST" >"$dir/exechost"
    load_object -Ae -Me "$dir/exechost" qconf -se "$HOST"
    timeout 5 qconf -ss 2>/dev/null | grep -qx "$HOST" || qconf -as "$HOST" >/dev/null 2>&1
    timeout 5 qconf -sh 2>/dev/null | grep -qx "$HOST" || qconf -ah "$HOST" >/dev/null 2>&1
    printf 'group_name @allhosts\nhostlist %s\n' "$HOST" >"$dir/allhosts"
    load_object -Ahgrp -Mhgrp "$dir/allhosts" qconf -shgrp @allhosts
    template sge-smp.pe >"$dir/smp"
    load_object -Ap -Mp "$dir/smp" qconf -sp smp
    template sge-queue.conf >"$dir/all.q"
    load_object -Aq -Mq "$dir/all.q" qconf -sq all.q
    rm -rf "$dir"
}

start_execd() {
    if [ -s "$EXECD_PID" ] && kill -0 "$(cat "$EXECD_PID")" 2>/dev/null; then
        return 0
    fi
    say "starting sge_execd"
    LD_PRELOAD="$(loopback_preload)" /etc/init.d/gridengine-exec start >/dev/null \
        || die "sge_execd did not start (see /var/spool/gridengine/execd/$HOST/messages)"
}

wait_for_trivial_job() {
    local out
    out="$(timeout "$TIMEOUT" qsub -sync y -b y -N sge.sh-probe -o /dev/null -e /dev/null true 2>&1)" \
        || die "a trivial job did not run within ${TIMEOUT}s: $out"
}

do_start() {
    need_root
    if check; then
        clear_max_u_jobs
        say "already running"
        return 0
    fi
    [ -z "$(missing_packages)" ] || do_install
    write_host_files
    start_qmaster
    configure
    start_execd
    local deadline=$((SECONDS + TIMEOUT))
    while [ $SECONDS -lt $deadline ]; do
        queue_ready && break
        sleep 0.5
    done
    queue_ready || die "queue all.q@$HOST not usable after ${TIMEOUT}s: $(qstat -f 2>&1 | tail -n 3)"
    wait_for_trivial_job
    say "ready: queue all.q@$HOST, a trivial job ran"
}

# A max_u_jobs a test set and did not reset (killed mid-test) back to 0.
clear_max_u_jobs() {
    local current dir
    current="$(max_u_jobs)"
    [ -n "$current" ] && [ "$current" != 0 ] || return 0
    dir="$(mktemp -d)"
    qconf -sconf global | sed 's/^max_u_jobs .*/max_u_jobs                   0/' >"$dir/global"
    qconf -Mconf "$dir/global" >/dev/null 2>&1 || die "resetting max_u_jobs failed: $(qconf -Mconf "$dir/global" 2>&1)"
    rm -rf "$dir"
    say "max_u_jobs was $current (left by a test?): reset to 0"
}

QMASTER_PID=/var/spool/gridengine/qmaster/qmaster.pid
EXECD_PID=/var/run/gridengine/execd.pid

# Stop the daemon whose pid file is $2: ask politely with qconf ($3...), then TERM, then KILL.
stop_daemon() {
    local name="$1" pidfile="$2" pid i
    shift 2
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    say "stopping $name (pid $pid)"
    timeout 10 "$@" >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        [ "$i" -eq 50 ] && kill "$pid" 2>/dev/null
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}

do_stop() {
    need_root
    stop_daemon sge_execd "$EXECD_PID" qconf -ke "$HOST"
    stop_daemon sge_qmaster "$QMASTER_PID" qconf -km
    rm -f "$EXECD_PID"
    say "stopped"
}

case "${1:-}" in
    install) do_install ;;
    start) do_start ;;
    stop) do_stop ;;
    status)
        if check; then
            say "usable: queue all.q@$HOST, h_vmem consumable (2G per slot by default), pe smp"
            limit="$(max_u_jobs)"
            [ "${limit:-0}" = 0 ] || say "note: max_u_jobs is $limit (a test's? start resets it)"
        else
            say "not usable: $PROBLEM (start it with: $0 start)"
            exit 1
        fi
        ;;
    *)
        echo "usage: $0 install|start|stop|status" >&2
        exit 2
        ;;
esac
