# Sourced by record_slurm.sh and record_sge.sh with SCHEDULER set: the case recorder.
# Sets DATA (where the cases go, emptied first) and WORK (a scratch folder, made current).

DATA="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$SCHEDULER"
WORK="$(mktemp -d "/tmp/record-$SCHEDULER.XXXXXX")"
mkdir -p "$DATA"
rm -f "$DATA"/*.stdout "$DATA"/*.stderr "$DATA"/*.rc
cd "$WORK" || exit 1
printf '| case | command |\n|---|---|\n' >"$DATA/CASES.md"

# rec CASE COMMAND...: run COMMAND, keep its stdout, stderr and exit status as CASE.*
rec() {
    local name="$1"
    shift
    printf '| %s | `%s` |\n' "$name" "$*" >>"$DATA/CASES.md"
    "$@" >"$DATA/$name.stdout" 2>"$DATA/$name.stderr"
    echo $? >"$DATA/$name.rc"
}
