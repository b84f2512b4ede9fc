"""The typed contract of a scheduler family: the primitives a family gives, the rest done once."""

from __future__ import annotations

import logging
import os
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, Optional, Protocol, Union

from runner_core import RESOURCE_KEYS, Resources
from runner_grid._commands import (
    SchedulerCommandError,
    build_submit_argv,
    flag_args,
    format_command,
    run_query,
    split_command,
)
from runner_grid._commands import new_tag as tag_for_name
from runner_grid._limits import Limits, refusal
from runner_grid.schemes._common import End

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Mapping, Sequence

__all__ = ["DEFAULT_MAX_ARRAY_SIZE", "End", "Listing", "Scheduler", "scheme_keys"]

logger = logging.getLogger(__name__)

#: Tasks per array when neither the scheduler class nor the scheduler says how many it takes.
DEFAULT_MAX_ARRAY_SIZE = 1000


class Site(Protocol):
    """Another host the commands run on, and the jobs' files (`runner_grid._site.RemoteSite`)."""

    def run(
        self, argv: Sequence[str], *, timeout: Optional[float] = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` there; raise `SchedulerCommandError` when it cannot tell the outcome."""
        ...  # pragma: no cover - a protocol

    def remote_path(self, path: str) -> str:
        """The path there of a local path in a run folder."""
        ...  # pragma: no cover - a protocol

    def put(self, paths: Sequence[str]) -> None:
        """Copy local folders to their places there."""
        ...  # pragma: no cover - a protocol


class Listing(NamedTuple):
    """What one queue check tells: the ids still queued, and those among them that started."""

    queued: list[str]
    """Ids the check lists as still in the queue, as the parser gives them (array tasks
    each by their own id: ``123_4``, ``123.4``, ``9[4]``)."""
    started: list[str]
    """Ids among them the listing shows as started (running); may be empty when the
    listing does not tell (the job's own record of its start then counts)."""


def _brief(argv: Sequence[str], most: int = 10) -> str:
    """A command for the log, its arguments cut after `most`: ``scancel 1 2 ... (1000 ids)``."""
    if len(argv) <= most + 2:
        return format_command(argv)
    return f"{format_command(argv[:most])} ... ({len(argv) - 1} arguments)"


class Scheduler:
    """The typed contract of a scheduler family (SLURM, Grid Engine, PBS, or your own).

    A family overrides the primitives (what a command looks like, how to read what it
    printed) and sets the class attributes; the composed methods (`how_ended`, `cancel`,
    `find_tag`, `max_array_size`, `submit_argv`, `new_tag`, `check_runflags`,
    `directive_overrides`) are written once here from them, and every command runs
    through `run`. A primitive a family does not override means the scheduler cannot do
    that: `tells_reasons`, `can_cancel`, `can_find_tags`, `has_arrays` and
    `maps_resources` say so.

    The predefined families are `runner_grid.schemes.slurm.Slurm`,
    `runner_grid.schemes.sge.GridEngine` and `runner_grid.schemes.pbs.Pbs`; a PLAMS-style
    scheme Settings is adapted into this contract by `runner_grid.Scheme`.

    Attributes:
        name: the scheduler's name, for messages and the journal.
        check_timeout: seconds a check, cancel, end or tag query may run.
        submit_timeout: seconds the submit command may run.
        exitcode_wait: seconds to keep asking how a job ended that wrote no exit code
            (accounting written late).
        unset_env: environment variable names dropped from every command's environment
            (a trailing ``*`` matches any suffix: ``SQUEUE_*``).
        directives: what a scheduler directive line of a runscript starts with
            (``"#SBATCH"``); empty: the job wrapper's default set.
        submit_retries, submit_backoff: tries after the first for a transient submit
            fault, and the first wait between two (doubled each time, at most 60 s).
        submit_faults: ``{"retry": (...), "uncertain": (...)}``, regular expressions
            telling a failed submission's output apart (see `runner_grid._submitter`).
        array_index: the variables a task of a job array finds its index in (the first
            one set wins); empty when the scheduler has no job arrays.
        array_output_index: what the scheduler replaces with a task's index in its output
            paths (``"%a"``), or None.
        array_throttle: whether `array_args` can cap the tasks running at once.
        array_max_size: the most tasks of one array, or None (ask the scheduler).
        submit_command: the submit command, a string (split as a shell would) or a
            sequence of arguments.
        workdir_flag, output_flag, error_flag: the submit flags naming the job's folder,
            output file and error file, or None when there is none.
        special: runflag name -> flag prefix (see `runner_grid._commands.flag_args`). A
            resource key named here (``memory``) stays this flag, not a resource.
        long_flags: whether a plain runflag of several letters becomes ``--key=value``.
        tag_flag: the flag prefix carrying a job's tag in its submission, or None.
        probe_command: what ``grid="auto"`` runs to tell the scheduler is here, or None
            for the submit command with ``--version``.
    """

    name: str = "custom"
    check_timeout: float = 60.0
    submit_timeout: float = 120.0
    exitcode_wait: float = 0.0
    unset_env: tuple[str, ...] = ()
    directives: tuple[str, ...] = ()
    submit_retries: int = 3
    submit_backoff: float = 2.0
    submit_faults: Mapping[str, tuple[str, ...]] = MappingProxyType({})
    array_index: tuple[str, ...] = ()
    array_output_index: Optional[str] = None
    array_throttle: bool = False
    array_max_size: Optional[int] = None
    submit_command: Union[str, Sequence[str]] = ()
    workdir_flag: Optional[str] = None
    output_flag: Optional[str] = None
    error_flag: Optional[str] = None
    special: Mapping[str, str] = MappingProxyType({})
    long_flags: bool = False
    tag_flag: Optional[str] = None
    probe_command: Optional[Sequence[str]] = None

    #: Where the commands run: None on this machine; a `GridRunner` with a ``host`` sets its
    #: remote site here (an object with ``run(argv, *, timeout)``, as `run` below).
    site: Optional[Site] = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} scheduler {self.name!r}>"

    def _implements(self, *names: str) -> bool:
        """Whether this class overrides every one of the primitives `names`."""
        return all(getattr(type(self), n) is not getattr(Scheduler, n) for n in names)

    # --- the one place a scheduler command runs ---------------------------------------

    def environment(self) -> dict[str, str]:
        """Return the environment scheduler commands run in: ours minus `unset_env`.

        Returns:
            A new mapping.
        """
        patterns = self.unset_env
        exact = {p for p in patterns if not p.endswith("*")}
        prefixes = tuple(p[:-1] for p in patterns if p.endswith("*"))
        return {
            k: v
            for k, v in os.environ.items()
            if k not in exact and not (prefixes and k.startswith(prefixes))
        }

    def run(
        self, argv: Sequence[str], *, timeout: Optional[float] = None
    ) -> subprocess.CompletedProcess[str]:
        """Run one scheduler command (no shell, no stdin, a session of its own), capturing output.

        Every command runner_grid runs for a scheduler goes through here: submits,
        checks, end queries, cancels, tag look-ups, limit queries and probes.

        Args:
            argv: the command.
            timeout: seconds before it is killed; None: `check_timeout`.

        Returns:
            The finished process (any exit status); output decoded, bad bytes replaced.

        Raises:
            SchedulerCommandError: the command could not be started or ran past the time-out.
        """
        seconds = self.check_timeout if timeout is None else timeout
        if self.site is not None:
            logger.debug("%s runs on %r: %s", self.name, self.site, _brief(argv))
            return self.site.run(argv, timeout=seconds)
        logger.debug("%s runs: %s", self.name, _brief(argv))
        return run_query(argv, self.environment(), seconds)

    # --- submitting ---------------------------------------------------------------------

    def _submit_layout(self) -> dict[str, Any]:
        """The submit command's layout as the mapping `build_submit_argv` reads."""
        return {
            "workdir": self.workdir_flag,
            "output": self.output_flag,
            "error": self.error_flag,
            "special": self.special,
            "long_flags": self.long_flags,
            "commands": {"submit": self.submit_command or None},
        }

    def submit_argv(  # noqa: PLR0917 - GridRunner.call's five, and the tag
        self,
        script: str,
        workdir: str,
        out: Optional[str],
        err: str,
        runflags: Mapping[str, Any],
        tag: Optional[str] = None,
    ) -> list[str]:
        """Return the submit command of one job (see `runner_grid.build_submit_argv`).

        Args:
            script: path of the script to submit (last argument).
            workdir: the job's folder.
            out: file for the job's stdout, or None when the script redirects it itself.
            err: file for the job's stderr.
            runflags: the job's ``settings.run``: its own submit flags.
            tag: the job's tag (from `new_tag`), carried by `tag_flag`, or None.

        Returns:
            The argv.

        Raises:
            ValueError: a path, flag or value holds a NUL byte, or there is no submit command.
            TypeError: a runflag's value cannot become an argument.
        """
        tag_args = [] if tag is None else flag_args("tag", tag, {"tag": self.tag_flag or ""})
        resources, rest = self.split_runflags(runflags)
        return build_submit_argv(
            self._submit_layout(),
            script,
            workdir,
            out,
            err,
            runflags=rest,
            tag_args=tag_args,
            resource_args=self._resource_args(resources),
        )

    def runflag_args(self, runflags: Mapping[str, Any]) -> list[str]:
        """Return the arguments the runflags alone add to a submission (to group jobs by).

        The resources' flags come first, always in the same order and form (``memory="4G"``
        and ``memory=4 * 1024**3`` give the same), so jobs asking the same group together.

        Raises:
            ValueError, TypeError: as `submit_argv`.
        """
        resources, rest = self.split_runflags(runflags)
        return [
            *self._resource_args(resources),
            *(
                arg
                for key, value in rest.items()
                for arg in flag_args(str(key), value, self.special, long_flags=self.long_flags)
            ),
        ]

    # --- resources: cores, memory, walltime... as this scheduler's flags -------------------

    @property
    def maps_resources(self) -> bool:
        """Whether the scheduler maps the resource run flags itself (`resource_args`).

        Without, every run flag is a flag as it is (a special key's prefix, or ``-key
        value``), as schemes did before resources.
        """
        return self._implements("resource_args")

    def resource_args(self, resources: Resources) -> list[str]:
        """Return the submit flags asking for `resources` (``--mem=4096M``, ``-l h_rt=...``).

        Raises:
            ValueError: the scheduler cannot give a resource asked for, naming it and what
                to do instead.
            NotImplementedError: the scheduler does not map resources (`maps_resources`).
        """
        raise NotImplementedError(f"{type(self).__name__} does not map resources")

    def directive_resources(self, line: str) -> list[str]:
        """Return the resources a directive line of a runscript sets (``["memory"]``).

        Names from `runner_core.RESOURCE_KEYS` (``queue`` for a partition); [] for a line
        that sets none or is not this scheduler's (the default: no line is read).
        """
        del line
        return []

    def split_runflags(self, runflags: Mapping[str, Any]) -> tuple[Resources, dict[str, Any]]:
        """Return a job's resources and the run flags that are flags as they are.

        Without `maps_resources` every run flag is one of the others (no resources); a
        resource key named in `special` is one of the others too, so a scheme's own
        prefix for it wins.

        Raises:
            ValueError: a resource that does not parse (see `runner_core.Resources.split`).
        """
        if not self.maps_resources:
            return Resources(), dict(runflags)
        special = self.special
        mine = {k: v for k, v in runflags.items() if k in RESOURCE_KEYS and k not in special}
        resources, _ = Resources.split(mine)
        return resources, {k: v for k, v in runflags.items() if k not in mine}

    def _resource_args(self, resources: Resources) -> list[str]:
        return self.resource_args(resources) if self.maps_resources else []

    def check_runflags(self, runflags: Mapping[str, Any]) -> None:
        """Refuse resources that do not parse or that the scheduler cannot give.

        What `GridRunner.check_runflags` asks, so that ``job.run()`` raises in the caller.

        Raises:
            ValueError: naming the run flag, its value and a good one.
        """
        self._resource_args(self.split_runflags(runflags)[0])

    def directive_overrides(
        self, runflags: Mapping[str, Any], directives: Sequence[str]
    ) -> list[str]:
        """Return a note for each resource a run flag and a directive line both set.

        The run flag wins: SLURM, Grid Engine and PBS let a flag of the submit command
        override the script's directives (and the job wrapper copies the directives, so
        that holds for it too). Each note names the run flag and the line.

        Raises:
            ValueError: a resource that does not parse.
        """
        if not directives or not self.maps_resources:
            return []
        self.split_runflags(runflags)  # a value that does not parse is refused here too
        special = self.special
        given = [
            (key, value)
            for key, value in runflags.items()
            if key in RESOURCE_KEYS
            and key not in special
            and value is not None
            and value is not False
        ]
        notes = []
        for line in directives:
            set_here = set(self.directive_resources(line))
            notes += [
                f"run flag {key}={value!r} overrides the runscript's directive {line!r} "
                "(the submit command's flags win over directives)"
                for key, value in given
                if ("queue" if key == "partition" else key) in set_here
            ]
        return notes

    def new_tag(self, runscript: str, runflags: Mapping[str, Any]) -> Optional[str]:
        """Return a fresh tag for one submission, or None when it carries none.

        None when the scheduler has no `tag_flag` or cannot look tags up, and when one of
        the job's own runflags sets the tag's flag (a job name of the user's wins; the job
        then cannot be looked up by a tag).

        Args:
            runscript: the runscript's file name (the tag starts with its stem).
            runflags: the job's ``settings.run``.
        """
        flag = self.tag_flag
        if not flag or not self.can_find_tags:
            return None
        head = flag.split()[0] if any(c.isspace() for c in flag) else flag
        for key, value in self.split_runflags(runflags)[1].items():
            args = flag_args(str(key), value, self.special, long_flags=self.long_flags)
            if args and (args[0] == head if head != flag else args[0].startswith(flag)):
                return None
        stem = runscript[: -len(".run")] if runscript.endswith(".run") else runscript
        return tag_for_name(stem)

    def parse_id(self, output: str) -> Optional[str]:
        """Return the job id the submit command printed (its whole stdout), or None."""
        raise NotImplementedError(f"{type(self).__name__} must define parse_id")

    # --- the queue ----------------------------------------------------------------------

    def check_argvs(self, ids: Sequence[str]) -> list[list[str]]:
        """Return the commands that list which of `ids` are still queued (pin the format)."""
        raise NotImplementedError(f"{type(self).__name__} must define check_argvs")

    def parse_listing(self, output: str) -> Listing:
        """Read a check command's stdout.

        Raises:
            ValueError, TypeError: the output cannot be read (the check then counts as
                failed and releases no job).
        """
        raise NotImplementedError(f"{type(self).__name__} must define parse_listing")

    def check_error(
        self, ids: Sequence[str], returncode: int, stdout: str, stderr: str
    ) -> Optional[list[str]]:
        """Return the ids still queued when a check that exited non-zero is an answer, else None.

        The default: every non-zero exit is a failed check.
        """
        del ids, returncode, stdout, stderr
        return None

    # --- how a job ended ----------------------------------------------------------------

    @property
    def tells_reasons(self) -> bool:
        """Whether `how_ended` gives end reasons (so it is worth asking about a job that wrote
        a non-zero exit code itself)."""
        return self._implements("end_argvs", "parse_end")

    def ended_in_part(self, stderr_tail: str) -> bool:
        """Whether a job that exited 0 says in its stderr that the scheduler killed part of it.

        The end of the job's stderr file (its last few KiB). True makes the runner ask
        `how_ended` about the job, whose answer (a reason) then wins over the exit code 0:
        a job whose program was killed out of memory while its script went on is not a
        success. The default: False (nothing is asked about a job that exited 0).
        """
        del stderr_tail
        return False

    def end_argvs(self, jobid: str) -> list[list[str]]:
        """Return the queries, tried in turn, for how a job ended; [] when it cannot be asked."""
        del jobid
        return []

    def parse_end(self, output: str) -> Optional[End]:
        """Return ``(exit code, reason)`` from an end query's stdout, or None while not final."""
        del output
        return None

    def how_ended(self, jobid: str) -> Optional[End]:
        """Ask the scheduler how a job ended: each of `end_argvs` in turn, the first that tells.

        A query that cannot run or exits non-zero is skipped.

        Returns:
            ``(exit code, reason)``, or None when no record tells (yet).
        """
        for argv in self.end_argvs(jobid):
            try:
                proc = self.run(argv)
            except SchedulerCommandError as exc:
                logger.debug("exit-code query for job %s failed: %s", jobid, exc)
                continue
            if proc.returncode != 0:
                continue
            end = self.parse_end(proc.stdout)
            if end is not None:
                code, reason = end
                if isinstance(code, int) and not isinstance(code, bool):
                    return code, reason
        return None

    # --- cancelling ---------------------------------------------------------------------

    @property
    def can_cancel(self) -> bool:
        """Whether the scheduler has a cancel command."""
        return self._implements("cancel_argvs")

    def cancel_argvs(self, ids: Sequence[str]) -> list[list[str]]:
        """Return the commands that cancel `ids` (batched to keep lines short)."""
        del ids
        return []

    def cancel(self, ids: Sequence[str]) -> bool:
        """Run the cancel commands for `ids`, logging what was cancelled.

        A command that ran but failed counts as done (the scheduler refuses to cancel jobs
        that have just ended): it is logged as a warning.

        Returns:
            False when a command could not run, or the scheduler cannot cancel.
        """
        if not self.can_cancel:
            logger.warning(
                "scheme %r has no cancel command (commands.cancel): jobs %s stay in the queue",
                self.name,
                " ".join(ids),
            )
            return False
        ran = True
        for argv in self.cancel_argvs(ids):
            command = _brief(argv)
            try:
                proc = self.run(argv)
            except SchedulerCommandError as exc:
                logger.error("could not cancel jobs: %s", exc)
                ran = False
                continue
            if proc.returncode == 0:
                logger.warning("cancelled grid jobs: %s", command)
            else:
                logger.warning(
                    "%s exited with status %d (jobs that had just ended cannot be cancelled): %s",
                    command,
                    proc.returncode,
                    proc.stderr.strip(),
                )
        return ran

    # --- tags (finding a job whose submit reply was lost) -------------------------------

    @property
    def can_find_tags(self) -> bool:
        """Whether a job can be looked up by its tag (`find_tag`)."""
        return self._implements("find_tag_argvs", "parse_tag")

    def find_tag_argvs(self, tag: str) -> list[list[str]]:
        """Return the commands, tried in turn, that search the queue (and history) for `tag`."""
        del tag
        return []

    def parse_tag(self, tag: str, returncode: int, stdout: str, stderr: str) -> Optional[str]:
        """Return the id of the job found under `tag` in one answer, None for none.

        Raises:
            ValueError: the answer does not tell (the command failed).
        """
        del tag, returncode, stdout, stderr
        return None

    def find_tag(self, tag: str) -> Optional[str]:
        """Return the id of the job queued under `tag`, or None when none is.

        Raises:
            SchedulerCommandError: the scheduler cannot look tags up, or a look-up command
                could not run or did not tell.
        """
        if not self.can_find_tags:
            raise SchedulerCommandError(
                f"scheme {self.name!r} cannot look a job up by its tag (it has no "
                "commands.find_tag/parse_tag)"
            )
        for argv in self.find_tag_argvs(tag):
            proc = self.run(argv)
            try:
                found = self.parse_tag(tag, proc.returncode, proc.stdout, proc.stderr)
            except ValueError as exc:
                raise SchedulerCommandError(
                    f"{format_command(argv)} exited {proc.returncode} and did not tell: {exc}"
                ) from exc
            if found:
                return str(found)
        return None

    # --- arrays -------------------------------------------------------------------------

    @property
    def has_arrays(self) -> bool:
        """Whether the scheduler has job arrays (`array_index`, `array_args`, `task_id`)."""
        return bool(self.array_index) and self._implements("array_args", "task_id")

    def array_args(self, count: int, throttle: int) -> list[str]:
        """Return the submit flags of an array of tasks 1 to `count`, `throttle` at most at once.

        A `throttle` of 0 means no cap.

        Raises:
            NotImplementedError: the scheduler has no job arrays (see `has_arrays`).
        """
        raise NotImplementedError(f"{type(self).__name__} has no job arrays")

    def task_id(self, array_id: str, index: int) -> str:
        """Return the id of task `index` of the array submitted as `array_id`.

        Raises:
            NotImplementedError: the scheduler has no job arrays (see `has_arrays`).
        """
        raise NotImplementedError(f"{type(self).__name__} has no job arrays")

    def array_limit_argvs(self) -> list[list[str]]:
        """Return the queries, tried in turn, for the largest array the scheduler takes."""
        return []

    def parse_array_limit(self, output: str) -> Optional[int]:
        """Return the most tasks of one array from a limit query's stdout, or None."""
        del output
        return None

    def max_array_size(self) -> int:
        """Return the most tasks of one array: `array_max_size`, else the scheduler's, else 1,000.

        The scheduler is asked each time (a runner keeps the answer).
        """
        if self.array_max_size:
            return self.array_max_size
        for argv in self.array_limit_argvs():
            try:
                proc = self.run(argv)
            except SchedulerCommandError as exc:
                logger.info("could not ask for the largest job array: %s", exc)
                continue
            if proc.returncode == 0:
                found = self.parse_array_limit(proc.stdout)
                if isinstance(found, int) and not isinstance(found, bool) and found >= 1:
                    return found
        logger.info(
            "the largest job array is not known; arrays hold at most %d jobs",
            DEFAULT_MAX_ARRAY_SIZE,
        )
        return DEFAULT_MAX_ARRAY_SIZE

    # --- limits: the most a job may ask of each queue -----------------------------------

    @property
    def reads_limits(self) -> bool:
        """Whether the scheduler's limits can be read (`limit_argvs` and `parse_limits`)."""
        return self._implements("limit_argvs", "parse_limits")

    def limit_argvs(self) -> list[list[str]]:
        """Return the queries for the queues' limits; their answers are read together.

        The first must answer; a later one that fails (SLURM's accounting, which a cluster
        may not run) only leaves its part out.
        """
        return []

    def parse_limits(self, output: str) -> Limits:
        """Read the limits from the queries' standard output (joined, in order).

        Raises:
            ValueError: the output is not understood.
        """
        del output
        raise NotImplementedError(f"{type(self).__name__} does not read limits")

    def limits(self) -> Optional[Limits]:
        """Ask the scheduler for its limits (`limit_argvs`, then `parse_limits`).

        A limit that cannot be read is not guessed: a query that cannot run, exits non-zero
        or is not understood is logged at WARNING and None is returned.

        Returns:
            The limits, or None (not known: jobs are submitted and the scheduler decides).
        """
        outputs = []
        try:
            for index, argv in enumerate(self.limit_argvs()):
                try:
                    proc = self.run(argv)
                    if proc.returncode != 0:
                        raise SchedulerCommandError(
                            f"{format_command(argv)} exited {proc.returncode}: "
                            f"{proc.stderr.strip()}"
                        )
                except SchedulerCommandError as exc:
                    if not index:
                        raise
                    logger.info("%s: a limit query is left out: %s", self.name, exc)
                    continue
                outputs.append(proc.stdout)
            found = self.parse_limits("".join(outputs)) if outputs else None
        except (SchedulerCommandError, ValueError) as exc:
            logger.warning(
                "%s: could not read the queues' limits, jobs are submitted unchecked: %s",
                self.name,
                exc,
            )
            return None
        return found

    def check_limits(
        self, resources: Resources, limits: Limits, qos: Optional[str] = None
    ) -> Optional[str]:
        """Return why `resources` can never run under `limits` (naming a queue that fits), or None.

        The default: `runner_grid._limits.refusal` (walltime and memory; a job naming no
        queue is compared with the default queue, one naming no QOS with the default QOS).

        Args:
            resources: the job's request.
            limits: the cluster's limits.
            qos: the job's QOS (`qos_of`), or None.
        """
        return refusal(resources, limits, qos)

    def qos_of(self, runflags: Mapping[str, Any]) -> Optional[str]:
        """Return the QOS a job's run flags name (the ``qos`` run flag), or None."""
        value = runflags.get("qos")
        return value if isinstance(value, str) and value else None

    # --- detection (grid="auto") --------------------------------------------------------

    def probe_argv(self) -> Optional[list[str]]:
        """Return the command that tells this scheduler is installed, or None when none can.

        The default: `probe_command`, else the submit command's program with ``--version``.

        Raises:
            ValueError, TypeError: the command is empty or not a command.
        """
        if self.probe_command:
            return split_command(self.probe_command, "probe command")
        if not self.submit_command:
            return None
        return [split_command(self.submit_command, "submit command")[0], "--version"]

    def detect(self, returncode: int, output: str) -> bool:
        """Return whether the probe's answer (stdout and stderr) shows this scheduler.

        The default: the probe exited 0.
        """
        del output
        return returncode == 0


def scheme_keys(family: type[Scheduler]) -> dict[str, Any]:
    """Return the keys of a PLAMS-style scheme, all but ``commands``, from a family's attributes.

    What each predefined scheme's ``scheme()`` holds besides its commands, so that the
    class and the Settings users edit (``GridRunner.config.slurm``) say the same.

    Args:
        family: the scheduler class.

    Returns:
        A new dict of plain values (lists, dicts, strings, numbers, None).
    """
    keys: dict[str, Any] = {
        "workdir": family.workdir_flag,
        "output": family.output_flag,
        "error": family.error_flag,
        "special": dict(family.special),
        "array": {
            "index": list(family.array_index),
            "output_index": family.array_output_index,
            "throttle": family.array_throttle,
            "max_size": family.array_max_size,
        },
        "tag_flag": family.tag_flag,
        "long_flags": family.long_flags,
        "submit_faults": {kind: list(patterns) for kind, patterns in family.submit_faults.items()},
        "check_timeout": family.check_timeout,
        "submit_timeout": family.submit_timeout,
        "exitcode_wait": family.exitcode_wait,
        "submit_retries": family.submit_retries,
        "submit_backoff": family.submit_backoff,
        "unset_env": list(family.unset_env),
    }
    if family.directives:  # none: the job wrapper's own set of directive prefixes
        keys["directives"] = list(family.directives)
    return keys
