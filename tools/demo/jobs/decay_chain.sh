#!/bin/sh
# Decay chain A -> B -> C integrated with small explicit steps; writes the three
# populations to decay.dat and reports when B peaks (analytically at
# ln(kA/kB) / (kA - kB)).
set -eu
K_A=0.30
K_B=0.10
DT=0.001

awk -v ka="$K_A" -v kb="$K_B" -v dt="$DT" '
BEGIN {
    a = 1; b = 0; c = 0; best = -1
    print "# time A B C" > "decay.dat"
    for (step = 0; step <= 40 / dt; step++) {
        t = step * dt
        if (step % 500 == 0) printf "%.2f %.5f %.5f %.5f\n", t, a, b, c > "decay.dat"
        if (b > best) { best = b; tpeak = t }
        da = -ka * a; db = ka * a - kb * b
        a += da * dt; b += db * dt; c = 1 - a - b
    }
    printf "B peaks at t = %.2f with %.3f (analytic t = %.2f)\n", tpeak, best, log(ka / kb) / (ka - kb)
}'
