"""Names and defaults that ``dlakit CMD --help`` shows, in a module that imports nothing heavy.

A command's help is built when its module registers it, so every choice list and default in a flag's help must be
importable without onnx, onnx_ir, numpy or onnxruntime (issue 19: ``--help`` of every command well under a
second). The library modules take these from here (:data:`METHODS`, :data:`DEFAULT_TOLERANCE`,
:data:`DEFAULT_BUDGET_MB`); where the library keys a table of objects by name (presets, recipes), the names are
listed here and tests/test_cli_startup.py holds them equal to the table's keys.
"""

from __future__ import annotations

#: calibration methods (dlakit.quantize.calibrators)
METHODS = ("max", "entropy", "percentile", "mse")
#: activations held per batch during calibration, MB (dlakit.quantize.calibrate)
DEFAULT_BUDGET_MB = 1024
#: largest relative difference a rewrite's verification accepts (dlakit.rewrite.verify)
DEFAULT_TOLERANCE = 1e-4
#: image preprocessing presets: the keys of dlakit.quantize.data.PRESETS
PRESET_NAMES = ("imagenet", "resnet50", "resnet34-backbone", "efficientnet-lite", "ssd-mobilenetv1", "ssd-resnet34",
                "retinanet-resnext50", "retinanet-resnet34", "unit")
#: ``dlakit prepare --network``: auto, the recognised networks (the keys of dlakit.prepare.recognise.SIGNATURES),
#: generic
NETWORK_CHOICES = ("auto", "resnet50", "ssd-resnet34", "ssd-mobilenetv1", "retinanet-resnext50", "retinanet-resnet34",
                   "resnet34-backbone", "generic")
#: 2:4 pruning modes (dlakit.sparsity.pattern)
SPARSITY_MODES = ("magnitude", "force")
#: ``dlakit fix --rules`` ids, in the order they run: dlakit.rewrite.known_ids()
FIX_RULE_IDS = ("logical-and", "logical-or", "logical-xor", "logical-not", "neg-to-scale", "div-to-mul",
                "where-to-conv",
                "gather-to-conv", "scatter-elements-to-conv", "depth-to-space-to-deconv", "space-to-depth-to-conv",
                "gru-unroll", "lstm-unroll", "rnn-unroll", "cumsum-to-conv", "matmul-to-conv", "norm-decompose",
                "reduce-to-pool", "global-pool-to-pool", "logsoftmax-decompose", "hardswish-decompose",
                "hardsigmoid-decompose", "identity-removal", "cast-removal", "transpose-through-elementwise",
                "transpose-merge", "squeeze-to-reshape", "fold-pad-into-conv", "resize-sizes-to-scales",
                "resize-nearest-to-floor", "fold-mul-add-into-conv", "fold-mul-add-before-conv", "deconv-pad-to-crop",
                "maxpool-chain", "avgpool-split", "focus-to-conv", "conv3d-to-2d", "lift-to-4d", "reshape-merge",
                "constant-folding", "fuse-sibling-convs")
