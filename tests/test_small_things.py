"""Small things a user trips on: near-miss names, errors that read from Python too, every written file listed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dlakit.errors import DlakitError
from dlakit.targets import resolve_target
from tests.cli import run
from tests.test_quant_cli import write_small

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("typed", ["resnet-50", "ResNet_50", "resnt50"])
def test_near_miss_zoo_names_get_a_suggestion(typed):
    result = run("check", typed)
    assert result.returncode == 2 and "did you mean resnet50?" in result.stderr, result.stderr


def test_platform_and_release_spellings_are_normalised_or_suggested():
    assert resolve_target("AGX_Orin_64GB").platform.key == "agx-orin-64gb"
    with pytest.raises(DlakitError, match=r"platform \(--platform\): unknown platform 'agx-orn' \(did you mean "
                                          r"agx-orin-64gb\?\)"):
        resolve_target("agx-orn")
    with pytest.raises(DlakitError, match=r"^release \(--release\)"):  # the API's own name first, then the flag
        resolve_target(None, "nonsense")


def test_qdq_translate_lists_every_file_it_wrote(tmp_path):
    model, data, _ = write_small(tmp_path)
    assert run("quantize", str(model), "--calib", str(data), "-o", str(tmp_path / "q"), "--no-progress",
               "--qdq-precision", "fp32").returncode == 0
    out = tmp_path / "t"
    result = run("qdq-translate", str(tmp_path / "q" / "small_qdq.onnx"), "-o", str(out))
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in out.iterdir())
    assert written and all(name in result.stdout for name in written), (written, result.stdout)


def test_the_readme_main_job_leaves_the_clone_clean():
    ignored = subprocess.run(["git", "check-ignore", "-q", "report.html"], cwd=ROOT, check=False)
    assert ignored.returncode == 0, "dlakit report resnet50 -o report.html would leave report.html untracked"
