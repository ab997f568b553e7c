"""One command run as a batch job of SLURM or PBS: its script, submission, state and cancel.

dask-jobqueue makes the batch script of every worker from a cluster config; the same
machinery makes the script of a *driver*: :func:`batch_script` builds the config's job with
the cluster class's ``job_cls`` (dask-jobqueue's public job classes) and takes its
``shebang``, ``job_header`` (``#SBATCH``/``#PBS`` lines for the config's cores, memory,
walltime, queue, account and extra directives) and the config's ``job_script_prologue``;
only the command differs. :func:`submit_script` runs the class's ``submit_command``
(``sbatch``/``qsub``) and reads the batch job id with its ``job_id_regexp``;
:func:`cancel_batch` runs its ``cancel_command`` (``scancel``/``qdel``). dask-jobqueue never
asks a batch system for a job's state, so :func:`batch_state` does, with the system's own
tools:

===== =================================================================================
kind  state from
===== =================================================================================
slurm ``squeue -h -j ID -o %T``; once the job left the queue ``scontrol show job ID``
      (kept ``MinJobAge``, 300 s by default), then ``sacct`` (when accounting is on)
pbs   ``qstat -x -f ID`` (PBS Pro keeps finished jobs), then ``qstat -f ID`` (Torque)
===== =================================================================================

Every command runs with a timeout; a batch system that does not answer is a
:class:`BatchError`, never a hang.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DaskClusterError
from .backends import jobqueue_cluster_class, jobqueue_job_options

__all__ = ["BATCH_KINDS", "BatchError", "BatchState", "batch_script", "batch_state", "cancel_batch", "output_files",
           "submit_script"]

logger = logging.getLogger(__name__)

#: The config kinds whose jobs run as batch jobs.
BATCH_KINDS = ("slurm", "pbs")

#: Seconds a batch command may take before it is an error.
COMMAND_TIMEOUT = 60.0

#: The scheduler address written in the throw-away job that makes the header (the header
#: does not depend on it; the driver's own cluster starts its scheduler on the compute node).
_NO_SCHEDULER = "tcp://127.0.0.1:1"

# SLURM's job states (squeue/scontrol/sacct) and PBS's one-letter states -> ours
_SLURM_STATES = {
    "PENDING": "queued", "CONFIGURING": "queued", "REQUEUED": "queued", "REQUEUE_HOLD": "queued",
    "RESV_DEL_HOLD": "queued", "SUSPENDED": "queued", "RUNNING": "running", "COMPLETING": "running",
    "STAGE_OUT": "running", "SIGNALING": "running", "COMPLETED": "done", "CANCELLED": "cancelled",
}
_PBS_STATES = {"Q": "queued", "H": "queued", "W": "queued", "T": "queued", "S": "queued", "U": "queued",
               "R": "running", "E": "running", "B": "running", "X": "done", "F": "done", "C": "done"}


class BatchError(DaskClusterError, OSError):
    """A batch system's command failed, was not found, or did not answer in time."""


@dataclass(frozen=True)
class BatchState:
    """What the batch system says of a job.

    ``state``: queued, running, done (it ended; the exit code says how), failed or cancelled;
    ``raw``: the system's own word (``PENDING``, ``R``, ``TIMEOUT``...); ``exit_code``: when known.
    """

    state: str
    raw: str
    exit_code: int | None = None


def _job(config: Any, *, job_name: str, log_directory: str | None) -> Any:
    options = jobqueue_job_options(config)
    options.update(job_name=job_name, log_directory=log_directory)
    cls = jobqueue_cluster_class(config.kind).job_cls
    return cls(scheduler=_NO_SCHEDULER, name=job_name, config_name=cls.config_name, **options)


def batch_script(config: Any, command: Sequence[str], *, job_name: str, workdir: str,
                 log_directory: str | None = None) -> str:
    """The batch script that runs ``command`` in ``workdir`` with the config's resources.

    Parameters
    ----------
    config : SLURMConfig or PBSConfig
    command : sequence of str
        The command's words (quoted here for the shell).
    job_name : str
        The batch job's name (``#SBATCH -J``/``#PBS -N``).
    workdir : str
        The folder the command runs in (PBS starts jobs in the home folder).
    log_directory : str, optional
        Where the batch system writes the job's stdout and stderr (default: the config's).
    """
    job = _job(config, job_name=job_name, log_directory=log_directory or config.log_directory)
    prologue = "\n".join(filter(None, config.job_script_prologue))
    # exec: the command is the job's process, and gets the batch system's signals itself
    lines = [job.shebang, "", job.job_header, prologue, f"cd {shlex.quote(workdir)}",
             "exec " + " ".join(shlex.quote(str(word)) for word in command)]
    return "\n".join(line for line in lines if line is not None) + "\n"


def _run(words: list[str], cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(words, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False, cwd=cwd)
    except FileNotFoundError:
        raise BatchError(f"'{words[0]}' is not installed here: submitting through the batch system needs its "
                         "commands on this machine (run daskcluster on a login node).") from None
    except subprocess.TimeoutExpired:
        raise BatchError(f"'{shlex.join(words)}' did not answer within {COMMAND_TIMEOUT:g}s.") from None


def submit_script(config: Any, path: str | os.PathLike[str]) -> str:
    """Submit a batch script (``sbatch``/``qsub``); return the batch job id."""
    cls = jobqueue_cluster_class(config.kind).job_cls
    words = [*shlex.split(cls.submit_command), os.fspath(path)]
    # submitted from the script's folder: where a batch system puts output files it names itself
    done = _run(words, cwd=os.path.dirname(os.path.abspath(path)))
    if done.returncode != 0:
        raise BatchError(f"'{shlex.join(words)}' failed (exit {done.returncode}): "
                         f"{(done.stderr or done.stdout).strip()}")
    match = re.search(cls.job_id_regexp, done.stdout)
    if match is None or not match.groupdict().get("job_id"):
        raise BatchError(f"'{shlex.join(words)}' printed no job id: {done.stdout.strip()!r}")
    return str(match.group("job_id"))


def output_files(folder: str | os.PathLike[str], batch_id: str) -> list[Path]:
    """The files in ``folder`` a batch system wrote the job's stdout and stderr to: SLURM's
    ``<name>-<id>.out``/``.err`` (dask-jobqueue's header), PBS's ``<name>.o<id>``/``.e<id>``."""
    number = re.match(r"\d+", batch_id)
    if number is None:
        return []
    pattern = re.compile(rf"(-{number.group()}\.(out|err)|\.[oe]{number.group()})$")
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and pattern.search(p.name))


def cancel_batch(kind: str, batch_id: str) -> None:
    """Cancel a batch job (``scancel``/``qdel``); a job that already ended is not an error."""
    words = [*shlex.split(jobqueue_cluster_class(kind).job_cls.cancel_command), batch_id]
    done = _run(words)
    if done.returncode == 0:
        return
    state = batch_state(kind, batch_id)
    if state is not None and state.state in ("queued", "running"):
        raise BatchError(f"'{shlex.join(words)}' failed (exit {done.returncode}): "
                         f"{(done.stderr or done.stdout).strip()}")


def batch_state(kind: str, batch_id: str) -> BatchState | None:
    """The batch job's state, or None when the batch system no longer knows the job."""
    if kind == "slurm":
        return _slurm_state(batch_id)
    if kind == "pbs":
        return _pbs_state(batch_id)
    raise ValueError(f"no batch system of kind {kind!r}")


def _slurm_state(batch_id: str) -> BatchState | None:
    done = _run(["squeue", "-h", "-j", batch_id, "-o", "%T"])
    raw = done.stdout.strip().split()
    if done.returncode == 0 and raw:
        return BatchState(_SLURM_STATES.get(raw[0], "failed"), raw[0])
    done = _run(["scontrol", "-o", "show", "job", batch_id])
    found = re.search(r"\bJobState=(\S+)", done.stdout) if done.returncode == 0 else None
    if found is not None:
        exit_code = re.search(r"\bExitCode=(\d+):", done.stdout)
        return _slurm(found.group(1), int(exit_code.group(1)) if exit_code else None)
    done = _run(["sacct", "-n", "-X", "-P", "-j", batch_id, "-o", "State,ExitCode"])
    rows = [line.split("|") for line in done.stdout.splitlines() if "|" in line] if done.returncode == 0 else []
    if rows:
        word, code = rows[0][0].split()[0], rows[0][1].split(":")[0]
        return _slurm(word, int(code) if code.isdigit() else None)
    return None


def _slurm(word: str, exit_code: int | None) -> BatchState:
    state = _SLURM_STATES.get(word, "failed")  # FAILED, TIMEOUT, NODE_FAIL, OUT_OF_MEMORY, PREEMPTED...
    if state == "done" and exit_code:
        state = "failed"
    return BatchState(state, word, exit_code)


def _pbs_state(batch_id: str) -> BatchState | None:
    for words in (["qstat", "-x", "-f", batch_id], ["qstat", "-f", batch_id]):
        done = _run(words)
        found = re.search(r"\bjob_state\s*=\s*(\w)", done.stdout) if done.returncode == 0 else None
        if found is not None:
            code = re.search(r"\b[Ee]xit_status\s*=\s*(-?\d+)", done.stdout)
            exit_code = int(code.group(1)) if code else None
            state = _PBS_STATES.get(found.group(1), "failed")
            if state == "done" and exit_code:
                state = "failed"
            return BatchState(state, found.group(1), exit_code)
    return None
