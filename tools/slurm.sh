#!/usr/bin/env bash
# tools/slurm.sh: a single-node SLURM on this machine with what production clusters have, for
# integration tests and benchmarks.
#
# Usage: tools/slurm.sh install|start|stop|status
#   install  apt-get install slurmctld slurmd slurm-client munge slurmdbd mariadb-server
#            (non-interactive; no-op if present).
#   start    install if needed, write /etc/slurm/{slurm,cgroup,slurmdbd}.conf from
#            tools/schedulers/, start MariaDB, slurmdbd, munged, slurmctld and slurmd directly (no
#            systemd needed; detached from the caller), register the cluster, account and users in
#            the accounting database, then wait until a trivial job has run and sacct knows it.
#            A second `start` while everything runs with the same configuration does nothing;
#            a changed configuration restarts the daemons it concerns.
#   stop     shut the SLURM daemons, slurmdbd, MariaDB and munged down.
#   status   exit 0 when SLURM answers, its node can run jobs, accounting works and the running
#            configuration is this script's; otherwise say what is wrong and exit 1.
#
# Must run as root. Every daemon listens on 127.0.0.1 only. What the cluster has:
#   - accounting: slurmdbd (127.0.0.1:6819) backed by MariaDB (127.0.0.1:3306), cluster "runner",
#     account "testacct" with an association for root and for $SUDO_USER / $SLURM_TEST_USERS
#     (AccountingStorageEnforce=associations,limits,qos: a user without one cannot submit);
#     jobacct_gather/linux, so `sacct` has MaxRSS and CPU times;
#   - memory enforced with cgroup v1 (task/cgroup, ConstrainRAMSpace, CR_CPU_Memory): a job over
#     its --mem ends OUT_OF_MEMORY; a job without --mem gets DefMemPerCPU=500 MB per CPU;
#   - one node "localhost" claiming 32 CPUs and 16000 MB (SlurmdParameters=config_overrides);
#   - partitions: debug (default: no time limit, never preempted), short (MaxTime 5 min,
#     MaxMemPerNode 2000 MB; requeued when preempted), long (no limit; ends PREEMPTED when
#     preempted), high (PriorityTier 10: preempts short and long); EnforcePartLimits=ALL, so
#     sbatch refuses a request over a partition's limits;
#   - ReturnToService=1: `scontrol update nodename=localhost state=down reason=...` makes running
#     jobs end NODE_FAIL and keeps the node down until `state=resume`;
#   - QOS "normal" (every job's) and QOS "limited" (jobs that ask for --qos=limited), both open
#     to the users above and without limits after `start` (it clears what a test left): tests
#     set MaxSubmitJobsPerUser or MaxJobsPerUser on "limited" with
#     `sacctmgr -i modify qos limited set ...=N` and reset them with -1;
#   - finished jobs stay in `scontrol show job N` for MinJobAge=300 s, in sacct for good.
# Logs: /var/log/slurm/ (slurmctld.log, slurmd.log, slurmdbd.log), /var/log/mysql/slurm.log.
# Environment: SLURM_START_TIMEOUT (seconds, default 90); SLURM_TEST_USERS (more user names that
# get an association, space-separated).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TEMPLATES="$HERE/schedulers"
CONF=/etc/slurm/slurm.conf
PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
TIMEOUT="${SLURM_START_TIMEOUT:-90}"
CLUSTER=runner
ACCOUNT=testacct
TEST_QOS=limited
MARIADB_CNF=/etc/mysql/mariadb.conf.d/99-slurm.cnf
MARIADB_LOG=/var/log/mysql/slurm.log

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

# The users who get an association: root, whoever ran sudo, the login user of the test sshd
# (tools/sshd.sh, when it exists: remote runs submit as that user) and $SLURM_TEST_USERS.
test_users() {
    local u
    for u in root "${SUDO_USER:-}" "${RUNNER_SSHD_USER:-runnerssh}" ${SLURM_TEST_USERS:-}; do
        [ -n "$u" ] && id -u "$u" >/dev/null 2>&1 && echo "$u"
    done | sort -u
}

# --- configuration files -----------------------------------------------------------------

# install_file SOURCE TARGET MODE: copy when different; returns 1 when it was already the same.
install_file() {
    [ -r "$1" ] || die "missing config template $1"
    cmp -s "$1" "$2" && return 1
    install -m "$3" "$1" "$2"
    say "wrote $2"
}

# Sets CHANGED_SLURM, CHANGED_DBD, CHANGED_MARIADB to 1 for each part whose file was rewritten.
write_config() {
    CHANGED_SLURM="" CHANGED_DBD="" CHANGED_MARIADB=""
    install -d -m 0755 /etc/slurm /run/slurm /var/log/slurm /var/spool/slurmctld /var/spool/slurmd
    install_file "$TEMPLATES/slurm.conf" "$CONF" 0644 && CHANGED_SLURM=1
    install_file "$TEMPLATES/cgroup.conf" /etc/slurm/cgroup.conf 0644 && CHANGED_SLURM=1
    # slurmdbd refuses a slurmdbd.conf that others can read.
    install_file "$TEMPLATES/slurmdbd.conf" /etc/slurm/slurmdbd.conf 0600 && CHANGED_DBD=1
    install -d -m 0755 "$(dirname "$MARIADB_CNF")"
    install_file "$TEMPLATES/mariadb-slurm.cnf" "$MARIADB_CNF" 0644 && CHANGED_MARIADB=1
    return 0
}

config_current() {
    cmp -s "$TEMPLATES/slurm.conf" "$CONF" && cmp -s "$TEMPLATES/cgroup.conf" /etc/slurm/cgroup.conf \
        && cmp -s "$TEMPLATES/slurmdbd.conf" /etc/slurm/slurmdbd.conf \
        && cmp -s "$TEMPLATES/mariadb-slurm.cnf" "$MARIADB_CNF"
}

# --- daemons -------------------------------------------------------------------------------

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pidfile() {
    local name="$1" pidfile="$2" pid i
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    say "stopping $name (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
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
    say "starting munged"
    setsid runuser -u munge -- /usr/sbin/munged </dev/null \
        || die "munged did not start (see /var/log/munge/munged.log)"
    local i
    for i in $(seq 1 50); do
        munge_ok && return 0
        sleep 0.1
    done
    die "munged runs but munge -n | unmunge fails (see /var/log/munge/munged.log)"
}

mariadb_ok() { timeout 5 mariadb-admin --no-defaults --protocol=socket ping >/dev/null 2>&1; }

MARIADB_PID=/run/mysqld/mysqld.pid

start_mariadb() {
    if [ "$CHANGED_MARIADB" ] && pid_alive "$MARIADB_PID"; then
        stop_pidfile mariadbd "$MARIADB_PID"
    fi
    if ! mariadb_ok; then
        install -d -o mysql -g mysql -m 0755 /run/mysqld /var/log/mysql
        if [ ! -d /var/lib/mysql/mysql ]; then
            say "initialising the MariaDB data directory"
            mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/var/log/mysql/install-db.log 2>&1 \
                || die "mariadb-install-db failed (see /var/log/mysql/install-db.log)"
        fi
        say "starting MariaDB"
        # Detached (a session of its own): a daemon left in the caller's process group can be
        # killed when that group ends (nox, CI steps).
        setsid -f /usr/sbin/mariadbd --user=mysql --pid-file="$MARIADB_PID" \
            --log-error="$MARIADB_LOG" </dev/null >/dev/null 2>&1
        local deadline=$((SECONDS + TIMEOUT))
        until mariadb_ok; do
            [ $SECONDS -lt $deadline ] || die "MariaDB does not answer after ${TIMEOUT}s (see $MARIADB_LOG)"
            sleep 0.2
        done
    fi
    mariadb --no-defaults --protocol=socket <<'SQL' || die "setting up the slurm_acct_db database failed"
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmdbpass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL
}

dbd_ok() { timeout 5 sacctmgr -n -P show cluster format=cluster >/dev/null 2>&1; }

start_slurmdbd() {
    if [ "$CHANGED_DBD" ] && pid_alive /run/slurm/slurmdbd.pid; then
        stop_pidfile slurmdbd /run/slurm/slurmdbd.pid
    fi
    if ! pid_alive /run/slurm/slurmdbd.pid; then
        say "starting slurmdbd"
        setsid /usr/sbin/slurmdbd </dev/null || die "slurmdbd did not start (see /var/log/slurm/slurmdbd.log)"
    fi
    local deadline=$((SECONDS + TIMEOUT))
    until dbd_ok; do
        [ $SECONDS -lt $deadline ] || die "slurmdbd does not answer after ${TIMEOUT}s (see /var/log/slurm/slurmdbd.log)"
        sleep 0.2
    done
}

# sacctmgr_add WHAT...: `sacctmgr -i add WHAT...`, an entity that exists already is fine.
sacctmgr_add() {
    local out
    out="$(sacctmgr -i add "$@" 2>&1)" && return 0
    case "$out" in
        *"Nothing new added"* | *"already exists"*) return 0 ;;
    esac
    die "sacctmgr add $* failed: $out"
}

# Cluster, account, QOS and user associations: each added only when missing, so a start while
# slurmctld runs sends it nothing new. The test QOS is left without limits.
register_accounting() {
    local users
    sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER" || sacctmgr_add cluster "$CLUSTER"
    sacctmgr -n -P show account format=account | grep -qx "$ACCOUNT" \
        || sacctmgr_add account "$ACCOUNT" cluster="$CLUSTER" description=tests organization=runner
    sacctmgr -n -P show qos format=name | grep -qx "$TEST_QOS" || sacctmgr_add qos "$TEST_QOS"
    clear_qos_limits
    for u in $(test_users); do
        users="$(sacctmgr -n -P show assoc where cluster="$CLUSTER" account="$ACCOUNT" user="$u" format=user,qos)"
        if [ -z "$users" ]; then
            sacctmgr_add user "$u" account="$ACCOUNT" cluster="$CLUSTER" defaultaccount="$ACCOUNT"
        fi
        case "$users" in
            *"$TEST_QOS"*) ;;
            *) sacctmgr -i modify user where name="$u" cluster="$CLUSTER" set qos+="$TEST_QOS" >/dev/null \
                || die "giving $u the QOS $TEST_QOS failed" ;;
        esac
    done
}

node_state() { timeout 5 sinfo --noheader --nodes=localhost --format='%T' 2>/dev/null | head -n1; }

# Sets PROBLEM to what is wrong and returns 1, or returns 0 when the cluster is usable as this
# script configures it.
check() {
    PROBLEM=""
    if ! config_current; then
        PROBLEM="the configuration in /etc differs from tools/schedulers/ (start applies it)"
        return 1
    fi
    local out
    out="$(timeout 5 scontrol ping 2>/dev/null || true)"
    if [[ "$out" != *"is UP"* ]]; then
        PROBLEM="slurmctld does not answer (scontrol ping)"
        return 1
    fi
    local state u
    state="$(node_state)"
    case "$state" in
        idle* | mixed* | allocated* | completing*) ;;
        *)
            PROBLEM="node localhost is ${state:-not listed} (scontrol update nodename=localhost state=resume?)"
            return 1
            ;;
    esac
    # Captured first: with pipefail, `scontrol ... | grep -q` fails when grep stops reading early.
    out="$(timeout 5 scontrol show config 2>/dev/null || true)"
    if ! grep -q '^AccountingStorageType *= *accounting_storage/slurmdbd' <<<"$out"; then
        PROBLEM="slurmctld runs without accounting_storage/slurmdbd"
        return 1
    fi
    if ! dbd_ok; then
        PROBLEM="slurmdbd (or MariaDB behind it) does not answer: sacctmgr show cluster fails"
        return 1
    fi
    for u in $(test_users); do
        if [ -z "$(timeout 5 sacctmgr -n -P show assoc where cluster="$CLUSTER" user="$u" format=user 2>/dev/null)" ]; then
            PROBLEM="user $u has no association in cluster $CLUSTER: sbatch would refuse its jobs"
            return 1
        fi
    done
    if ! timeout 5 sacct -n -X -j 1 -o JobID >/dev/null 2>&1; then
        PROBLEM="sacct fails: $(timeout 5 sacct -n -X -j 1 -o JobID 2>&1 | head -n1)"
        return 1
    fi
    return 0
}

# Limits a test may have left on the test QOS (reported by status, cleared by a full start).
qos_limits() {
    timeout 5 sacctmgr -n -P show qos "$TEST_QOS" format=MaxSubmitJobsPerUser,MaxJobsPerUser 2>/dev/null \
        | awk -F'|' '($1 != "" || $2 != "") {print "MaxSubmitJobsPerUser=" $1 " MaxJobsPerUser=" $2}'
}

wait_for_node() {
    local deadline state=""
    deadline=$((SECONDS + TIMEOUT))
    while [ $SECONDS -lt $deadline ]; do
        state="$(node_state || true)"
        case "$state" in
            idle* | mixed* | allocated* | completing*) return 0 ;;
            down* | drain* | fail*)
                scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true
                ;;
        esac
        sleep 0.3
    done
    die "node not ready after ${TIMEOUT}s (sinfo state: ${state:-no answer});" \
        "see /var/log/slurm/slurmctld.log and slurmd.log"
}

# A trivial job must complete, and sacct must have its end (accounting works end to end).
wait_for_trivial_job() {
    local id deadline state="" acct=""
    deadline=$((SECONDS + TIMEOUT))
    id="$(sbatch --parsable --output=/dev/null --error=/dev/null --job-name=slurm.sh-probe \
        --wrap=true 2>&1)" || die "sbatch of a trivial job failed: $id"
    id="${id%%;*}"
    while [ $SECONDS -lt $deadline ]; do
        state="$(scontrol show job "$id" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')"
        case "$state" in
            COMPLETED)
                acct="$(sacct -n -P -X -j "$id" -o State 2>/dev/null | head -n1)"
                [ "$acct" = COMPLETED ] && return 0
                ;;
            FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL)
                die "trivial probe job $id ended $state (see /var/log/slurm/slurmd.log)"
                ;;
        esac
        sleep 0.2
    done
    die "trivial probe job $id: scontrol says ${state:-nothing}, sacct says ${acct:-nothing}" \
        "after ${TIMEOUT}s (see /var/log/slurm/slurmctld.log and slurmdbd.log)"
}

# Limits a test left on the test QOS (killed before its clean-up) are cleared.
clear_qos_limits() {
    local limits
    limits="$(qos_limits)"
    [ -n "$limits" ] || return 0
    sacctmgr -i modify qos "$TEST_QOS" set MaxSubmitJobsPerUser=-1 MaxJobsPerUser=-1 >/dev/null \
        || die "clearing the limits of QOS $TEST_QOS failed"
    say "QOS $TEST_QOS had $limits (left by a test?): cleared"
}

do_start() {
    need_root
    if check; then
        clear_qos_limits
        say "already running"
        return 0
    fi
    [ -z "$(missing_packages)" ] || do_install
    write_config
    start_munge
    start_mariadb
    start_slurmdbd
    # sacctmgr needs slurm.conf to name accounting_storage/slurmdbd (written above); slurmctld
    # needs its cluster registered before it starts.
    register_accounting
    if [ "$CHANGED_SLURM" ]; then
        stop_pidfile slurmd /run/slurm/slurmd.pid
        stop_pidfile slurmctld /run/slurm/slurmctld.pid
    fi
    if ! pid_alive /run/slurm/slurmctld.pid; then
        say "starting slurmctld"
        setsid /usr/sbin/slurmctld </dev/null || die "slurmctld did not start (see /var/log/slurm/slurmctld.log)"
    fi
    if ! pid_alive /run/slurm/slurmd.pid; then
        say "starting slurmd"
        # -N: the node is "localhost" in slurm.conf whatever `hostname` says.
        setsid /usr/sbin/slurmd -N localhost </dev/null || die "slurmd did not start (see /var/log/slurm/slurmd.log)"
    fi
    wait_for_node
    check || die "$PROBLEM"
    wait_for_trivial_job
    say "ready: node localhost $(node_state), accounting on, a trivial job ran and sacct has it"
}

do_stop() {
    need_root
    stop_pidfile slurmd /run/slurm/slurmd.pid
    stop_pidfile slurmctld /run/slurm/slurmctld.pid
    stop_pidfile slurmdbd /run/slurm/slurmdbd.pid
    stop_pidfile mariadbd "$MARIADB_PID"
    stop_pidfile munged /run/munge/munged.pid
    say "stopped"
}

case "${1:-}" in
    install) do_install ;;
    start) do_start ;;
    stop) do_stop ;;
    status)
        if check; then
            say "usable: node localhost $(node_state), accounting through slurmdbd"
            limits="$(qos_limits)"
            [ -z "$limits" ] || say "note: QOS $TEST_QOS has limits set: $limits (a test's? start clears them)"
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
