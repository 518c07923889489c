"""Options and helpers shared by the commands."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from dlakit.errors import DlakitError

if TYPE_CHECKING:
    from dlakit.model import LoadedModel

FORMATS = ("table", "json", "markdown")

ModelArg = typer.Argument(..., help="ONNX model file, or a zoo name (dlakit zoo list).")
PlatformOpt = typer.Option(None, "--platform", "-p", help="Target platform (default agx-orin-64gb; dlakit targets).")
ReleaseOpt = typer.Option(None, "--release", "-r", help="Software release (default: the platform's; dlakit targets).")
ShapesOpt = typer.Option(None, "--shapes", help="Input shapes as in trtexec: name:1x3x224x224[,other:...].")
PrecisionOpt = typer.Option("int8", "--precision", help="Build precision: int8 or fp16.")


def load_input(model: str, shapes: str | None = None, allow_dynamic: bool = False) -> LoadedModel:
    """Load a model path, or build a zoo network when ``model`` is a zoo name and no such file exists.

    ``allow_dynamic``: keep inputs without --shapes dynamic (check places their layers on the GPU)."""
    from dlakit.model import load_model, parse_shapes  # onnx_ir is heavy: not imported until a model is read

    parsed = parse_shapes(shapes)
    if not Path(model).exists() and importlib.util.find_spec("dlakit.zoo") is not None:
        from dlakit import zoo
        from dlakit.zoo.registry import suggestion

        if getattr(zoo, "is_zoo_name", lambda _: False)(model):
            loaded = load_model(zoo.resolve(model), parsed, allow_dynamic=allow_dynamic)
            loaded.source = model
            return loaded
        if suggestion(model) and not Path(model).suffix:
            raise DlakitError(f"{model}: no such file or zoo network{suggestion(model)}; see dlakit zoo list")
    return load_model(model, parsed, allow_dynamic=allow_dynamic)


def check_format(fmt: str, allowed: tuple[str, ...] = FORMATS) -> str:
    if fmt not in allowed:
        raise DlakitError(f"--format: '{fmt}' is not one of {', '.join(allowed)}")
    return fmt


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))
