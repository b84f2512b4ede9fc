#!/bin/sh
# This job fails on purpose, to show what a failed job looks like: its input
# asks for a negative absolute temperature, which the "simulation" refuses.
set -eu
cat > input.dat <<'INPUT'
temperature_K = -40
steps = 1000
INPUT

temperature=$(awk -F '=' '/^temperature_K/ { gsub(/ /, "", $2); print $2 }' input.dat)
echo "read input.dat: temperature ${temperature} K"
if awk -v t="$temperature" 'BEGIN { exit !(t <= 0) }'; then
    echo "error: input.dat: temperature_K = ${temperature} is not above absolute zero; set a positive temperature" >&2
    exit 3
fi
echo "this line is never reached"
