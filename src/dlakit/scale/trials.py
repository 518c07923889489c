"""``recover``'s per-candidate emulator runs (FP16 sensitivity screening and measuring, the noise budget) sharded
over a Ray cluster.

Each trial is one emulated model scored by its output SQNR against the FP32 reference on the same samples; trials
are independent, so a shard is a run of consecutive trials and the SQNRs come back in trial order: the selection
that follows sees the very numbers the serial run computes. A worker loads the model and runs the FP32 reference
once per job (kept for the job's later shards on that worker).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import onnx

from dlakit.scale import SHARDS_PER_WORKER, Pool, Shard, run_shards


@dataclass(frozen=True)
class TrialJob:
    model: onnx.ModelProto
    reference: onnx.ModelProto
    unsigned: frozenset[str]
    uncorrected: onnx.ModelProto | None
    off_dla: frozenset[str]
    batch_size: int
    source: Any  # the samples every trial is scored on (in memory, or a DataSource)
    token: str = field(default_factory=lambda: uuid.uuid4().hex)


#: token -> the Trials of the job this worker ran last (the model loaded, the FP32 outputs kept)
_WORKER_JOB: dict[str, Any] = {}


def _trials_for(job: TrialJob) -> Any:
    from dlakit.model import load_model
    from dlakit.recover.mixed import Trials
    from dlakit.recover.ranges import Reference

    if job.token not in _WORKER_JOB:
        _WORKER_JOB.clear()
        _WORKER_JOB[job.token] = (Trials(load_model(job.model), job.model, Reference(job.reference),
                                         set(job.unsigned), job.uncorrected, job.off_dla, job.batch_size),
                                  job.source)
    return _WORKER_JOB[job.token]


def _trial_shard(job: TrialJob, trials: list[tuple[dict[str, float], set[str]]]) -> list[float]:
    runner, source = _trials_for(job)
    return [runner.sqnr(amax, fp16, source) for amax, fp16 in trials]


def sharder(where: Pool | None) -> Callable[..., list[float]] | None:
    """The ``trial_runner`` of :class:`dlakit.recover.pipeline.RecoverOptions` for ``where`` (None: serial)."""
    return None if where is None else partial(sharded_sqnrs, where)


def sharded_sqnrs(where: Pool, trials_of: Any, trials: list[tuple[dict[str, float], set[str]]], source: Any,
                  description: str, progress: bool = False) -> list[float]:
    """:meth:`dlakit.recover.mixed.Trials.sqnrs` with the trials sharded over ``where``."""
    if not trials:
        return []
    job = TrialJob(trials_of.model, trials_of.reference.model, frozenset(trials_of.unsigned),
                   trials_of.uncorrected, trials_of.off_dla, trials_of.batch_size, source)
    per = max(1, -(-len(trials) // (where.workers * SHARDS_PER_WORKER)))
    shards = []
    for i, start in enumerate(range(0, len(trials), per)):
        chunk = trials[start:start + per]
        amax, fp16 = chunk[0]
        names = sorted(amax) if len(amax) == 1 else sorted(fp16)  # the scale group, or the FP16 candidate
        label = f"trials {start + 1}-{start + len(chunk)} of {len(trials)}, first {', '.join(names)[:80]}"
        shards.append(Shard(i, label, chunk, len(chunk)))
    parts = run_shards(_trial_shard, job, shards, where, description, progress)
    return [sqnr for part in parts for sqnr in part]
