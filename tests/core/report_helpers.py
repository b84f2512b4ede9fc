"""Journals for the report tests: a synthetic run of any size, written in the journal's format."""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

#: When the synthetic run starts (epoch seconds).
T0 = 1_800_000_000.0


def synthetic_journal(folder: Path, jobs: int, seed: int = 1) -> dict[str, int]:
    """Write the journal of a finished grid run of `jobs` jobs into `folder/.runner/`.

    Jobs are registered 0.05 s apart, wait up to 5 s in the runner, an exponential
    time (mean 2 min) in the scheduler, and run a log-normal time (median 2.5 min);
    90 % succeed, 5 % end out of memory, 5 % crash with a Python traceback.

    Returns:
        How many jobs ended in each category ("successful", "out_of_memory", "crashed").
    """
    rnd = random.Random(seed)
    (folder / ".runner").mkdir(parents=True, exist_ok=True)
    opening = {"k": "open", "v": 1, "s": 1, "host": "h", "pid": 1, "ps": 1, "boot": "b", "t": T0}
    runner = {"k": "runner", "r": 1, "info": {"kind": "grid", "scheme": "slurm"}}
    lines = [json.dumps(opening), json.dumps(runner)]
    ends = {"successful": 0, "out_of_memory": 0, "crashed": 0}
    for j in range(1, jobs + 1):
        registered = T0 + j * 0.05
        submitted = registered + rnd.random() * 5
        started = submitted + rnd.expovariate(1 / 120)
        finished = started + rnd.lognormvariate(5, 1)
        lines.append(
            f'{{"k":"job","j":{j},"name":"job{j}","dir":"job{j}","hash":"h{j}","r":1,'
            f'"t":{registered}}}'
        )
        lines.append(f'{{"k":"st","j":{j},"s":"submitted","t":{submitted}}}')
        lines.append(f'{{"k":"id","j":{j},"id":"{1000 + j}"}}')
        lines.append(f'{{"k":"st","j":{j},"s":"running","t":{started}}}')
        draw = rnd.random()
        if draw < 0.9:
            ends["successful"] += 1
            lines.append(f'{{"k":"end","j":{j},"s":"successful","code":0,"t":{finished}}}')
        elif draw < 0.95:
            ends["out_of_memory"] += 1
            lines.append(
                f'{{"k":"end","j":{j},"s":"crashed","code":137,"why":"out_of_memory",'
                f'"err":"oom-kill: memory limit reached\\nstep killed","t":{finished}}}'
            )
        else:
            ends["crashed"] += 1
            lines.append(
                f'{{"k":"end","j":{j},"s":"crashed","code":1,'
                f'"err":"Traceback (most recent call last):\\nValueError: bad input {j % 3}",'
                f'"t":{finished}}}'
            )
    lines.append(json.dumps({"k": "close", "s": 1, "t": T0 + jobs}))
    (folder / ".runner" / "journal.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ends
