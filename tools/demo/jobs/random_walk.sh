#!/bin/sh
# 2000 independent 2D lattice random walks of 200 steps: the mean squared
# displacement grows as 4 D t, so the slope gives the diffusion coefficient D
# (exactly 0.25 on a square lattice with unit steps and time).
set -eu
WALKERS=2000
STEPS=200

awk -v walkers="$WALKERS" -v steps="$STEPS" '
BEGIN {
    srand(7)
    for (w = 0; w < walkers; w++) {
        x = 0; y = 0
        for (t = 1; t <= steps; t++) {
            r = int(rand() * 4)
            if (r == 0) x++; else if (r == 1) x--; else if (r == 2) y++; else y--
            msd[t] += x * x + y * y
        }
    }
    print "# step mean_squared_displacement" > "msd.dat"
    for (t = 1; t <= steps; t++) {
        msd[t] /= walkers
        print t, msd[t] > "msd.dat"
        sx += t; sy += msd[t]; sxx += t * t; sxy += t * msd[t]
    }
    slope = (steps * sxy - sx * sy) / (steps * sxx - sx * sx)
    printf "diffusion coefficient D = %.3f (lattice theory: 0.250)\n", slope / 4
}'
