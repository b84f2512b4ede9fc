#!/bin/sh
# Metropolis Monte Carlo of a 1D Ising ring (64 spins) well below its crossover
# temperature: writes the energy and magnetisation per spin for every sweep to
# ising.dat and a one-line result to stdout.
set -eu
TEMPERATURE=0.8
SWEEPS=3000
SEED=11

awk -v T="$TEMPERATURE" -v sweeps="$SWEEPS" -v seed="$SEED" '
BEGIN {
    n = 64; srand(seed)
    for (i = 0; i < n; i++) s[i] = 1
    printf "# sweep energy_per_spin magnetisation_per_spin (T = %s)\n", T > "ising.dat"
    for (sweep = 1; sweep <= sweeps; sweep++) {
        for (k = 0; k < n; k++) {
            i = int(rand() * n)
            dE = 2 * s[i] * (s[(i + 1) % n] + s[(i + n - 1) % n])
            if (dE <= 0 || rand() < exp(-dE / T)) s[i] = -s[i]
        }
        e = 0; m = 0
        for (i = 0; i < n; i++) { e -= s[i] * s[(i + 1) % n]; m += s[i] }
        printf "%d %.4f %.4f\n", sweep, e / n, m / n > "ising.dat"
        if (sweep > sweeps / 2) { esum += e / n; count++ }
    }
    printf "T = %s: mean energy per spin %.3f (exact for the infinite chain: %.3f)\n", T, esum / count, -(exp(1 / T) - exp(-1 / T)) / (exp(1 / T) + exp(-1 / T))
}'
