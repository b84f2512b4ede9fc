#!/usr/bin/env bash
# tools/sshd.sh: a private OpenSSH server on 127.0.0.1 standing in for a remote cluster's login
# node, for the tests of runner_grid's SSH transport (and later remote GridRunner runs).
#
# Usage: tools/sshd.sh install|start|stop|status|start-2fa|stop-2fa|status-2fa
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
#
# Two-factor mode (start-2fa, stop-2fa, status-2fa): a second, separate sshd that asks for a
# key AND a one-time code (AuthenticationMethods publickey,keyboard-interactive), for the test
# that a run prompts once per login; the plain server above is neither used nor touched. Same
# login user, client key and host key; everything else of its own, in $STATE/2fa:
#   sshd_config, sshd.pid, sshd.log, port   as above; the log has one "Accepted
#                          keyboard-interactive/pam" per full login (the key step is logged
#                          as "Partial publickey")
#   ssh_config             Host runner-test-2fa; like the plain one but WITHOUT BatchMode, so
#                          ssh prompts for the code on the terminal (/dev/tty)
#   known_hosts            "[127.0.0.1]:PORT2 ssh-ed25519 ...", strict checking as above
#   code                   the one code accepted (123456, or $RUNNER_SSHD_2FA_CODE at start)
#   otp-check.sh           PAM's checker (pam_exec): reads the typed code on stdin, accepts the
#                          code above, appends each try to otp.log ("<time> service=... user=...
#                          rhost=... result=ok|wrong"); the code typed is not logged
#   pam-service            a copy of /etc/pam.d/sshd-runner2fa (below)
#   askpass.sh             prints the code: `status-2fa` logs in with SSH_ASKPASS=askpass.sh
#                          SSH_ASKPASS_REQUIRE=force, so it needs no terminal (one otp.log try)
#   ../bin/sshd-runner2fa  symlink to /usr/sbin/sshd: sshd names its PAM service after its
#                          program (OpenSSH 9.2 has no PAMServiceName), so this server reads
#                          /etc/pam.d/sshd-runner2fa, which start-2fa writes (pam_exec of the
#                          checker, then pam_permit: without it pam_setcred fails and the
#                          master dies) and stop-2fa removes. /etc/pam.d/sshd is never read.
# Its port: $RUNNER_SSHD_2FA_PORT, else the running server's, else the first free of 2223-2299.
# `start-2fa` ends with "sshd.sh: ready: ssh -F /run/runner-sshd/2fa/ssh_config runner-test-2fa
# (... code in /run/runner-sshd/2fa/code)". The prompt the client shows is
# "(runnerssh@127.0.0.1) Password: " (pam_exec's; its text cannot be changed).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE="${RUNNER_SSHD_DIR:-/run/runner-sshd}"
LOGIN="${RUNNER_SSHD_USER:-runnerssh}"
ALIAS=runner-test
PACKAGES=(openssh-server openssh-client rsync)
TIMEOUT="${SSHD_START_TIMEOUT:-20}"
# What differs between the plain server and the two-factor one (see two_factor_mode).
MODE=plain
HOME_DIR="$STATE"
FIRST_PORT=2222
PORT_ENV="${RUNNER_SSHD_PORT:-}"
PORT_VAR=RUNNER_SSHD_PORT
PIDFILE="$STATE/sshd.pid"
LOG="$STATE/sshd.log"
BIN="$STATE/bin/runner-sshd"
PROCNAME="runner-sshd"
PAM_FILE=""

SCRIPT_NAME=sshd.sh
# shellcheck source=schedulers/common.sh
source "$HERE/schedulers/common.sh"

# Switch every name above to the two-factor server's (its own folder, port, binary, log).
two_factor_mode() {
    MODE=2fa
    ALIAS=runner-test-2fa
    HOME_DIR="$STATE/2fa"
    FIRST_PORT=2223
    PORT_ENV="${RUNNER_SSHD_2FA_PORT:-}"
    PORT_VAR=RUNNER_SSHD_2FA_PORT
    PIDFILE="$HOME_DIR/sshd.pid"
    LOG="$HOME_DIR/sshd.log"
    PROCNAME="sshd-runner2fa"
    BIN="$STATE/bin/$PROCNAME"
    PAM_FILE="/etc/pam.d/$PROCNAME"
    CODE="${RUNNER_SSHD_2FA_CODE:-123456}"
}

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
    if [ -n "$PORT_ENV" ]; then
        echo "$PORT_ENV"
        return 0
    fi
    local p
    if pid_alive && [ -s "$HOME_DIR/port" ]; then
        cat "$HOME_DIR/port"
        return 0
    fi
    for p in $(seq "$FIRST_PORT" 2299); do
        port_busy "$p" || {
            echo "$p"
            return 0
        }
    done
    die "no free port in $FIRST_PORT-2299; set $PORT_VAR"
}

# --- files -----------------------------------------------------------------------------------

make_state_dir() {
    if [ -L "$STATE" ] || { [ -e "$STATE" ] && [ "$(stat -c %u "$STATE")" != 0 ]; }; then
        die "$STATE exists but is a symlink or not root's; remove it or set RUNNER_SSHD_DIR"
    fi
    install -d -m 0755 "$STATE" "$STATE/bin" "$HOME_DIR"
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

# How a login is checked: the key alone, or the key and then a one-time code through PAM.
auth_lines() {
    if [ "$MODE" = 2fa ]; then
        printf '%s\n' "KbdInteractiveAuthentication yes" "UsePAM yes" \
            "AuthenticationMethods publickey,keyboard-interactive"
    else
        printf '%s\n' "KbdInteractiveAuthentication no" "UsePAM no"
    fi
}

server_config() {
    local what="key login"
    [ "$MODE" = 2fa ] && what="key and one-time code (PAM service $PROCNAME)"
    cat <<EOF
# Written by tools/sshd.sh: a test server on loopback only, $what for $LOGIN only.
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
$(auth_lines)
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
    # Two-factor: no BatchMode, so the login may prompt for the code on the terminal.
    local batch="    BatchMode yes"
    [ "$MODE" = 2fa ] && batch="    # no BatchMode: ssh asks for the one-time code on /dev/tty"
    cat <<EOF
# Written by tools/sshd.sh: use with \`ssh -F $HOME_DIR/ssh_config $ALIAS\`.
Host $ALIAS
    HostName 127.0.0.1
    Port $1
    User $LOGIN
Host *
    IdentityFile $STATE/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $HOME_DIR/known_hosts
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
$batch
    ConnectTimeout 5
EOF
}

# The PAM service of the two-factor server: the code (pam_exec), then pam_permit, which
# pam_setcred needs (a pam_exec-only stack fails there and the new master dies).
pam_service() {
    cat <<EOF
# Written by tools/sshd.sh for its two-factor test sshd ($BIN) only; removed by stop-2fa.
auth     required  pam_exec.so expose_authtok quiet $HOME_DIR/otp-check.sh
auth     required  pam_permit.so
account  required  pam_unix.so
session  required  pam_permit.so
password required  pam_deny.so
EOF
}

# The one-time-code checker pam_exec runs (as root). pam_exec passes the typed code on stdin,
# NUL-ended; the script finds its folder (code, otp.log) from its own path.
otp_checker() {
    cat <<'EOF'
#!/bin/bash
# Written by tools/sshd.sh: accepts the code in code (next to me), logs every try to otp.log.
here="${0%/*}"
code=""
IFS= read -r -d '' code || true
result=wrong
[ -n "$code" ] && [ "$code" = "$(cat "$here/code")" ] && result=ok
printf '%s service=%s user=%s rhost=%s result=%s\n' "$(date '+%F %T.%N')" \
    "${PAM_SERVICE:-}" "${PAM_USER:-}" "${PAM_RHOST:-}" "$result" >>"$here/otp.log"
[ "$result" = ok ]
EOF
}

# ssh's SSH_ASKPASS for status-2fa: prints the code next to it.
askpass() {
    cat <<'EOF'
#!/bin/sh
# Written by tools/sshd.sh: answers ssh's code prompt (SSH_ASKPASS) for status-2fa.
exec cat "${0%/*}/code"
EOF
}

write_two_factor_files() {
    printf '%s\n' "$CODE" | write_if_changed "$HOME_DIR/code" || true
    chmod 0600 "$HOME_DIR/code"
    otp_checker | write_if_changed "$HOME_DIR/otp-check.sh" || true
    askpass | write_if_changed "$HOME_DIR/askpass.sh" || true
    chmod 0755 "$HOME_DIR/otp-check.sh" "$HOME_DIR/askpass.sh"
    touch "$HOME_DIR/otp.log"
    # Kept here too, and copied only when it differs: no other name ever appears in /etc/pam.d.
    pam_service | write_if_changed "$HOME_DIR/pam-service" || true
    if ! cmp -s "$HOME_DIR/pam-service" "$PAM_FILE"; then
        cat "$HOME_DIR/pam-service" >"$PAM_FILE"
        chmod 0644 "$PAM_FILE"
        say "wrote $PAM_FILE"
    fi
}

# Sets CHANGED=1 when the server's configuration was rewritten.
write_config() {
    local port="$1"
    CHANGED=""
    server_config "$port" | write_if_changed "$HOME_DIR/sshd_config" && CHANGED=1
    client_config "$port" | write_if_changed "$HOME_DIR/ssh_config" || true
    printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$STATE/ssh_host_ed25519_key.pub")" \
        | write_if_changed "$HOME_DIR/known_hosts" || true
    echo "$port" >"$HOME_DIR/port"
    [ "$MODE" = 2fa ] && write_two_factor_files
    /usr/sbin/sshd -t -f "$HOME_DIR/sshd_config" || die "sshd -t refuses $HOME_DIR/sshd_config"
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

# ssh_probe: one fresh login through the client config (the code from askpass.sh in
# two-factor mode, so no terminal is needed), no master.
ssh_probe() {
    if [ "$MODE" = 2fa ]; then
        timeout 10 env "SSH_ASKPASS=$HOME_DIR/askpass.sh" SSH_ASKPASS_REQUIRE=force \
            ssh -F "$HOME_DIR/ssh_config" -o ControlMaster=no -o ControlPath=none \
            -o NumberOfPasswordPrompts=1 "$ALIAS" true </dev/null
    else
        timeout 10 ssh -F "$HOME_DIR/ssh_config" -o ControlMaster=no -o ControlPath=none \
            "$ALIAS" true </dev/null
    fi
}

login_works() { ssh_probe >/dev/null 2>&1; }

# Sets PROBLEM to what is wrong and returns 1, or returns 0 when a login runs a command.
check() {
    PROBLEM=""
    if [ ! -s "$HOME_DIR/ssh_config" ]; then
        PROBLEM="no client configuration in $HOME_DIR (never started?)"
        return 1
    fi
    if ! pid_alive; then
        PROBLEM="sshd is not running (no live pid in $PIDFILE)"
        return 1
    fi
    if ! login_works; then
        PROBLEM="sshd runs but 'ssh -F $HOME_DIR/ssh_config $ALIAS true' fails: $(
            ssh_probe 2>&1 | tail -n1
        ) (see $LOG)"
        return 1
    fi
    return 0
}

ready_line() {
    local extra=""
    [ "$MODE" = 2fa ] && extra=", code in $HOME_DIR/code"
    say "ready: ssh -F $HOME_DIR/ssh_config $ALIAS (127.0.0.1:$(cat "$HOME_DIR/port"), user" \
        "$LOGIN, log $LOG$extra)"
}

stop_server() {
    local pid procs
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
    for _ in $(seq 1 50); do
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
        die "port $port is taken by another program; set $PORT_VAR"
    fi
    say "starting sshd on 127.0.0.1:$port${PAM_FILE:+ (key and one-time code, $PAM_FILE)}"
    # Detached (a session of its own), so the caller's process group ending does not stop it.
    setsid "$BIN" -f "$HOME_DIR/sshd_config" -E "$LOG" </dev/null >/dev/null 2>&1 \
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
    if [ -n "$PAM_FILE" ] && [ -e "$PAM_FILE" ]; then
        rm -f "$PAM_FILE"
        say "removed $PAM_FILE"
    fi
    say "stopped"
}

do_status() {
    if check; then
        ready_line
    else
        say "not usable: $PROBLEM (start it with: $0 $1)"
        exit 1
    fi
}

case "${1:-}" in
    install) do_install ;;
    start) do_start ;;
    stop) do_stop ;;
    status) do_status start ;;
    start-2fa | stop-2fa | status-2fa)
        two_factor_mode
        case "$1" in
            start-2fa) do_start ;;
            stop-2fa) do_stop ;;
            status-2fa) do_status start-2fa ;;
        esac
        ;;
    *)
        echo "usage: $0 install|start|stop|status|start-2fa|stop-2fa|status-2fa" >&2
        exit 2
        ;;
esac
