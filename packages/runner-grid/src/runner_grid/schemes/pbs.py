"""PBS (PBS Pro / OpenPBS and Torque): the `Pbs` class, qsub flags, qstat queries and parsers."""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Optional

from runner_core import format_walltime, megabytes
from runner_grid._commands import batch_commands
from runner_grid._ids import base_id, last_id, task_key
from runner_grid._limits import Limits, QueueLimits
from runner_grid.schemes._base import Listing, Scheduler, scheme_keys
from runner_grid.schemes._common import (
    TRANSIENT_REFUSALS,
    End,
    combine_ends,
    current_user,
    directive_words,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from runner_core import Resources

__all__ = [
    "ARRAY_INDEX_VARS",
    "FINISHED_STATES",
    "PBSPRO_REASONS",
    "QSTAT_FINISHED",
    "QSTAT_UNKNOWN",
    "SUBMIT_FAULTS",
    "SUBSTATE_FAILED",
    "SUBSTATE_FINISHED",
    "SUBSTATE_TERMINATED",
    "TORQUE_REASONS",
    "Pbs",
    "array_args",
    "array_limit_commands",
    "cancel_commands",
    "check_commands",
    "check_error",
    "detect",
    "directive_resources",
    "exitcode_commands",
    "find_tag_commands",
    "getid",
    "limit_commands",
    "parse_array_limit",
    "parse_end",
    "parse_exitcode",
    "parse_limits",
    "parse_tag",
    "resource_args",
    "running",
    "scheme",
    "task_id",
    "torque_array_args",
    "torque_resource_args",
]

#: qstat state letters of jobs that have left the queue: C (Torque keeps completed jobs for
#: keep_completed seconds), F (PBS Pro finished, shown with -x) and X (finished array subjob).
#: Every other letter (Q, R, H, W, T, S, E, B, U, M...) counts as still queued.
FINISHED_STATES = frozenset({"C", "F", "X"})

_ID = re.compile(r"^\s*(\d+(?:\[\d*\])?(?:\.[A-Za-z0-9_.\-]+)?)\s*$")
_JOB_LINE = re.compile(r"^(\d+(?:\[\d*\])?(?:\.\S*)?)\s")
_HEADER = re.compile(r"^\s*(Job ?ID|Job id|-{3,}|[A-Za-z0-9_.\-]+:\s*$|\s+Req'd)", re.IGNORECASE)


def getid(output: str) -> Optional[str]:
    """Return the job id qsub printed, or None.

    PBS prints the id alone on a line: ``N.server`` (with the server's domain, or ``N[].server``
    for an array) or, on some sites, a bare ``N``. Lines are read from the last one up, so
    banners printed before the id do not matter.

    Args:
        output: everything qsub wrote to standard output.

    Returns:
        The id as printed, or None when the output holds none.
    """
    return last_id(output, _ID)


def check_commands(ids: Sequence[str]) -> list[list[str]]:
    """Return the qstat command: the whole queue in qstat's default format, array subjobs too.

    qstat's plain listing has no way to ask for several ids at once without failing on the ones
    that have finished ("Unknown Job Id"), so the whole queue is listed and the poller picks its
    own jobs out of it. ``-t`` lists each subjob of an array (``9[4].server``) besides the array
    itself (``9[].server``), so each task is released when it ends.

    Args:
        ids: the runner's jobs still believed to be queued (unused).

    Returns:
        A list with one argv.
    """
    del ids
    return [["qstat", "-t"]]


def running(output: str) -> list[str]:
    """Return the ids of the jobs still in the queue according to a qstat listing.

    Reads the default format (``Job ID  Name  User  Time Use S Queue``) and the alternative one
    of ``-a``/``-u`` (the state is the next-to-last column in both); header, separator, server
    and blank lines are skipped; ids lose their server suffix, and an array's own line its
    brackets (``123[].server`` -> ``123``), while a subjob keeps its index (``123[4].server`` ->
    ``123[4]``).

    Args:
        output: standard output of qstat.

    Returns:
        The ids of jobs whose state is not one of `FINISHED_STATES`, in order, without repeats.

    Raises:
        ValueError: a line is neither a header nor a job line (the check then counts as failed).
    """
    ids = {jobid: None for jobid, state in _listing(output) if state not in FINISHED_STATES}
    return list(ids)


def _listing(output: str) -> Iterator[tuple[str, str]]:
    """(id, state) for each job line of a qstat listing, the id without its server suffix.

    Raises:
        ValueError: a line is neither a header nor a job line.
    """
    for line in output.splitlines():
        if not line.strip() or _HEADER.match(line):
            continue
        match = _JOB_LINE.match(line)
        fields = line.split()
        if not match or len(fields) < 3:
            raise ValueError(f"qstat line {line!r} is neither a header nor a job line")
        listed = match.group(1)
        yield task_key(listed) or base_id(listed), fields[-2]


#: States of a job or subjob that has started: running, exiting, suspended.
STARTED_STATES = frozenset({"R", "E", "S", "U"})


def started(output: str) -> list[str]:
    """Return the ids of the jobs and subjobs that have started, from a qstat listing.

    The state column (next to last) is R (running), E (exiting), S or U (suspended); an
    array's own line (B, begun) is not a job that runs.

    Raises:
        ValueError: a line is neither a header nor a job line.
    """
    return list({jobid: None for jobid, state in _listing(output) if state in STARTED_STATES})


#: qstat's exit statuses that may be answers: some ids are unknown (153) or finished (35).
QSTAT_UNKNOWN, QSTAT_FINISHED = 153, 35
_GONE = (
    re.compile(r"^qstat: Unknown Job Id (\S+)$"),
    re.compile(r"^qstat: (\S+) Job has finished\b"),
)


def check_error(
    ids: Sequence[str], returncode: int, stdout: str, stderr: str
) -> Optional[list[str]]:
    """Tell qstat's "Unknown Job Id" and "Job has finished" answers apart from a real failure.

    Asked about jobs by id, qstat lists the ones it still has and exits 153 (unknown: finished
    with job history off, or never known) or 35 (finished, kept as history) for the others,
    naming each on standard error. That is an answer only when every line of standard error is
    such a message, standard output reads as a listing, and the ids listed and named are exactly
    the ids asked for: then the named ones have left the queue. Anything else (255 "cannot
    connect to server", another message, an id unaccounted for) is a failed check. The
    predefined check lists the whole queue and never gets these answers; a check of your own
    that names ids does.

    Args:
        ids: the ids the failed command asked about.
        returncode: its exit status.
        stdout: its standard output.
        stderr: its standard error.

    Returns:
        The asked-for ids qstat still lists as queued, when the failure is such an answer;
        else None (the check failed).
    """
    if returncode not in (QSTAT_UNKNOWN, QSTAT_FINISHED):
        return None
    gone: set[str] = set()
    for line in stderr.splitlines():
        if not line.strip():
            continue
        match = next((m for m in (p.match(line.strip()) for p in _GONE) if m), None)
        if match is None:
            return None
        gone.add(base_id(match.group(1)))
    try:
        queued = running(stdout)
    except ValueError:
        return None
    listed = {base_id(m.group(1)) for m in map(_JOB_LINE.match, stdout.splitlines()) if m}
    asked = {base_id(jobid) for jobid in ids}
    if not gone or not gone | listed <= asked or not asked <= gone | listed:
        return None
    return queued


_SUBJOB = re.compile(r"\[\d+\]")


def cancel_commands(ids: Sequence[str]) -> list[list[str]]:
    """Return the qdel commands that cancel the given jobs: one qdel per subjob, the rest batched.

    qdel merges the subjob ids it is given into ranges and can lose some on the way: on OpenPBS
    23.06 ``qdel 323[1].s 323[3].s 323[5].s`` exited 0 but the server received ``323[1,3].s``,
    and subjob 5 ran on. So each subjob (``9[4].server``) gets a qdel of its own; plain jobs and
    whole arrays (``9[].server``) share qdel commands batched to keep lines short.

    Args:
        ids: the ids to cancel, as qsub printed them or `task_id` made them.

    Returns:
        The argvs: first the batched ones, then one per subjob, in the order given.
    """
    subjobs = [jobid for jobid in ids if _SUBJOB.search(jobid)]
    others = [jobid for jobid in ids if not _SUBJOB.search(jobid)]
    return [*batch_commands(["qdel"], others), *(["qdel", jobid] for jobid in subjobs)]


def exitcode_commands(jobid: str) -> list[list[str]]:
    """Return the query for how a job ended: ``qstat -x -f``.

    PBS Pro reads ``-x`` as "include finished jobs" (job history, which the server keeps only
    with ``job_history_enable = True``) and prints ``Exit_status = N`` and ``substate = N``;
    Torque reads it as "XML output" and prints ``<exit_status>N</exit_status>`` while it keeps
    the completed job. `parse_end` reads both.

    Args:
        jobid: the job's id as qsub printed it (``12.server``, ``9[].server``).

    Returns:
        A list with one argv.
    """
    return [["qstat", "-x", "-f", jobid]]


#: PBS Pro's substates of a finished job (``substate = N`` in ``qstat -x -f``).
SUBSTATE_TERMINATED, SUBSTATE_FINISHED, SUBSTATE_FAILED = 91, 92, 93
#: PBS Pro's own (negative) ``Exit_status`` values that tell an end reason (JOB_EXEC_KILL_* of
#: its job.h): the job was killed for exceeding its mem, vmem, cput or walltime.
PBSPRO_REASONS = {-26: "out_of_memory", -27: "out_of_memory", -28: "timeout", -29: "timeout"}
#: Torque's (JOB_EXEC_OVERLIMIT_* in its documentation): mem, walltime, cput.
TORQUE_REASONS = {-10: "out_of_memory", -11: "timeout", -12: "timeout"}
#: qstat's state letters of finished jobs: F (PBS Pro history), X (finished array subjob), C
#: (Torque, kept for keep_completed seconds).
_ENDED = frozenset({"F", "X", "C"})

_TEXT_RECORD = re.compile(r"^(?=Job Id:)", re.MULTILINE)
_SUBJOB_RECORD = re.compile(r"^Job Id: \S*\[\d+\]")
#: The comment PBS Pro gives the stand-in record of a finished subjob that has no job of its own.
_STAND_IN_COMMENT = "Subjob finished"
_XML_RECORD = re.compile(r"<Job>(.*?)</Job>", re.DOTALL)


def _attribute(record: str, name: str) -> Optional[str]:
    """An attribute of a ``qstat -f`` record (``    name = value``) or a Torque XML one."""
    match = re.search(rf"^ +{name} = (.*?)\s*$", record, re.MULTILINE | re.IGNORECASE)
    if match is None:
        match = re.search(rf"<{name}>(.*?)</{name}>", record, re.IGNORECASE)
    return match.group(1).strip() if match else None


def _never_ran(record: str) -> bool:
    """Whether a finished record is PBS Pro's stand-in for a subjob that never ran.

    A subjob that starts becomes a job of its own, kept in the history with its ``exec_host``,
    even when it then fails at once. One that never started (deleted while queued, or its whole
    array deleted) has no job: ``qstat -x -f`` then shows the array's own record under the
    subjob's id, with its ``substate`` and ``Exit_status`` (93 and 1 for an array whose subjob
    failed, none while it runs), no ``exec_host`` and the comment "Subjob finished".
    """
    return (
        _SUBJOB_RECORD.match(record) is not None
        and _attribute(record, "exec_host") is None
        and _attribute(record, "comment") == _STAND_IN_COMMENT
    )


def _status_code(status: int) -> int:
    """The exit code of a non-negative Exit_status: 256 + signal gives 128 + signal, as a shell."""
    return 128 + status - 256 if status > 256 else status


def _end(record: str, torque: bool) -> Optional[End]:
    """(exit code, reason) of one job record, or None while the job has not finished."""
    state = _attribute(record, "job_state")
    raw = _attribute(record, "Exit_status")
    status = int(raw) if raw is not None and re.fullmatch(r"-?\d+", raw) else None
    if state is not None and state not in _ENDED:
        return None  # queued, running, exiting (E), moved to another server (M)...
    if state is None and status is None:
        return None
    if not torque and _never_ran(record):
        # Its substate and Exit_status are the array's, not its own: it was deleted unstarted.
        return 1, "cancelled"
    substate = None if torque else _attribute(record, "substate")  # Torque numbers its own
    if substate == str(SUBSTATE_TERMINATED):
        # Deleted (qdel): PBS Pro records Exit_status = 0 whatever the job's own status was.
        return (_status_code(status) if status and status > 0 else 1), "cancelled"
    if not status and substate == str(SUBSTATE_FAILED):
        # PBS Pro marks a job failed for a non-zero exit status, or when its node (mom) went
        # down while it ran; an array job is failed when one of its subjobs is.
        array = (_attribute(record, "array") or "").lower() == "true"
        return 1, None if array else "node_fail"
    if status is None:
        return 1, None
    if status < 0:
        return 1, (TORQUE_REASONS if torque else PBSPRO_REASONS).get(status)
    return _status_code(status), None


def parse_end(output: str) -> Optional[End]:
    """Return how a job ended according to a ``qstat -x -f`` answer, or None.

    PBS Pro keeps a finished job (``job_state = F``, ``X`` for an array subjob) only with job
    history on; its ``substate`` tells how it ended: 92 finished, 93 failed, 91 terminated
    (deleted with qdel: reason "cancelled", whatever ``Exit_status`` says, which is 0 then). A
    subjob deleted before it started has no record of its own: PBS shows its array's under the
    subjob's id (no ``exec_host``, comment "Subjob finished"), which gives "cancelled" too. A
    negative ``Exit_status`` is PBS's own code, not the job's: -29 (walltime) and -28 (cput) give
    "timeout", -27 (mem) and -26 (vmem) "out_of_memory"; a failed job without any exit status
    lost its node ("node_fail"). Torque's XML answer (``<job_state>C</job_state>``) reads the
    same way, with Torque's own codes (-11 walltime, -12 cput, -10 mem).

    The exit code: ``Exit_status`` as the job's status; 256 + signal gives 128 + signal, as a
    shell reports it. Where PBS does not report the job's own status, the code is 1 and the
    reason tells what happened: a deleted job (its recorded 0 is not the job's status; a
    non-zero one is kept), a negative Exit_status, no Exit_status at all (a job deleted before
    it ran, an array job). A job array ends when every record has; the first one that did not
    succeed then speaks for it.

    Args:
        output: standard output of `exitcode_commands`.

    Returns:
        ``(exit code, reason)``, or None while the job is queued, running, exiting or moved,
        and when the output holds no job (history off: empty output; unknown id).
    """
    torque = "<Data>" in output or "<Job>" in output
    if torque:
        records = _XML_RECORD.findall(output)
    else:
        records = [r for r in _TEXT_RECORD.split(output) if r.startswith("Job Id:")]
    return combine_ends([_end(record, torque) for record in records])


def parse_exitcode(output: str) -> Optional[int]:
    """Return the exit code `parse_end` reads from a ``qstat -x -f`` answer, or None.

    Args:
        output: standard output of `exitcode_commands`.

    Returns:
        The exit code, or None when the output holds no finished job.
    """
    end = parse_end(output)
    return None if end is None else end[0]


def detect(returncode: int, output: str) -> bool:
    """Return True when ``qsub --version`` printed a PBS version line.

    PBS Pro / OpenPBS print ``pbs_version = 2022.1.1``; Torque prints ``Version: 6.1.3``. Grid
    Engine's qsub rejects ``--version`` (and prints ``SGE``/``GE`` banners), so it never matches.
    """
    if returncode != 0 or re.search(r"\b(SGE|Grid ?Engine)\b", output):
        return False
    return bool(re.search(r"^\s*(pbs_version\s*=|Version:)\s*\d", output, re.MULTILINE))


# --- finding a job by its tag (a submission whose reply was lost) ---------------------------

#: What qsub prints when it queued nothing and trying again later may work, and when its
#: reply was lost so the job may be queued all the same (then it is looked up by its tag).
#: "retry": the generic `TRANSIENT_REFUSALS` ("Server temporarily unavailable, please try
#: again later", PBSE_RESCUNAV's "Resource temporarily unavailable", "Connection refused"),
#: then what OpenPBS's client library prints when it cannot connect (cnt2server: PBSE_PROTOCOL
#: "Communication failure.", PBSE_NOCONNECTS "Too many open connections.", then "qsub: cannot
#: connect to server S (errno=N)") and the server's refusals for now (PBSE_NOCONNECTS "No free
#: connections", PBSE_CONNFULL "Server connection table full", PBSE_SVRSHUT "Request not
#: allowed: Server shutting down"). "uncertain": a time-out, a connection lost mid-request
#: ("End of File", "Premature end of message", "Connection reset by peer") and PBSE_PROTOCOL's
#: "Batch protocol error" after the request was sent. Anything else ("Unknown queue",
#: "illegal -l value", "Job violates queue and/or server resource limits", "Bad UID for job
#: execution") is final.
SUBMIT_FAULTS = {
    "retry": [
        *TRANSIENT_REFUSALS,
        r"cannot connect to server",
        r"Communication failure",
        r"Too many open connections",
        r"No free connections",
        r"Server connection table full",
        r"Server shutting down",
        r"Server is busy",
    ],
    "uncertain": [
        r"[Tt]imed? ?out",
        r"End of File",
        r"Premature end of message",
        r"Connection reset by peer",
        r"Batch protocol error",
    ],
    "limit": [  # a queue's or the server's max_queued: "would exceed queue ...'s per-user limit"
        r"would exceed .*limit",
        r"Maximum number of jobs already in queue",
    ],
}


def find_tag_commands(tag: str) -> list[list[str]]:
    """Return the qselect commands that list the user's jobs named `tag` (the tag is the name).

    The second asks the job history too (``-x``, PBS Pro and OpenPBS), for a job that has
    ended already; where qselect has no ``-x`` (Torque) it fails, and the lookup then
    says it cannot tell, so the job is not submitted again.
    """
    return [["qselect", "-N", tag, "-u", current_user()], ["qselect", "-x", "-N", tag]]


def parse_tag(tag: str, returncode: int, stdout: str, stderr: str) -> Optional[str]:
    """Return the first id ``qselect`` printed (one per line), or None when it printed none.

    Raises:
        ValueError: qselect failed, so its answer tells nothing.
    """
    if returncode != 0:
        raise ValueError(stderr.strip() or f"qselect exited {returncode}")
    for line in stdout.splitlines():
        if line.strip():
            return line.strip()
    return None


# --- resources ------------------------------------------------------------------------------


def _walltime_args(resources: Resources) -> list[str]:
    if resources.walltime is None:
        return []
    return ["-l", f"walltime={format_walltime(resources.walltime, hour_digits=2)}"]


def _account_args(resources: Resources) -> list[str]:
    args: list[str] = []
    if resources.queue is not None:
        args += ["-q", resources.queue]
    if resources.account is not None:
        args += ["-A", resources.account]
    return args


def resource_args(resources: Resources) -> list[str]:
    """Return PBS Pro's qsub flags asking for a job's resources.

    ``-q`` queue, ``-A`` account, one ``-l select=<nodes>:ncpus=<cores>:mem=<MB>mb[:ngpus=N]``
    (a chunk per node, each with its share: ``ncpus``, ``mem`` and ``ngpus`` count per
    chunk; megabytes of 1024**2 bytes, rounded up) with ``-l place=scatter`` for more than
    one node, and ``-l walltime=HH:MM:SS``. Torque has no ``select``: use
    `torque_resource_args` there.

    Raises:
        ValueError: cores or GPUs are not a multiple of nodes.
    """
    args = _account_args(resources)
    cores, memory, gpus = (resources.per_node(key) for key in ("cores", "memory", "gpus"))
    if any(value is not None for value in (resources.nodes, cores, memory, gpus)):
        chunk = [str(resources.nodes or 1)]
        if cores is not None:
            chunk.append(f"ncpus={cores}")
        if memory is not None:
            chunk.append(f"mem={megabytes(memory)}mb")
        if gpus is not None:
            chunk.append(f"ngpus={gpus}")
        args += ["-l", "select=" + ":".join(chunk)]
        if (resources.nodes or 1) > 1:
            args += ["-l", "place=scatter"]
    return args + _walltime_args(resources)


def torque_resource_args(resources: Resources) -> list[str]:
    """Return Torque's qsub flags asking for a job's resources.

    ``-q`` queue, ``-A`` account, ``-l nodes=<nodes>:ppn=<cores per node>[:gpus=N]``,
    ``-l mem=<MB>mb`` (the job's total), ``-l walltime=HH:MM:SS``. Set
    ``runner.settings.commands.resources`` to it on Torque.

    Raises:
        ValueError: cores or GPUs are not a multiple of nodes.
    """
    args = _account_args(resources)
    cores, gpus = resources.per_node("cores"), resources.per_node("gpus")
    if any(value is not None for value in (resources.nodes, cores, gpus)):
        spec = [str(resources.nodes or 1)]
        if cores is not None:
            spec.append(f"ppn={cores}")
        if gpus is not None:
            spec.append(f"gpus={gpus}")
        args += ["-l", "nodes=" + ":".join(spec)]
    if resources.memory is not None:
        args += ["-l", f"mem={megabytes(resources.memory)}mb"]
    return args + _walltime_args(resources)


#: ``-l`` resources of a ``#PBS`` line, by the run flags they set: a ``select`` (or Torque's
#: ``nodes``) is replaced whole by one from run flags.
_DIRECTIVE_LIMITS = {
    "select": ("nodes", "cores", "memory", "gpus"),
    "nodes": ("nodes", "cores", "gpus"),
    "ncpus": ("cores",),
    "mem": ("memory",),
    "ngpus": ("gpus",),
    "walltime": ("walltime",),
}


def directive_resources(line: str) -> list[str]:
    """Return the resources a ``#PBS`` line sets (``#PBS -l walltime=1:00:00`` -> walltime).

    A ``select`` sets nodes, cores, memory and GPUs together: a select from run flags
    replaces all of it. ``-q`` sets the queue and ``-A`` the account.
    """
    found: list[str] = []
    words = directive_words(line, "#PBS")
    for option, value in zip(words, [*words[1:], ""]):
        keys: tuple[str, ...] = {"-q": ("queue",), "-A": ("account",)}.get(option, ())
        if option == "-l":
            names = [part.split("=", 1)[0].strip() for part in value.split(",")]
            keys = tuple(key for name in names for key in _DIRECTIVE_LIMITS.get(name, ()))
        found += [key for key in dict.fromkeys(keys) if key not in found]
    return found


# --- job arrays ---------------------------------------------------------------------------

#: The variables that hold a subjob's index: PBS Pro / OpenPBS's, then Torque's.
ARRAY_INDEX_VARS = ("PBS_ARRAY_INDEX", "PBS_ARRAYID")
_MAX_ARRAY_SIZE = re.compile(r"^\s*max_array_size = (\d+)\s*$", re.MULTILINE)


def array_args(size: int, throttle: int) -> list[str]:
    """Return the qsub flag of an array of subjobs 1 to `size`, `throttle` at most running at once.

    PBS Pro's ``-J 1-N``, with ``%M`` for a throttle (``-J 1-N%M`` sets the array's
    ``max_run_subjobs``; OpenPBS and PBS Pro have it since 2020). A throttle of 0 gives no
    ``%``: PBS accepts ``-J 1-N%0`` and then never runs a subjob. Torque spells arrays ``-t``:
    set ``commands.array`` to `torque_array_args` there; on an older PBS Pro without ``%``, set
    ``array.throttle`` to False (the runner then holds jobs back itself).

    Args:
        size: the number of subjobs.
        throttle: the most subjobs running at once, 0 for no limit.
    """
    return ["-J", f"1-{size}" + (f"%{throttle}" if throttle > 0 else "")]


def torque_array_args(size: int, throttle: int) -> list[str]:
    """Return Torque's qsub flag of an array of tasks 1 to `size`: ``-t 1-N`` or ``-t 1-N%T``.

    Like `array_args`, a throttle of 0 gives no ``%`` (``%0`` would run nothing).
    """
    return ["-t", f"1-{size}" + (f"%{throttle}" if throttle > 0 else "")]


def task_id(array_id: str, index: int) -> str:
    """Return the id of subjob `index` of the array qsub printed as `array_id`.

    ``9[].server`` gives ``9[4].server`` (the form qstat, qdel and ``qstat -x -f`` take).
    """
    head, bracket, rest = array_id.partition("[]")
    if not bracket:
        head, dot, rest = array_id.partition(".")
        rest = dot + rest
    return f"{head}[{index}]{rest}"


def array_limit_commands() -> list[list[str]]:
    """Return the query for the largest array the server takes: ``qstat -B -f``."""
    return [["qstat", "-B", "-f"]]


def parse_array_limit(output: str) -> Optional[int]:
    """Return the server's ``max_array_size`` from ``qstat -B -f``, or None when it shows none."""
    match = _MAX_ARRAY_SIZE.search(output)
    return int(match.group(1)) if match else None


# --- limits ---------------------------------------------------------------------------------

_QUEUE = re.compile(r"^(?=Queue: )", re.MULTILINE)
_QUEUE_ATTRIBUTE = re.compile(r"^\s+([\w.]+) = (.*?)\s*$", re.MULTILINE)
_DEFAULT_QUEUE = re.compile(r"^\s+default_queue = (\S+)\s*$", re.MULTILINE)
_PBS_SIZE = re.compile(r"^(\d+)([kmgtp]?)b?$", re.IGNORECASE)
#: One entity's count in a PBS Pro limit attribute: ``[u:PBS_GENERIC=20]``, ``[o:PBS_ALL=500]``.
_LIMIT_ENTRY = re.compile(r"\[([ugpo]):([^=\]]+)=(\d+)\]")


def limit_commands() -> list[list[str]]:
    """Return the queries for the limits: ``qstat -Bf`` (the default queue), then ``qstat -Qf``."""
    return [["qstat", "-Bf"], ["qstat", "-Qf"]]


def _queue_limit(name: str, attributes: Mapping[str, str], key: str) -> Optional[int]:
    """One queue's ``resources_max.walltime`` in seconds or ``.mem`` in bytes; None: no limit.

    Raises:
        ValueError: a value is not understood (sizes in words among them).
    """
    value = attributes.get(f"resources_max.{key}")
    if value is None:
        return None
    if key == "walltime":
        seconds = 0
        for part in value.split(":"):
            if not part.isdigit():
                raise ValueError(f"queue {name!r}: resources_max.walltime = {value}")
            seconds = seconds * 60 + int(part)
        return seconds
    match = _PBS_SIZE.match(value)
    if match is None:
        raise ValueError(f"queue {name!r}: resources_max.mem = {value} is not understood")
    return int(match.group(1)) << (10 * ("KMGTP".find(match.group(2).upper()) + 1))


def _queued_limit(attributes: Mapping[str, str], user: str) -> Optional[int]:
    """The most jobs of `user` a server or queue takes queued, or None (none, or not read).

    PBS Pro's ``max_queued``: the user's own ``[u:NAME=N]``, else ``[u:PBS_GENERIC=N]``, and
    ``[o:PBS_ALL=N]`` (all users' jobs: a bound on ours too); Torque's ``max_user_queuable``
    and ``max_queuable``. The lowest counts; group and project limits are not read.
    """
    entries = _LIMIT_ENTRY.findall(attributes.get("max_queued", ""))
    users = {name: int(n) for kind, name, n in entries if kind == "u"}
    counts = [users.get(user, users.get("PBS_GENERIC", 0))]
    counts += [int(n) for kind, name, n in entries if kind == "o" and name == "PBS_ALL"]
    counts += [
        int(attributes[key])
        for key in ("max_user_queuable", "max_queuable")
        if attributes.get(key, "").isdigit()
    ]
    counts = [n for n in counts if n > 0]
    return min(counts) if counts else None


def parse_limits(output: str) -> Limits:
    """Return each execution queue's ``resources_max.walltime`` and ``.mem`` from ``qstat -Qf``.

    The default queue is the server's ``default_queue`` (``qstat -Bf``, printed first). Memory
    is the job's total (sizes 1024-based: ``4gb``); a queue without ``resources_max`` has no
    limit. Routing queues are left out (their jobs go elsewhere: they are not checked), and
    so are the server's own ``resources_max``. The submit limits (`Limits.submit`): the
    server's ``max_queued`` for the user (``"user"``) and each execution queue's
    (``"queue:NAME"``), read by `_queued_limit`; an array counts as its subjobs (so the
    runner never goes over, should PBS count it once).

    Raises:
        ValueError: the output names no queue, or a limit is not understood.
    """
    queues: dict[str, QueueLimits] = {}
    user = current_user()
    chunks = _QUEUE.split(output)
    submit: dict[str, int] = {}
    for chunk in chunks:
        head, _, body = chunk.partition("\n")
        if not head.startswith("Queue: "):
            continue
        name = head[len("Queue: ") :].strip()
        attributes = dict(_QUEUE_ATTRIBUTE.findall(body))
        if attributes.get("queue_type", "").lower().startswith("route"):
            continue
        queues[name] = QueueLimits(
            _queue_limit(name, attributes, "walltime"), _queue_limit(name, attributes, "mem")
        )
        queued = _queued_limit(attributes, user)
        if queued is not None:
            submit[f"queue:{name}"] = queued
    if not queues:
        raise ValueError(f"qstat -Qf named no execution queue: {output[:200]!r}")
    default = _DEFAULT_QUEUE.search(chunks[0])
    server = _queued_limit(dict(_QUEUE_ATTRIBUTE.findall(chunks[0])), user)
    if server is not None:
        submit["user"] = server
    return Limits(
        queues,
        default.group(1) if default else None,
        "queue",
        "walltime",
        "mem",
        "job",
        submit=MappingProxyType(submit),
    )


def scheme() -> dict[str, Any]:
    """Return a fresh copy of the PBS scheme (what ``GridRunner.config.pbs`` holds).

    Its keys come from `Pbs`'s attributes and its commands are this module's functions.
    PBS Pro has no working-directory flag (Torque's is ``-d``), so ``workdir`` is None here and
    the job wrapper changes into the job's folder itself; Torque users may set it to ``"-d"``,
    and ``commands.resources`` (the resource run flags as PBS Pro's ``select``,
    `resource_args`) to `torque_resource_args`.
    ``commands.limits`` and ``commands.parse_limits`` read the queues' limits (`parse_limits`).
    """
    return {
        **scheme_keys(Pbs),
        "commands": {
            "submit": Pbs.submit_command,
            "getid": getid,
            "check": check_commands,
            "running": running,
            "started": started,
            "check_error": check_error,
            "cancel": cancel_commands,
            "exitcode": exitcode_commands,
            "parse_exitcode": parse_exitcode,
            "parse_end": parse_end,
            "probe": Pbs().probe_argv(),
            "detect": detect,
            "find_tag": find_tag_commands,
            "parse_tag": parse_tag,
            "array": array_args,
            "task_id": task_id,
            "array_limit": array_limit_commands,
            "parse_array_limit": parse_array_limit,
            "resources": resource_args,
            "directive_resources": directive_resources,
            "limits": limit_commands,
            "parse_limits": parse_limits,
        },
    }


class Pbs(Scheduler):
    """PBS (PBS Pro / OpenPBS, and Torque): qsub, qstat, qselect, qdel; this module's parsers.

    Subclass it to change one part for a site; every composed method of
    `runner_grid.Scheduler` then uses the override.
    """

    name = "pbs"
    submit_command: Sequence[str] = "qsub"
    workdir_flag: Optional[str] = None
    output_flag: Optional[str] = "-o"
    error_flag: Optional[str] = "-e"
    special: Mapping[str, str] = MappingProxyType(
        {
            "select": "-l select=",
            "name": "-N ",
        }
    )
    tag_flag: Optional[str] = "-N "
    probe_command: Optional[Sequence[str]] = ("qsub", "--version")
    check_timeout: float = 60.0
    exitcode_wait: float = 5.0
    submit_faults: Mapping[str, tuple[str, ...]] = MappingProxyType(
        {kind: tuple(patterns) for kind, patterns in SUBMIT_FAULTS.items()}
    )
    array_index: tuple[str, ...] = ARRAY_INDEX_VARS
    array_output_index: Optional[str] = "^array_index^"
    array_throttle: bool = True

    def parse_id(self, output: str) -> Optional[str]:
        """`getid`."""
        return getid(output)

    def check_argvs(self, ids: Sequence[str]) -> list[list[str]]:
        """`check_commands`."""
        return check_commands(ids)

    def parse_listing(self, output: str) -> Listing:
        """`running` and `started` of the same listing."""
        return Listing(running(output), started(output))

    def check_error(
        self, ids: Sequence[str], returncode: int, stdout: str, stderr: str
    ) -> Optional[list[str]]:
        """`check_error`: qstat's "Unknown Job Id" and "Job has finished" answers."""
        return check_error(ids, returncode, stdout, stderr)

    def end_argvs(self, jobid: str) -> list[list[str]]:
        """`exitcode_commands`: qstat -x -f."""
        return exitcode_commands(jobid)

    def parse_end(self, output: str) -> Optional[End]:
        """`parse_end`."""
        return parse_end(output)

    def cancel_argvs(self, ids: Sequence[str]) -> list[list[str]]:
        """`cancel_commands`."""
        return cancel_commands(ids)

    def find_tag_argvs(self, tag: str) -> list[list[str]]:
        """`find_tag_commands`."""
        return find_tag_commands(tag)

    def parse_tag(self, tag: str, returncode: int, stdout: str, stderr: str) -> Optional[str]:
        """`parse_tag`."""
        return parse_tag(tag, returncode, stdout, stderr)

    def array_args(self, count: int, throttle: int) -> list[str]:
        """`array_args`."""
        return array_args(count, throttle)

    def task_id(self, array_id: str, index: int) -> str:
        """`task_id`."""
        return task_id(array_id, index)

    def array_limit_argvs(self) -> list[list[str]]:
        """`array_limit_commands`."""
        return array_limit_commands()

    def parse_array_limit(self, output: str) -> Optional[int]:
        """`parse_array_limit`."""
        return parse_array_limit(output)

    def detect(self, returncode: int, output: str) -> bool:
        """`detect`."""
        return detect(returncode, output)

    def resource_args(self, resources: Resources) -> list[str]:
        """`resource_args` (PBS Pro's select)."""
        return resource_args(resources)

    def directive_resources(self, line: str) -> list[str]:
        """`directive_resources`."""
        return directive_resources(line)

    def limit_argvs(self) -> list[list[str]]:
        """`limit_commands`."""
        return limit_commands()

    def parse_limits(self, output: str) -> Limits:
        """`parse_limits`."""
        return parse_limits(output)
