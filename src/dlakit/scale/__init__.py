"""Shard heavy work over a Ray cluster: ``--workers N`` (a local cluster dlakit starts and stops) or
``--ray ADDRESS`` (an existing one).

Ray is an optional extra (``pip install dlakit[ray]``); without ``--workers``/``--ray`` nothing here imports it and
the commands run their serial path unchanged. Work is cut into :class:`Shard` s that each run a module-level function
``fn(shared, payload)``; results come back in shard order whatever order the workers finish in, so a command that
merges them in that order gets the serial result bit for bit (shards of data are cut on batch boundaries, so every
worker runs the very batches the serial run does). One progress bar on the driver advances as shards finish. A
worker's failure is one line naming the shard and its input (model or file), exit 2.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import typer

from dlakit.errors import DlakitError, OptionError

INSTALL_HINT = "pip install dlakit[ray]"

#: object store of the embedded cluster: results (logits, statistics) pass through it; Ray's minimum is 75 MiB
OBJECT_STORE_BYTES = 256 << 20

#: shards per worker: enough for the progress bar to move and for uneven shards to balance
SHARDS_PER_WORKER = 4

#: ONNX Runtime threads of each worker (one CPU each: N workers on N cores without oversubscription)
WORKER_THREADS_ENV = "DLAKIT_ORT_THREADS"

WorkersOpt = typer.Option(None, "--workers", help="Shard the work over a local Ray cluster of N workers that dlakit "
                          "starts and stops (needs Ray: pip install 'dlakit\\[ray]').")
RayOpt = typer.Option(None, "--ray", help="Shard the work over the Ray cluster at ADDRESS (e.g. ray://head:10001 or "
                      "auto); its workers need dlakit installed.")


@dataclass(frozen=True)
class Shard:
    """One piece of the work: ``label`` names its input (the first file, the model and target) in errors."""

    index: int
    label: str
    payload: Any
    size: int = 1  # units the progress bar advances by when the shard is done


@dataclass
class Pool:
    """A connected Ray cluster; ``workers`` is the number of shards run at once."""

    ray: Any
    workers: int


def _ray(flag: str) -> Any:
    try:
        import ray
    except ImportError:
        raise DlakitError(f"{flag} needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


@contextlib.contextmanager
def pool(workers: int | None, address: str | None) -> Iterator[Pool | None]:
    """None (the serial path) unless ``workers`` or ``address`` is given; else a Ray cluster: an embedded one of
    ``workers`` CPUs, started here and shut down at the end, or the one at ``address``. A Ray session the caller
    already holds (``ray.init`` in a test or a notebook) is used as it is and left running."""
    if workers is None and address is None:
        yield None
        return
    if workers is not None and address is not None:
        raise DlakitError("--workers starts a local Ray cluster and --ray connects to one; give only one of them")
    if workers is not None and workers < 1:
        raise DlakitError(f"--workers: {workers} must be at least 1")
    ray = _ray("--workers" if workers is not None else "--ray")
    if address is not None and not ray.is_initialized():
        _reachable(address)
    started = False
    if not ray.is_initialized():
        quiet = {"logging_level": logging.ERROR, "log_to_driver": False, "configure_logging": True}
        try:
            if address is not None:
                ray.init(address=address, **quiet)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES,
                         **quiet)
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError... with long messages
            where = f"the Ray cluster at {address}" if address else f"a local Ray cluster of {workers} workers"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DlakitError(f"cannot start or reach {where} ({first}); check the address, or run without "
                              "--workers/--ray") from None
        started = True
    try:
        cpus = int(ray.available_resources().get("CPU", 0) or ray.cluster_resources().get("CPU", 1))
        yield Pool(ray, workers or max(cpus, 1))
    finally:
        if started:
            ray.shutdown()


def _reachable(address: str) -> None:
    """A one-line error unless ``host:port`` (or ``ray://host:port``) accepts a connection within a few seconds:
    Ray itself retries an unreachable address for minutes, printing warnings."""
    import socket

    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        if address == "auto" or "://" in address:
            return
        raise DlakitError(f"--ray {address}: not a cluster address; give HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise DlakitError(f"--ray {address}: cannot reach the Ray cluster ({exc.strerror or exc}); check that it "
                          "runs (ray start --head) and the address, or run without --ray") from None


def batch_ranges(total: int, batch_size: int, parts: int) -> list[tuple[int, int]]:
    """``[start, stop)`` sample ranges covering ``total`` samples in about ``parts`` pieces, each a whole number of
    batches (the last may end in a partial batch), so that a shard's batches are the serial run's batches."""
    batches = -(-total // batch_size)
    per = max(1, -(-batches // max(parts, 1)))
    step = per * batch_size
    return [(start, min(start + step, total)) for start in range(0, total, step)]


def _worker_run(fn: Callable[[Any, Any], Any], shared: Any, payload: Any, threads: int) -> tuple[str, Any]:
    """Run one shard on a worker: ("ok", result) or ("error", one line), never a Ray traceback."""
    if threads:
        os.environ[WORKER_THREADS_ENV] = str(threads)
    try:
        return "ok", fn(shared, payload)
    except OptionError as exc:  # sent as its template and parameter names, so the driver can show the flags
        return "option", (exc.template, exc.options)
    except DlakitError as exc:
        return "error", str(exc)
    except Exception as exc:
        return "error", f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def _fail(shard: Shard, count: int, message: str, options: Sequence[str] = ()) -> DlakitError:
    """The shard's failure in one line; a parameter error stays an :class:`OptionError` (``message`` is then its
    template), so the command line still names the flag."""
    where = f"shard {shard.index + 1}/{count} ({shard.label}) failed: "
    if options:
        return OptionError(where + message, *options)
    return DlakitError(where + message)


def run_shards(fn: Callable[[Any, Any], Any], shared: Any, shards: Sequence[Shard], where: Pool | None,
               description: str = "", progress: bool = True, total: int | None = None) -> list[Any]:
    """``[fn(shared, shard.payload) for shard in shards]``, in shard order: in this process when ``where`` is None,
    else as Ray tasks (``shared`` is put in the object store once). ``fn`` must be a module-level function."""
    from dlakit.quantize.runtime import progress_bar

    total = sum(s.size for s in shards) if total is None else total
    results: list[Any] = [None] * len(shards)
    with progress_bar(total, description, progress) as advance:
        if where is None:
            for shard in shards:
                try:
                    results[shard.index] = fn(shared, shard.payload)
                except OptionError as exc:
                    raise _fail(shard, len(shards), exc.template, exc.options) from None
                except DlakitError as exc:
                    raise _fail(shard, len(shards), str(exc)) from None
                advance(shard.size)
            return results
        ray = where.ray
        task = ray.remote(num_cpus=1, max_retries=0)(_worker_run)
        shared_ref = ray.put(shared)
        pending = {task.remote(fn, shared_ref, shard.payload, 1): shard for shard in shards}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    shard = pending.pop(ref)
                    try:
                        status, value = ray.get(ref)
                    except Exception as exc:  # the worker process died (out of memory, killed)
                        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                        raise _fail(shard, len(shards), f"worker lost ({first[:200]})") from None
                    if status == "option":
                        raise _fail(shard, len(shards), value[0], value[1])
                    if status == "error":
                        raise _fail(shard, len(shards), value)
                    results[shard.index] = value
                    advance(shard.size)
        finally:
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
    return results
