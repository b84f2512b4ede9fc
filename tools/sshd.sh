#!/usr/bin/env bash
# tools/sshd.sh: a private OpenSSH server on 127.0.0.1 standing in for a remote cluster's login
# node, for the tests of runner_grid's SSH transport (and later remote GridRunner runs).
#
# Usage: tools/sshd.sh install|start|stop|status
#   install  apt-get install openssh-server openssh-client rsync (non-interactive; no-op if
#            present). The Debian package's own sshd is not started (and never used).
#   start    install if needed, create the login user, keys, sshd_config and client config
#            below, then start a private sshd on 127.0.0.1 (detached from the caller) and wait
#            until a key login through the client config works. A second `start` while it runs
#            with the same configuration does nothing; a changed one restarts it.
#   stop     stop the listener AND every connection it serves (per-connection sshd processes
#            outlive the listener otherwise, so a client's master would keep working).
#   status   exit 0 when a key login through the client config runs a command; otherwise say
#            what is wrong and exit 1.
#
# Must run as root (useradd, sshd's privilege separation). Nothing in /etc/ssh or /etc/pam.d is
# read or changed. Everything lives in $RUNNER_SSHD_DIR (default /run/runner-sshd, mode 0755,
# root's; /run because only root can create names there):
#   sshd_config            the server's configuration (ListenAddress 127.0.0.1, key login only,
#                          LogLevel VERBOSE, MaxSessions 10, AllowUsers the login user)
#   ssh_host_ed25519_key   the server's host key (made once, kept across restarts)
#   id_ed25519[.pub]       the client key (owned by root, the user running the tests); its public
#                          half is the login user's ~/.ssh/authorized_keys
#   known_hosts            "[127.0.0.1]:PORT ssh-ed25519 ...": the server's real host key
#   ssh_config             client configuration for `ssh -F`: Host runner-test -> HostName
#                          127.0.0.1, Port, User, IdentityFile, UserKnownHostsFile above,
#                          StrictHostKeyChecking yes (host key checking stays on), BatchMode yes
#   port                   the port in use; sshd.pid; sshd.log (-E; "Accepted publickey" per
#                          login, "Starting session" per command, so tests can count them)
#   bin/runner-sshd        symlink to /usr/sbin/sshd (sshd re-executes itself by absolute path;
#                          its processes show as "runner-sshd: ...")
# The login user is $RUNNER_SSHD_USER (default runnerssh, created with a home under /home and
# no password: `usermod -p '*'`, since a locked account refuses even key logins); its home plays
# the remote cluster's home.
# Port: $RUNNER_SSHD_PORT, else the running server's, else the first free of 2222-2299.
# What it prints: one "sshd.sh: ..." line per step; `start` and `status` end with the line
#   sshd.sh: ready: ssh -F /run/runner-sshd/ssh_config runner-test (127.0.0.1:PORT, user ...)
# Environment: RUNNER_SSHD_DIR, RUNNER_SSHD_USER, RUNNER_SSHD_PORT, SSHD_START_TIMEOUT (s, 20).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE="${RUNNER_SSHD_DIR:-/run/runner-sshd}"
LOGIN="${RUNNER_SSHD_USER:-runnerssh}"
ALIAS=runner-test
PACKAGES=(openssh-server openssh-client rsync)
TIMEOUT="${SSHD_START_TIMEOUT:-20}"
PIDFILE="$STATE/sshd.pid"
LOG="$STATE/sshd.log"
BIN="$STATE/bin/runner-sshd"
PROCNAME="runner-sshd"

SCRIPT_NAME=sshd.sh
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

# --- the port --------------------------------------------------------------------------------

port_busy() { ss -Htln "sport = :$1" 2>/dev/null | grep -q .; }

# The port this server uses or will use (printed).
choose_port() {
    if [ -n "${RUNNER_SSHD_PORT:-}" ]; then
        echo "$RUNNER_SSHD_PORT"
        return 0
    fi
    local p
    if pid_alive && [ -s "$STATE/port" ]; then
        cat "$STATE/port"
        return 0
    fi
    for p in $(seq 2222 2299); do
        port_busy "$p" || {
            echo "$p"
            return 0
        }
    done
    die "no free port in 2222-2299; set RUNNER_SSHD_PORT"
}

# --- files -----------------------------------------------------------------------------------

make_state_dir() {
    if [ -L "$STATE" ] || { [ -e "$STATE" ] && [ "$(stat -c %u "$STATE")" != 0 ]; }; then
        die "$STATE exists but is a symlink or not root's; remove it or set RUNNER_SSHD_DIR"
    fi
    install -d -m 0755 "$STATE" "$STATE/bin"
    # Privilege separation: sshd chroots its pre-authentication child here.
    install -d -m 0755 /run/sshd
    ln -sfn /usr/sbin/sshd "$BIN"
}

make_user() {
    if ! id -u "$LOGIN" >/dev/null 2>&1; then
        say "creating user $LOGIN"
        useradd -m -s /bin/bash "$LOGIN"
    fi
    # useradd leaves the password "!", a locked account, which sshd refuses even for key logins.
    usermod -p '*' "$LOGIN"
}

make_keys() {
    if [ ! -s "$STATE/ssh_host_ed25519_key" ]; then
        say "creating the host key"
        ssh-keygen -q -t ed25519 -N '' -C "runner-sshd host key" -f "$STATE/ssh_host_ed25519_key"
    fi
    if [ ! -s "$STATE/id_ed25519" ]; then
        say "creating the client key"
        ssh-keygen -q -t ed25519 -N '' -C "runner-sshd client key" -f "$STATE/id_ed25519"
    fi
    chmod 0600 "$STATE/ssh_host_ed25519_key" "$STATE/id_ed25519"
    local home
    home="$(getent passwd "$LOGIN" | cut -d: -f6)"
    [ -d "$home" ] || die "user $LOGIN has no home folder ($home)"
    install -d -o "$LOGIN" -g "$LOGIN" -m 0700 "$home/.ssh"
    install -o "$LOGIN" -g "$LOGIN" -m 0600 "$STATE/id_ed25519.pub" "$home/.ssh/authorized_keys"
}

# write_if_changed TARGET: stdin becomes TARGET when different; returns 1 when it was the same.
write_if_changed() {
    local tmp
    tmp="$(mktemp "$1.XXXXXX")"
    cat >"$tmp"
    if cmp -s "$tmp" "$1"; then
        rm -f "$tmp"
        return 1
    fi
    chmod 0644 "$tmp"
    mv -f "$tmp" "$1"
    say "wrote $1"
}

server_config() {
    cat <<EOF
# Written by tools/sshd.sh: a test server on loopback only, key login for $LOGIN only.
Port $1
ListenAddress 127.0.0.1
AddressFamily inet
HostKey $STATE/ssh_host_ed25519_key
PidFile $PIDFILE
AllowUsers $LOGIN
PermitRootLogin no
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
X11Forwarding no
PrintMotd no
PrintLastLog no
# VERBOSE logs "Accepted publickey" per login and "Starting session" per command.
LogLevel VERBOSE
MaxSessions 10
MaxStartups 10:30:100
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
}

client_config() {
    cat <<EOF
# Written by tools/sshd.sh: use with \`ssh -F $STATE/ssh_config $ALIAS\`.
Host $ALIAS
    HostName 127.0.0.1
    Port $1
    User $LOGIN
Host *
    IdentityFile $STATE/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $STATE/known_hosts
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    BatchMode yes
    ConnectTimeout 5
EOF
}

# Sets CHANGED=1 when the server's configuration was rewritten.
write_config() {
    local port="$1"
    CHANGED=""
    server_config "$port" | write_if_changed "$STATE/sshd_config" && CHANGED=1
    client_config "$port" | write_if_changed "$STATE/ssh_config" || true
    printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$STATE/ssh_host_ed25519_key.pub")" \
        | write_if_changed "$STATE/known_hosts" || true
    echo "$port" >"$STATE/port"
    /usr/sbin/sshd -t -f "$STATE/sshd_config" || die "sshd -t refuses $STATE/sshd_config"
}

# --- the daemon --------------------------------------------------------------------------------

pid_alive() { [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

# descendants PID: every process below PID (its connections and their sessions).
descendants() {
    local child
    for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        echo "$child"
        descendants "$child"
    done
}

# Per-connection processes whose listener is gone: named after this server's binary.
orphans() { ps -eo pid=,args= | awk -v p="$PROCNAME:" '$2 == p {print $1}'; }

login_works() {
    timeout 10 ssh -F "$STATE/ssh_config" -o ControlMaster=no -o ControlPath=none "$ALIAS" true \
        </dev/null >/dev/null 2>&1
}

# Sets PROBLEM to what is wrong and returns 1, or returns 0 when a login runs a command.
check() {
    PROBLEM=""
    if [ ! -s "$STATE/ssh_config" ]; then
        PROBLEM="no client configuration in $STATE (never started?)"
        return 1
    fi
    if ! pid_alive; then
        PROBLEM="sshd is not running (no live pid in $PIDFILE)"
        return 1
    fi
    if ! login_works; then
        PROBLEM="sshd runs but 'ssh -F $STATE/ssh_config $ALIAS true' fails: $(
            timeout 10 ssh -F "$STATE/ssh_config" -o ControlMaster=no -o ControlPath=none \
                "$ALIAS" true </dev/null 2>&1 | tail -n1
        ) (see $LOG)"
        return 1
    fi
    return 0
}

ready_line() {
    say "ready: ssh -F $STATE/ssh_config $ALIAS (127.0.0.1:$(cat "$STATE/port"), user $LOGIN," \
        "log $LOG)"
}

stop_server() {
    local pid procs i
    pid="$(cat "$PIDFILE" 2>/dev/null || true)"
    procs=""
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        say "stopping sshd (pid $pid) and its connections"
        procs="$pid $(descendants "$pid" | tr '\n' ' ')"
    fi
    procs="$procs $(orphans | tr '\n' ' ')"
    [ -n "${procs// /}" ] || return 0
    # shellcheck disable=SC2086 # a list of pids
    kill $procs 2>/dev/null || true
    for i in $(seq 1 50); do
        # shellcheck disable=SC2086
        kill -0 $procs 2>/dev/null || break
        sleep 0.1
    done
    # shellcheck disable=SC2086
    kill -9 $procs 2>/dev/null || true
    rm -f "$PIDFILE"
}

do_start() {
    need_root
    [ -z "$(missing_packages)" ] || do_install
    make_state_dir
    make_user
    make_keys
    local port
    port="$(choose_port)"
    write_config "$port"
    if pid_alive && [ -z "$CHANGED" ] && login_works; then
        say "already running"
        ready_line
        return 0
    fi
    stop_server
    if port_busy "$port"; then
        die "port $port is taken by another program; set RUNNER_SSHD_PORT"
    fi
    say "starting sshd on 127.0.0.1:$port"
    # Detached (a session of its own), so the caller's process group ending does not stop it.
    setsid "$BIN" -f "$STATE/sshd_config" -E "$LOG" </dev/null >/dev/null 2>&1 \
        || die "sshd did not start (see $LOG)"
    local deadline=$((SECONDS + TIMEOUT))
    until check; do
        [ $SECONDS -lt $deadline ] || die "no login after ${TIMEOUT}s: $PROBLEM"
        sleep 0.2
    done
    ready_line
}

do_stop() {
    need_root
    stop_server
    say "stopped"
}

case "${1:-}" in
    install) do_install ;;
    start) do_start ;;
    stop) do_stop ;;
    status)
        if check; then
            ready_line
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
