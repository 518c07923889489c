"""The Python API's errors name parameters; the command line shows the same message with its flags (issue 19)."""

from __future__ import annotations

import pytest

from dlakit.cli import error_line
from dlakit.errors import DlakitError, OptionError


def test_library_names_the_parameter_and_the_cli_the_flag():
    from dlakit.quantize.data import make_preset

    with pytest.raises(OptionError) as caught:
        make_preset("imagenet", channels="GBR")
    exc = caught.value
    assert isinstance(exc, DlakitError) and exc.option == "channels"
    assert str(exc) == "channels: 'GBR' is not RGB or BGR" and "--" not in str(exc)
    assert error_line(exc) == "--channel-order: 'GBR' is not RGB or BGR"


def test_every_option_of_a_message_becomes_its_flag():
    exc = OptionError("give {target_sqnr_db} or {max_fp16_macs}, not both", "target_sqnr_db", "max_fp16_macs")
    assert str(exc) == "give target_sqnr_db or max_fp16_macs, not both"
    assert error_line(exc) == "give --target-sqnr or --max-fp16-macs, not both"


def test_braces_in_values_are_kept():
    exc = OptionError("{layout}: '{x}' is not NCHW or NHWC", "layout")
    assert str(exc) == "layout: '{x}' is not NCHW or NHWC"
    assert error_line(exc) == "--layout: '{x}' is not NCHW or NHWC"


def test_recover_options_name_parameters():
    import numpy as np

    from dlakit.model import load_model
    from dlakit.recover.observe import ArraySource
    from dlakit.recover.pipeline import RecoverOptions, recover
    from tests.test_recover_pipeline import SIZE, _net

    source = ArraySource({"x": np.zeros((2, 3, SIZE, SIZE), np.float32)})
    with pytest.raises(OptionError, match=r"^max_fp16_macs: 2\.0 is not a fraction") as caught:
        recover(load_model(_net()), source, RecoverOptions(max_fp16_macs=2.0))
    assert error_line(caught.value).startswith("--max-fp16-macs: 2.0 is not a fraction")
