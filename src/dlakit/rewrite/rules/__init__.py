"""The rule library: one module per rule, registered here in the order the engine tries them.

Rule ids are stable names used on the command line (``--rules``, ``--skip-rules``) and by ``dlakit check``'s
"fixable by" column.
"""

from __future__ import annotations

from dlakit.rewrite.engine import Rule
from dlakit.rewrite.rules import (
    avgpool_split,
    cast_removal,
    conv3d_to_2d,
    cumsum_to_conv,
    deconv_pad_to_crop,
    depth_to_space_to_deconv,
    div_to_mul,
    focus_to_conv,
    fold_mul_add_before_conv,
    fold_mul_add_into_conv,
    fold_pad_into_conv,
    gather_to_conv,
    global_pool_to_pool,
    gru_unroll,
    hardsigmoid_decompose,
    hardswish_decompose,
    identity_removal,
    lift_to_4d,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    logsoftmax_decompose,
    lstm_unroll,
    matmul_to_conv,
    maxpool_chain,
    neg_to_scale,
    norm_decompose,
    reduce_to_pool,
    reshape_merge,
    resize_nearest_to_floor,
    resize_sizes_to_scales,
    rnn_unroll,
    scatter_elements_to_conv,
    space_to_depth_to_conv,
    squeeze_to_reshape,
    transpose_merge,
    transpose_through_elementwise,
    where_to_conv,
)

ALL_RULES: tuple[Rule, ...] = tuple(
    module.RULE
    for module in (
        logical_and, logical_or, logical_xor, logical_not, neg_to_scale, div_to_mul, where_to_conv, gather_to_conv,
        scatter_elements_to_conv, depth_to_space_to_deconv, space_to_depth_to_conv, gru_unroll, lstm_unroll,
        rnn_unroll, cumsum_to_conv,
        matmul_to_conv, norm_decompose, reduce_to_pool, global_pool_to_pool, logsoftmax_decompose, hardswish_decompose,
        hardsigmoid_decompose, identity_removal, cast_removal, transpose_through_elementwise, transpose_merge,
        squeeze_to_reshape, fold_pad_into_conv, resize_sizes_to_scales, resize_nearest_to_floor, fold_mul_add_into_conv,
        fold_mul_add_before_conv, deconv_pad_to_crop, maxpool_chain, avgpool_split,
        focus_to_conv, conv3d_to_2d, lift_to_4d, reshape_merge,
    )
)
RULES: dict[str, Rule] = {rule.id: rule for rule in ALL_RULES}
