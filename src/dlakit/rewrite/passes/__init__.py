"""Graph-level preparation passes (not anchored on one node): cutting, constant folding, sibling fusion."""

from dlakit.rewrite.passes.constant_folding import fold_constants
from dlakit.rewrite.passes.cut import CutReport, cut_at_outputs, cut_postprocess
from dlakit.rewrite.passes.fuse_siblings import fuse_sibling_convs

__all__ = ["CutReport", "cut_at_outputs", "cut_postprocess", "fold_constants", "fuse_sibling_convs"]
