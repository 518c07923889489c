"""Options and helpers shared by the commands."""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from dlakit.errors import DlakitError

if TYPE_CHECKING:
    from dlakit.quantize.data import Preset

FORMATS = ("table", "json", "markdown")

ModelArg = typer.Argument(..., help="ONNX model file, or a zoo name (dlakit zoo list).")
PlatformOpt = typer.Option(None, "--platform", "-p", help="Target platform (default agx-orin-64gb; dlakit targets).")
ReleaseOpt = typer.Option(None, "--release", "-r", help="Software release (default: the platform's; dlakit targets).")
ShapesOpt = typer.Option(None, "--shapes", help="Input shapes as in trtexec: name:1x3x224x224[,other:...].")
PrecisionOpt = typer.Option("int8", "--precision", help="Build precision: int8 or fp16.")
NumSamplesOpt = typer.Option(None, "--num-samples", "-n", help="Use at most this many samples.")
ProgressOpt = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on stderr.")
FormatOpt = typer.Option("table", "--format", "-f", help="table or json.")


def check_format(fmt: str, allowed: tuple[str, ...] = FORMATS) -> str:
    if fmt not in allowed:
        raise DlakitError(f"--format: '{fmt}' is not one of {', '.join(allowed)}")
    return fmt


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _floats(text: str | None, option: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise DlakitError(f"{option}: '{text}' is not a comma-separated list of numbers") from None


class Preprocessing:
    """The image preprocessing options as given; :meth:`preset` makes the :class:`Preset` (checking them)."""

    def __init__(self, preset: str, mean: str | None, std: str | None, scale: float | None,
                 channel_order: str | None, layout: str | None) -> None:
        self.name, self.mean, self.std, self.scale = preset, mean, std, scale
        self.channel_order, self.layout = channel_order, layout

    def preset(self) -> Preset:
        from dlakit.quantize.data import make_preset

        return make_preset(self.name, _floats(self.mean, "--mean"), _floats(self.std, "--std"), self.scale,
                           self.channel_order, self.layout)


def _preprocessing_parameters() -> list[inspect.Parameter]:
    from dlakit.choices import PRESET_NAMES

    options: list[tuple[str, Any, Any]] = [
        ("preset", str, typer.Option("imagenet", "--preset", help=f"Image preprocessing: {', '.join(PRESET_NAMES)}.")),
        ("mean", str | None, typer.Option(None, "--mean", help="Per-channel mean after --scale, e.g. "
                                          "123.7,116.3,103.5.")),
        ("std", str | None, typer.Option(None, "--std", help="Per-channel std after --scale, e.g. 58.4,57.1,57.4.")),
        ("scale", float | None, typer.Option(None, "--scale", help="Multiply 0..255 pixels by this before mean/std "
                                             "(e.g. 0.0039216).")),
        ("channel_order", str | None, typer.Option(None, "--channel-order", help="RGB or BGR.")),
        ("layout", str | None, typer.Option(None, "--layout", help="NCHW or NHWC.")),
    ]
    return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
            for name, annotation, default in options]


F = TypeVar("F", bound=Callable[..., Any])


def preprocessing_options(command: F) -> F:
    """One option group for the image preprocessing: ``--preset --mean --std --scale --channel-order --layout``
    take the place of the command's ``preprocessing`` parameter, which receives them as a :class:`Preprocessing`."""
    signature = inspect.signature(command)
    group = _preprocessing_parameters()
    names = [p.name for p in group]
    parameters: list[inspect.Parameter] = []
    for parameter in signature.parameters.values():
        if parameter.name == "preprocessing":
            parameters += [p.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in group]
        else:
            parameters.append(parameter)

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        kwargs["preprocessing"] = Preprocessing(*(kwargs.pop(name) for name in names))
        return command(*args, **kwargs)

    hints = {k: v for k, v in typing_hints(command).items() if k != "preprocessing"}
    wrapper.__annotations__ = {**hints, **{p.name: p.annotation for p in group}}
    wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    del wrapper.__wrapped__  # typer reads the signature above, not the command's own
    return wrapper  # type: ignore[return-value]


def typing_hints(function: Callable[..., Any]) -> dict[str, Any]:
    import typing

    return typing.get_type_hints(function)
