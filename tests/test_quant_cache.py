"""Calibration cache I/O: the real TensorRT 8.6 cache round-trips, and what we write reads back as trtexec reads it."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from dlakit.errors import DlakitError
from dlakit.quantize.cache import (
    CalibrationCache,
    amax_to_scale,
    format_cache,
    hex_to_scale,
    parse_cache,
    read_cache,
    read_ort_style,
    read_trtexec_style,
    scale_to_hex,
    write_cache,
)
from dlakit.targets import resolve_target
from tests.assets import shared_file


def test_real_cache_round_trips_byte_for_byte(tmp_path):
    path = shared_file("data/real/yolov5s_qat2ptq.cache")
    text = path.read_text()
    cache = read_cache(path)
    assert cache.header == "TRT-8600-EntropyCalibration2"
    assert len(cache.scales) == 197
    assert format_cache(cache) == text
    copy = tmp_path / "copy.cache"
    write_cache(copy, cache)
    assert copy.read_bytes() == path.read_bytes()


def test_real_cache_written_fresh_is_value_identical_and_decodes_as_trtexec_does():
    text = shared_file("data/real/yolov5s_qat2ptq.cache").read_text()
    cache = parse_cache(text)
    fresh = format_cache(CalibrationCache(cache.version, cache.algorithm, dict(cache.scales)))
    assert read_trtexec_style(fresh) == cache.scales
    assert read_ort_style(fresh) == cache.scales
    for line in text.splitlines()[1:]:
        name, _, value = line.rpartition(": ")
        assert cache.scales[name] == struct.unpack("<f", bytes.fromhex(value)[::-1])[0]
    assert cache.scales["images"] == pytest.approx(0.0078, rel=0.01)  # 1/128: pixels scaled to [0, 1]


@pytest.mark.parametrize(("release", "header"), [("jp5", "TRT-8502-"), ("jp6.0", "TRT-8602-"),
                                                 ("jp6", "TRT-100300-"), ("drive-6.0.6", "TRT-8510-")])
def test_header_carries_the_release_version_int(release, header):
    target = resolve_target(None if release != "drive-6.0.6" else "drive-orin", release)
    cache = CalibrationCache.from_amax({"x": 1.0}, target.release.trt_version_int)
    assert format_cache(cache).startswith(header + "EntropyCalibration2\n")


def test_scale_is_amax_over_127_in_float32_bits():
    scale = amax_to_scale(6.0)
    assert scale == float(np.float32(6.0 / 127))
    assert hex_to_scale(scale_to_hex(scale)) == scale
    assert scale_to_hex(1e-40) == "000116c2"  # a denormal still gets 8 digits: trtexec reads exactly 8


def test_names_with_colons_and_unpadded_hex_parse():
    cache = parse_cache("TRT-8600-EntropyCalibration2\nblock:1/out: 3c00f9f4\nsmall: 116c2\n\n")
    assert cache.scales["block:1/out"] == hex_to_scale("3c00f9f4")
    assert cache.scales["small"] == hex_to_scale("000116c2")
    text = format_cache(CalibrationCache("8600", scales={"block:1/out": cache.scales["block:1/out"]}))
    assert read_trtexec_style(text) == {"block:1/out": cache.scales["block:1/out"]}


@pytest.mark.parametrize(("text", "fragment"), [
    ("", "empty calibration cache"),
    ("data: 3c008912\n", "c.cache:1:"),
    ("TRT-8600-EntropyCalibration2\ndata 3c008912\n", "c.cache:2:"),
    ("TRT-8600-EntropyCalibration2\ndata: 3c00891234\n", "c.cache:2:"),
    ("TRT-8600-EntropyCalibration2\ndata: zz\n", "c.cache:2:"),
    ("TRT-8600-EntropyCalibration2\ndata: 3c008912\ndata: 3c008912\n", "appears twice"),
    ("TRT-8600-EntropyCalibration2\ndata: 7fc00000\n", "not a positive number"),
])
def test_malformed_cache_is_a_one_line_error_naming_file_and_line(tmp_path, text, fragment):
    path = tmp_path / "c.cache"
    path.write_text(text)
    with pytest.raises(DlakitError) as info:
        read_cache(path)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_missing_cache_file(tmp_path):
    with pytest.raises(DlakitError, match="no such calibration cache"):
        read_cache(tmp_path / "absent.cache")
