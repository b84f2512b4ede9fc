# Shared by tools/slurm.sh and tools/sge.sh (sourced, not run): messages, the root check and
# installing whatever Debian packages of $PACKAGES are missing. The caller sets SCRIPT_NAME.

say() { echo "$SCRIPT_NAME: $*"; }
die() {
    echo "$SCRIPT_NAME: error: $*" >&2
    exit 1
}

need_root() {
    [ "$(id -u)" -eq 0 ] || die "run me as root (installing packages and starting daemons need it)"
}

missing_packages() {
    local p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
    done
}

# apt_install "pkg1 pkg2 ...": non-interactive; policy-rc.d may refuse to start services
# during the install, which is fine: `start` starts the daemons itself.
apt_install() {
    say "installing: $1"
    # shellcheck disable=SC2086 # a list of package names
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $1 \
        || die "apt-get install $1 failed (run 'apt-get update' first?)"
}
