#!/usr/bin/env bash
# tools/slurm.sh: a single-node SLURM on this machine, for integration tests and benchmarks.
#
# Usage: tools/slurm.sh install|start|stop|status
#   install  apt-get install slurmctld slurmd slurm-client munge (non-interactive; no-op if present).
#   start    install if needed, write /etc/slurm/slurm.conf from tools/schedulers/slurm.conf, start
#            munged, slurmctld and slurmd directly (no systemd needed), then wait until the node is
#            idle and a trivial job has run. A second `start` while it runs does nothing.
#   stop     shut the SLURM daemons and munged down.
#   status   exit 0 when SLURM answers and its node can run jobs, non-zero otherwise.
#
# Must run as root. Controller and node are "localhost" (127.0.0.1); the node advertises 32 CPUs
# (SlurmdParameters=config_overrides) and the scheduler runs every second, so many small jobs run
# at once. Finished jobs stay in `scontrol show job N` for MinJobAge=300 s (no slurmdbd, so there
# is no sacct). Logs: /var/log/slurm/. Environment: SLURM_START_TIMEOUT (seconds, default 90).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TEMPLATE="$HERE/schedulers/slurm.conf"
CONF=/etc/slurm/slurm.conf
PACKAGES=(slurmctld slurmd slurm-client munge)
TIMEOUT="${SLURM_START_TIMEOUT:-90}"

SCRIPT_NAME=slurm.sh
# shellcheck source=schedulers/common.sh
source "$HERE/schedulers/common.sh"

do_install() {
    need_root
    local missing
    missing="$(missing_packages | tr '\n' ' ')"
    if [ -z "${missing// /}" ]; then
        say "packages already installed"
        return 0
    fi
    apt_install "$missing"
}

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
    if munge_ok; then
        return 0
    fi
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
    install -d -o munge -g munge -m 0700 /etc/munge
    if [ ! -s /etc/munge/munge.key ]; then
        say "creating /etc/munge/munge.key"
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile=/etc/munge/munge.key
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        fi
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged || die "munged did not start (see /var/log/munge/munged.log)"
    local i
    for i in $(seq 1 50); do
        munge_ok && return 0
        sleep 0.1
    done
    die "munged runs but munge -n | unmunge fails (see /var/log/munge/munged.log)"
}

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

node_state() { timeout 5 sinfo --noheader --nodes=localhost --format='%T' 2>/dev/null | head -n1; }

do_status() {
    timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP' || return 1
    case "$(node_state)" in
        idle* | mixed* | allocated* | completing*) return 0 ;;
        *) return 1 ;;
    esac
}

write_config() {
    [ -r "$TEMPLATE" ] || die "missing config template $TEMPLATE"
    install -d -m 0755 /etc/slurm /run/slurm /var/log/slurm /var/spool/slurmctld /var/spool/slurmd
    if ! cmp -s "$TEMPLATE" "$CONF"; then
        install -m 0644 "$TEMPLATE" "$CONF"
        say "wrote $CONF"
    fi
}

wait_for_trivial_job() {
    local id deadline state
    deadline=$((SECONDS + TIMEOUT))
    id="$(sbatch --parsable --output=/dev/null --error=/dev/null --job-name=slurm.sh-probe \
        --wrap=true 2>&1)" || die "sbatch of a trivial job failed: $id"
    id="${id%%;*}"
    while [ $SECONDS -lt $deadline ]; do
        state="$(scontrol show job "$id" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')"
        case "$state" in
            COMPLETED) return 0 ;;
            FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL)
                die "trivial probe job $id ended $state (see /var/log/slurm/slurmd.log)"
                ;;
        esac
        sleep 0.2
    done
    die "trivial probe job $id did not finish within ${TIMEOUT}s (state: ${state:-unknown})"
}

do_start() {
    need_root
    if do_status; then
        say "already running"
        return 0
    fi
    [ -z "$(missing_packages)" ] || do_install
    write_config
    start_munge
    if ! pid_alive /run/slurm/slurmctld.pid; then
        say "starting slurmctld"
        /usr/sbin/slurmctld || die "slurmctld did not start (see /var/log/slurm/slurmctld.log)"
    fi
    if ! pid_alive /run/slurm/slurmd.pid; then
        say "starting slurmd"
        # -N: the node is "localhost" in slurm.conf whatever `hostname` says.
        /usr/sbin/slurmd -N localhost || die "slurmd did not start (see /var/log/slurm/slurmd.log)"
    fi
    local deadline state=""
    deadline=$((SECONDS + TIMEOUT))
    while [ $SECONDS -lt $deadline ]; do
        state="$(node_state || true)"
        case "$state" in
            idle* | mixed* | allocated* | completing*) break ;;
            down* | drain*)
                scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true
                ;;
        esac
        sleep 0.5
    done
    do_status || die "node not ready after ${TIMEOUT}s (sinfo state: ${state:-no answer});" \
        "see /var/log/slurm/slurmctld.log and slurmd.log"
    wait_for_trivial_job
    say "ready: node localhost $(node_state), a trivial job ran"
}

stop_pidfile() {
    local name="$1" pidfile="$2" pid i
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    say "stopping $name (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}

do_stop() {
    need_root
    stop_pidfile slurmd /run/slurm/slurmd.pid
    stop_pidfile slurmctld /run/slurm/slurmctld.pid
    stop_pidfile munged /run/munge/munged.pid
    say "stopped"
}

case "${1:-}" in
    install) do_install ;;
    start) do_start ;;
    stop) do_stop ;;
    status)
        if do_status; then
            say "usable: node localhost $(node_state)"
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
