"""Serial vs ``--workers 2`` vs ``--workers 4``: wall time of ``dlakit eval`` (FP32 + emulated INT8) over a few
hundred images, of ``dlakit quantize``'s calibration over a few hundred samples and of ``dlakit sweep`` over the
zoo, the speed-up, and the memory of each Ray worker.

The cluster is started by the benchmark (as ``--workers N`` would start it) so that its start-up is timed apart
from the run; "total" is what the command costs end to end. Each sharded run's JSON is compared with the serial
run's (the sweep's and quantize's without wall times): "same" must say yes. Worker memory is the peak resident
set (VmHWM) of each Ray worker process, read from /proc after the run (Linux only), plus Ray's own daemons.

    python benchmarks/bench_scale.py [--images 384] [--calib-samples 512] [--workers 2,4] [--skip-eval]
        [--skip-quantize] [--skip-sweep] [--json]

Needs Ray (pip install dlakit[ray]). On a machine with fewer cores than workers the speed-up is capped by the
cores: the table says how many this machine has.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ZOO = ["resnet50", "ssd-resnet34", "ssd-mobilenetv1", "retinanet-resnext50", "retinanet-resnet34",
       "resnet34-backbone"]
SWEEP_TARGETS = ["--platform", "agx-orin-64gb", "--platform", "orin-nx-16gb", "--platform", "agx-xavier",
                 "--release", "jetpack-6.2", "--release", "jetpack-6.0", "--release", "jetpack-5.1.1",
                 "--power-mode", "MAXN", "--power-mode", "15W"]


def cnn(size: int = 64, batch: int = 8):
    """A small classifier (4 convolutions, 10 classes) at ``size`` x ``size``, static batch ``batch``."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, x, cin = [], [], "x", 3
    for i, (cout, stride) in enumerate(((32, 2), (64, 1), (64, 2), (128, 2))):
        w = rng.normal(0, (2 / (9 * cin)) ** 0.5, (cout, cin, 3, 3)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(np.zeros(cout, np.float32), f"b{i}")]
        nodes += [helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"c{i}"], name=f"conv{i}", pads=[1, 1, 1, 1],
                                   strides=[stride, stride]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}")]
        x, cin = f"r{i}", cout
    inits += [numpy_helper.from_array(rng.normal(0, 0.1, (cin, 10)).astype(np.float32), "fc"),
              numpy_helper.from_array(np.zeros(10, np.float32), "fb")]
    nodes += [helper.make_node("GlobalAveragePool", [x], ["g"], name="pool"),
              helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
              helper.make_node("Gemm", ["f", "fc", "fb"], ["logits"], name="fc")]
    graph = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                           [batch, 3, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def dlakit(*args: str) -> tuple[str, float]:
    """``dlakit ARGS`` in this process: (stdout, seconds); a failure stops the benchmark."""
    from dlakit.cli import main

    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            if exc.code:
                raise SystemExit(f"dlakit {' '.join(args)} failed: {err.getvalue().strip()}") from None
    return out.getvalue(), time.perf_counter() - start


def ray_memory() -> dict[str, float]:
    """Peak RSS (MiB) of each Ray worker process and the RSS of Ray's daemons, from /proc."""
    workers, daemons = [], 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = {line.split(":")[0]: line.split()[1] for line in status.splitlines() if line.startswith("Vm")}
        if int(pid) == os.getpid():
            continue
        if cmd.startswith("ray::") and not cmd.split()[0].endswith("Agent"):  # ray::IDLE, ray::_worker_run
            workers.append(int(fields.get("VmHWM", 0)) / 1024)
        elif cmd.startswith("ray::") or "site-packages/ray/" in cmd:  # raylet, gcs_server, agents, monitors
            daemons += int(fields.get("VmRSS", 0)) / 1024
    busy = sorted(workers, reverse=True)
    return {"worker_processes": len(workers), "worker_peak_mib_max": round(busy[0], 1) if busy else 0.0,
            "worker_peak_mib_mean": round(float(np.mean(busy)), 1) if busy else 0.0,
            "ray_daemons_mib": round(daemons, 1)}


def measure(label: str, args: list[str], workers: list[int], normalise) -> list[dict]:
    import ray

    out, serial_s = dlakit(*args)
    reference = normalise(json.loads(out))
    rows = [{"work": label, "workers": "serial", "start_s": 0.0, "run_s": round(serial_s, 2),
             "total_s": round(serial_s, 2), "speedup": 1.0, "same": "-"}]
    for n in workers:
        start = time.perf_counter()
        ray.init(num_cpus=n, include_dashboard=False, object_store_memory=256 << 20, logging_level=logging.ERROR,
                 log_to_driver=False)
        start_s = time.perf_counter() - start
        try:
            out, run_s = dlakit(*args, "--workers", str(n))
            memory = ray_memory()
        finally:
            ray.shutdown()
        rows.append({"work": label, "workers": str(n), "start_s": round(start_s, 2), "run_s": round(run_s, 2),
                     "total_s": round(start_s + run_s, 2), "speedup": round(serial_s / run_s, 2),
                     "same": "yes" if normalise(json.loads(out)) == reference else "NO", **memory})
    return rows


def eval_args(folder: Path, images: int) -> list[str]:
    from PIL import Image

    model = folder / "cnn.onnx"
    import onnx

    onnx.save(cnn(), model)
    rng = np.random.default_rng(0)
    for i in range(images):
        label = folder / "val" / str(i % 10)
        label.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (72, 72, 3), dtype=np.uint8)).save(label / f"{i:05d}.png")
    calib = folder / "calib.npy"
    np.save(calib, rng.normal(size=(16, 3, 64, 64)).astype(np.float32))
    dlakit("quantize", str(model), "--calib", str(calib), "-o", str(folder / "q"), "--no-progress", "-f", "json")
    return ["eval", str(model), "--data", str(folder / "val"), "--calib-cache", str(folder / "q" / "cnn.cache"),
            "--preset", "unit", "--no-progress", "-f", "json"]


def quantize_args(folder: Path, samples: int) -> list[str]:
    import onnx

    model = folder / "cnn_calib.onnx"
    onnx.save(cnn(), model)
    calib = folder / "calib_many.npy"
    np.save(calib, np.random.default_rng(1).normal(size=(samples, 3, 64, 64)).astype(np.float32))
    return ["quantize", str(model), "--calib", str(calib), "-o", str(folder / "q_calib"), "--no-progress", "-f",
            "json"]


def without_seconds(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in ("calibration_seconds", "files")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=384, help="images for eval (default 384)")
    parser.add_argument("--workers", default="2,4", help="worker counts to compare with serial (default 2,4)")
    parser.add_argument("--calib-samples", type=int, default=512, help="samples for quantize (default 512)")
    parser.add_argument("--skip-eval", action="store_true")
    parser.add_argument("--skip-quantize", action="store_true")
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of the table")
    opts = parser.parse_args()
    try:
        import ray  # noqa: F401
    except ImportError:
        sys.exit("bench_scale needs Ray: pip install dlakit[ray]")
    from dlakit.scale.sweep import without_wall_times

    counts = [int(n) for n in opts.workers.split(",") if n]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if not opts.skip_eval:
            rows += measure(f"eval, {opts.images} images", eval_args(Path(tmp), opts.images), counts,
                            lambda data: data)
        if not opts.skip_quantize:
            rows += measure(f"quantize (entropy), {opts.calib_samples} samples",
                            quantize_args(Path(tmp), opts.calib_samples), counts, without_seconds)
        if not opts.skip_sweep:
            rows += measure(f"sweep, zoo x {len(SWEEP_TARGETS) // 2} target flags",
                            ["sweep", *ZOO, *SWEEP_TARGETS, "--no-progress", "-f", "json"], counts,
                            without_wall_times)
    if opts.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{os.cpu_count()} CPU cores on this machine")
    columns = ["work", "workers", "start_s", "run_s", "total_s", "speedup", "same", "worker_peak_mib_max",
               "worker_peak_mib_mean", "ray_daemons_mib"]
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(w) for c, w in zip(columns, widths, strict=True)))


if __name__ == "__main__":
    main()
