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
#            sge_execd, then wait until a trivial job has run. A second `start` does nothing.
#   stop     stop sge_execd and sge_qmaster.
#   status   exit 0 when qstat answers and queue all.q on this host can take jobs.
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

do_status() {
    command -v qstat >/dev/null || return 1
    queue_ready
}

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
    printf 'hostname %s\nload_scaling NONE\ncomplex_values NONE\nuser_lists NONE\nxuser_lists NONE\nprojects NONE\nxprojects NONE\nusage_scaling NONE\nreport_variables NONE\n' \
        "$HOST" >"$dir/exechost"
    load_object -Ae -Me "$dir/exechost" qconf -se "$HOST"
    timeout 5 qconf -ss 2>/dev/null | grep -qx "$HOST" || qconf -as "$HOST" >/dev/null 2>&1
    timeout 5 qconf -sh 2>/dev/null | grep -qx "$HOST" || qconf -ah "$HOST" >/dev/null 2>&1
    printf 'group_name @allhosts\nhostlist %s\n' "$HOST" >"$dir/allhosts"
    load_object -Ahgrp -Mhgrp "$dir/allhosts" qconf -shgrp @allhosts
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
    if do_status; then
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
        if do_status; then
            say "usable: queue all.q@$HOST"
        else
            say "not usable (start it with: $0 start)"
            exit 1
        fi
        ;;
    *)
        echo "usage: $0 install|start|stop|status" >&2
        exit 2
        ;;
esac
