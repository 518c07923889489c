"""ONNX Runtime plumbing shared by calibration, emulation and evaluation.

Activations are read by exposing tensors as extra graph outputs (ORT then keeps them and cannot fuse them away).
When the exposed tensors of one batch would exceed a memory budget they are split into chunks, each run by its own
session, so peak memory stays bounded by the budget plus one set of weights, whatever the number of tensors.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort

from dlakit.errors import DlakitError, OptionError
from dlakit.model import LoadedModel, static_dims
from dlakit.quantize.data import DataSource

#: ORT's CPU optimizer that rewrites Q/DQ models whose weights stay float (int8_baseline.md pitfall 4)
UNSAFE_QDQ_OPTIMIZERS = ["WeightBiasQuantization"]


def to_proto(loaded: LoadedModel) -> onnx.ModelProto:
    """The loaded model (node names filled in as TensorRT names layers) as a protobuf we may edit."""
    proto = ir.serde.serialize_model(loaded.model)
    # the serializer drops initializers from graph.input; IR < 4 requires them there (ORT rejects such a graph
    # as soon as one initializer is unused, e.g. onnx's light_resnet50)
    proto.ir_version = max(proto.ir_version, 4)
    return proto


QDQ_MIN_OPSET = 13  # QuantizeLinear/DequantizeLinear exist from opset 10, per-axis (INT8 weights) from 13


def upgrade_for_qdq(loaded: LoadedModel) -> LoadedModel:
    """``loaded`` at an opset where per-channel Q/DQ exists, converted before any plan is built on it; a one-line
    error when ONNX's converter cannot (or makes a model ONNX Runtime refuses)."""
    if loaded.opset >= QDQ_MIN_OPSET:
        return loaded
    from onnx import version_converter

    from dlakit.model import load_model

    proto = to_proto(loaded)
    proto.ir_version = max(proto.ir_version, 7)
    try:
        converted = version_converter.convert_version(proto, QDQ_MIN_OPSET)
        session(converted)  # the converter can leave a graph ORT refuses (opset-9 Dropout masks typed float)
    except Exception as exc:  # the converter raises its own types; session() raises DlakitError
        raise DlakitError(f"{loaded.source}: ONNX opset {loaded.opset} has no per-channel INT8 Q/DQ and converting "
                          f"it to opset {QDQ_MIN_OPSET} failed ({str(exc).splitlines()[0][:120]}); re-export the "
                          f"model with opset >= {QDQ_MIN_OPSET}") from None
    upgraded = load_model(converted)
    upgraded.source = loaded.source
    return upgraded


def input_specs(loaded: LoadedModel) -> tuple[dict[str, tuple[int, ...]], int | None]:
    """Per-sample input shapes and the static batch size (None when the batch dimension is dynamic)."""
    shapes: dict[str, tuple[int, ...]] = {}
    batches: set[int | None] = set()
    for value in loaded.graph.inputs:
        dims = static_dims(value)
        if value.shape is None or len(value.shape) == 0:
            raise OptionError(f"input '{value.name}' has no known shape; pass {{shapes}} {value.name}:1x3x224x224",
                              "shapes")
        rest = [d if isinstance(d, int) else None for d in list(value.shape)[1:]]
        if dims is None and None in rest:
            raise DlakitError(f"input '{value.name}' has dynamic dimensions {value.shape}; pass --shapes "
                              f"{value.name}:<N>x<C>x<H>x<W>")
        first = value.shape[0]
        batches.add(first if isinstance(first, int) else None)
        shapes[value.name] = tuple(int(d) for d in rest)  # type: ignore[arg-type]
    batch = batches.pop() if len(batches) == 1 else None
    return shapes, batch


class Session:
    """An ONNX Runtime session whose failures are :class:`DlakitError` lines naming the model and ORT's reason.

    ORT raises its own exception types for a model it cannot load, or for a node that fails on the data (an index out
    of range, a Reshape whose sizes do not match, an allocation too big): the user's model or data is at fault, so
    they become one line instead of a traceback. Everything else is ORT's ``InferenceSession``."""

    def __init__(self, inner: ort.InferenceSession, label: str) -> None:
        self._inner = inner
        self._label = label

    def run(self, names: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return self._inner.run(names, feeds)
        except Exception as exc:
            if not _from_ort(exc):
                raise
            raise DlakitError(f"ONNX Runtime failed running model '{self._label}' on your data: {_ort_reason(exc)}; "
                              "the model is malformed for these input shapes or the data does not fit it "
                              "(check it with dlakit check, or re-export it)") from exc

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


def _from_ort(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("onnxruntime")


def _ort_reason(exc: BaseException) -> str:
    from dlakit.model.validate import show

    text = " ".join(str(exc).split())
    for prefix in ("[ONNXRuntimeError] :",):
        if text.startswith(prefix):
            text = text.split(":", 3)[-1].strip()
    return show(text[:300])


def session(model: onnx.ModelProto, quantized: bool = False, threads: int = 0) -> Session:
    """A CPU session; Q/DQ models get basic optimizations only and never ``WeightBiasQuantization``."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    threads = threads or int(os.environ.get("DLAKIT_ORT_THREADS") or 0)  # set on Ray workers (dlakit.scale)
    if threads:
        options.intra_op_num_threads = threads
    if quantized:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    label = model.graph.name or "<model>"
    try:
        inner = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"],
                                     disabled_optimizers=UNSAFE_QDQ_OPTIMIZERS if quantized else None)
    except Exception as exc:  # ORT raises its own exception types for models it cannot run
        raise DlakitError(f"ONNX Runtime cannot load model '{label}': {_ort_reason(exc)}; re-export the model "
                          "with standard ONNX ops and shapes") from exc
    return Session(inner, label)


def with_outputs(model: onnx.ModelProto, names: Iterable[str]) -> onnx.ModelProto:
    """A copy of ``model`` whose graph also outputs ``names`` (in that order, after the original outputs)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    existing = {o.name for o in copy.graph.output}
    for name in names:
        if name not in existing:
            copy.graph.output.append(onnx.ValueInfoProto(name=name))
            existing.add(name)
    return copy


def tensor_bytes(loaded: LoadedModel, names: Iterable[str]) -> dict[str, int]:
    """Bytes per sample of each tensor (float32), from inferred shapes; unknown shapes count as 4 MiB."""
    values = {v.name: v for v in loaded.graph.inputs}
    for node in loaded.graph:
        values.update({v.name: v for v in node.outputs})
    out = {}
    for name in names:
        dims = static_dims(values[name]) if name in values else None
        out[name] = int(np.prod(dims[1:] if dims and len(dims) > 1 else dims or [1 << 20])) * 4
    return out


def chunk_tensors(sizes: dict[str, int], budget: int) -> list[list[str]]:
    chunks: list[list[str]] = [[]]
    used = 0
    for name, size in sizes.items():
        if chunks[-1] and used + size > budget:
            chunks.append([])
            used = 0
        chunks[-1].append(name)
        used += size
    return chunks


class LogProgress:
    """Progress as plain lines on stderr, for logs and pipes where a live bar cannot redraw.

    Quiet for work that ends within ``every`` seconds; after that one line per ``every`` seconds with the count, the
    share done, the elapsed time and an ETA from the average rate so far, and a closing line.
    """

    def __init__(self, total: int, description: str, every: float = 15.0,
                 clock: Callable[[], float] = time.monotonic, write: Callable[[str], object] | None = None) -> None:
        self.total, self.description, self.every, self.clock = max(total, 0), description, every, clock
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self.done = 0
        self.started = self.last = clock()
        self.printed = False

    def advance(self, n: int) -> None:
        self.done += n
        now = self.clock()
        if now - self.last >= self.every and self.done < self.total:
            self.last = now
            self.printed = True
            self.write(self._line(now))

    def close(self) -> None:
        if self.printed:
            self.write(f"{self.description}: {self.done}/{self.total} done in {_duration(self.clock() - self.started)}")

    def _line(self, now: float) -> str:
        elapsed = now - self.started
        share = self.done / self.total if self.total else 1.0
        eta = f", ETA {_duration(elapsed / share - elapsed)}" if 0 < share < 1 else ""
        return f"{self.description}: {self.done}/{self.total} ({share:.0%}), {_duration(elapsed)} elapsed{eta}"


def _duration(seconds: float) -> str:
    whole = max(round(seconds), 0)
    if whole < 60:
        return f"{whole}s"
    minutes, rest = divmod(whole, 60)
    return f"{minutes}m{rest:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


@contextmanager
def progress_bar(total: int, description: str, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on a terminal; plain progress lines (:class:`LogProgress`) on a pipe or in a log."""
    if not enabled:
        yield lambda _n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        log = LogProgress(total, description)
        yield log.advance
        log.close()
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def stream_activations(
    model: onnx.ModelProto,
    source: DataSource,
    tensors: list[str],
    sink: Callable[[str, np.ndarray], None],
    batch_size: int,
    budget_bytes: int,
    per_sample_bytes: dict[str, int],
    progress: bool = True,
    quantized: bool = False,
) -> int:
    """Run ``model`` over ``source`` and hand each requested tensor of each batch to ``sink`` (padding removed).

    Returns the number of samples seen. Tensors are split into chunks so that one batch of exposed activations
    stays under ``budget_bytes``; each chunk has its own session and the batch is fed to each in turn. (Reducing
    min/max inside the graph, as ORT's MinMax calibrator does, measured slower here: ORT's CPU ReduceMin/ReduceMax
    cost more than handing the buffers over.)
    """
    chunks = chunk_tensors({n: per_sample_bytes.get(n, 4 << 20) * batch_size for n in tensors}, budget_bytes)
    sessions = [(session(with_outputs(model, chunk), quantized), chunk) for chunk in chunks]
    inputs = {i.name for i in model.graph.input}
    seen = 0

    def consume(chunk: list[str], values: list[np.ndarray], valid: int) -> None:
        for name, value in zip(chunk, values, strict=True):
            if valid < batch_size and value.ndim and value.shape[0] == batch_size:
                value = value[:valid]
            sink(name, value)

    # statistics of batch k are taken on a worker thread while ONNX Runtime computes batch k+1 (both release the
    # GIL in their C loops); one batch in flight keeps memory at two batches of activations
    with ThreadPoolExecutor(max_workers=1) as worker, \
            progress_bar(len(source), f"running {len(source)} samples", progress) as advance:
        pending: Future[None] | None = None
        for batch, valid in source.batches(batch_size):
            feeds = {k: v for k, v in batch.items() if k in inputs}
            for sess, chunk in sessions:
                values = sess.run(chunk, feeds)
                if pending is not None:
                    pending.result()
                pending = worker.submit(consume, chunk, values, valid)
            seen += valid
            advance(valid)
        if pending is not None:
            pending.result()
    return seen
