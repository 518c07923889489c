"""INT8 calibration: dlakit vs ONNX Runtime's quantize_static on EfficientNet-Lite0 with real photos.

Same set-up as ../shared/facts/int8_baseline.md as far as the photos ship with scikit-image / scikit-learn /
matplotlib: calibration 10 photos x 8 crop/flip variants, evaluation 9 other photos x 16 variants, metrics against
the FP32 logits (top-1 agreement, top-5 overlap, SQNR, mean cosine). Each method calibrates in its own child process
so that peak RSS is that method's alone; times are wall-clock of the whole quantization (calibration pass, ranges,
writing the outputs). dlakit's INT8 is scored with its DLA emulator; ORT's QDQ models run on ORT's integer kernels
(as ORT users would run them).

    python benchmarks/bench_quantize.py [--runs 2] [--slow-peers]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DLAKIT_METHODS = ("max", "entropy", "percentile", "mse")
ORT_METHODS = {"ort-minmax": ("MinMax", {}), "ort-entropy": ("Entropy", {})}
SLOW_ORT = {"ort-entropy-2048": ("Entropy", {"CalibNumBins": 2048, "CalibNumQuantizedBins": 128}),
            "ort-percentile": ("Percentile", {"CalibPercentile": 99.999})}


def prepare(work: Path) -> None:
    import onnx

    from tests.test_quant_support import CALIB_PHOTOS, EVAL_PHOTOS, lite0_model, photo_set

    onnx.save(lite0_model(), work / "lite0.onnx")
    _, calib = photo_set(CALIB_PHOTOS, 8)
    _, evaluation = photo_set(EVAL_PHOTOS, 16)
    np.save(work / "calib.npy", calib)
    np.save(work / "eval.npy", evaluation)


def child(method: str, work: Path) -> None:
    """Quantize once with ``method``; print time and peak RSS as JSON."""
    start = time.perf_counter()
    if method.startswith("ort-"):
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.calibrate import CalibrationMethod

        calib_method, extra = {**ORT_METHODS, **SLOW_ORT}[method]

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.data = iter(np.load(work / "calib.npy", mmap_mode="r"))

            def get_next(self):
                sample = next(self.data, None)
                return None if sample is None else {"input": np.ascontiguousarray(sample[None])}

        quantize_static(str(work / "lite0.onnx"), str(work / f"{method}.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, calib_method),
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, **extra})
    else:
        from dlakit.model import load_model
        from dlakit.quantize.calibrate import calibrate
        from dlakit.quantize.data import open_source
        from dlakit.quantize.outputs import write_outputs
        from dlakit.targets import resolve_target

        loaded = load_model(work / "lite0.onnx")
        source = open_source(work / "calib.npy", {"input": (3, 224, 224)})
        result = calibrate(loaded, source, method, progress=False)
        raw, tied, costs = result.ranges()
        write_outputs(work / f"dlakit-{method}", loaded, result.model, result.plan, raw, tied, costs,
                      resolve_target(None, "jp6"), {"method": method})
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def logits_of(method: str, work: Path, evaluation: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    if method.startswith("ort-"):
        options = ort.SessionOptions()
        options.log_severity_level = 3
        sess = ort.InferenceSession(str(work / f"{method}.onnx"), options, providers=["CPUExecutionProvider"])
        return np.concatenate([sess.run(None, {"input": x[None]})[0] for x in evaluation])
    from dlakit.model import load_model
    from dlakit.quantize.cache import read_cache
    from dlakit.quantize.emulate import emulation_from_scales
    from dlakit.quantize.runtime import session

    loaded = load_model(work / "lite0.onnx")
    emulation = emulation_from_scales(loaded, read_cache(work / f"dlakit-{method}" / "lite0.cache").scales)
    sess = session(emulation.emulated.model, quantized=True)
    return np.concatenate([sess.run(["logits"], {"input": x[None]})[0] for x in evaluation])


def metrics(reference: np.ndarray, test: np.ndarray) -> dict[str, float]:
    top5_ref = np.argsort(-reference, axis=1)[:, :5]
    top5 = np.argsort(-test, axis=1)[:, :5]
    overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(top5_ref, top5, strict=True)])
    noise = np.sum((reference.astype(np.float64) - test) ** 2)
    cos = np.sum(reference * test, axis=1) / (np.linalg.norm(reference, axis=1) * np.linalg.norm(test, axis=1))
    return {"top1": float(np.mean(reference.argmax(1) == test.argmax(1))), "top5": float(overlap),
            "sqnr": float(10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / noise)),
            "cosine": float(np.mean(cos))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="quantization runs per method (times: all runs)")
    parser.add_argument("--slow-peers", action="store_true", help="also ORT Entropy 2048 bins and Percentile "
                        "(each over 30 s and 6 GB in int8_baseline.md)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, Path(args.work))
        return
    import onnxruntime as ort

    work = Path(tempfile.mkdtemp(prefix="bench-quantize-"))
    prepare(work)
    evaluation = np.load(work / "eval.npy")
    options = ort.SessionOptions()
    reference = ort.InferenceSession(str(work / "lite0.onnx"), options, providers=["CPUExecutionProvider"])
    fp32 = np.concatenate([reference.run(None, {"input": x[None]})[0] for x in evaluation])
    methods = [*DLAKIT_METHODS, *ORT_METHODS, *(SLOW_ORT if args.slow_peers else ())]
    print(f"EfficientNet-Lite0, {len(np.load(work / 'calib.npy'))} calibration / {len(evaluation)} evaluation "
          f"samples, onnxruntime {ort.__version__}")
    rows = []
    for method in methods:
        runs = []
        for _ in range(args.runs):
            out = subprocess.run([sys.executable, __file__, "--child", method, "--work", str(work)],
                                 capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        scores = metrics(fp32, logits_of(method, work, evaluation))
        label = f"dlakit {method}" if method in DLAKIT_METHODS else method
        rows.append((label, " / ".join(f"{r['seconds']:.1f}" for r in runs), max(r["rss_mb"] for r in runs), scores))
        print(f"  done {label}", file=sys.stderr)
    print("| method | calib time (s) | peak RSS (MB) | top-1 agreement | top-5 overlap | SQNR dB | cosine |")
    print("|---|---|---|---|---|---|---|")
    for label, times, rss, s in rows:
        print(f"| {label} | {times} | {rss:.0f} | {s['top1']:.1%} | {s['top5']:.1%} | {s['sqnr']:.2f} | "
              f"{s['cosine']:.4f} |")


if __name__ == "__main__":
    main()
