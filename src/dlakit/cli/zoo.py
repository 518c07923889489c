"""``dlakit zoo``: list and build the reference networks (no downloads)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from dlakit.atomic import write_with
from dlakit.cli.common import check_format, print_json
from dlakit.errors import DlakitError

zoo_app = typer.Typer(
    help="Reference networks (ResNet-50, SSD, RetinaNet...) built offline, as published or prepared for DLA.",
    no_args_is_help=True,
)

if TYPE_CHECKING:
    from dlakit.zoo import Network


def network_record(net: Network) -> dict[str, Any]:
    """The JSON record of one network; field names are part of the CLI's stable interface."""
    return {
        "name": net.name,
        "title": net.title,
        "input": {"name": net.input_name, "shape": list(net.input_shape)},
        "batch": net.default_batch,
        "classes": net.classes,
        "params": net.measured_params,
        "gmacs_per_image": net.measured_gmacs,
        "published_params_m": net.published_params_m,
        "published_gmacs_per_image": net.published_gmacs,
        "published_source": net.published_source,
        "postprocess_on_gpu": net.postprocess,
        "cut_points": {out: list(tensors) for out, tensors in net.cut_points.items()},
        "matches": net.matches,
        "assumptions": list(net.assumptions),
    }


#: the largest --batch accepted, a guard against typos: DLA engines run batches of a few images, and 2^32 folded
#: into the graph's shapes overflows TensorRT's 32-bit dimensions
MAX_BATCH = 65535


@zoo_app.command("list")
def list_networks(fmt: str = typer.Option("table", "--format", "-f", help="table or json.")) -> None:
    """List the reference networks: input, default batch, parameters and MACs of the build, GPU post-processing."""
    from dlakit.zoo import NETWORKS

    check_format(fmt, ("table", "json"))
    if fmt == "json":
        print_json({"networks": [network_record(n) for n in NETWORKS.values()]})
        return
    table = Table(title="Reference networks (dlakit zoo build NAME -o FILE)", title_justify="left")
    for column, justify in (("name", "left"), ("input HxW", "left"), ("batch", "right"), ("params", "right"),
                            ("GMACs", "right"), ("published", "left"), ("post-processing on GPU", "left")):
        table.add_column(column, justify=justify, no_wrap=column == "name")  # type: ignore[arg-type]
    for n in NETWORKS.values():
        published = " / ".join(f for f in (f"{n.published_params_m:g}M" if n.published_params_m else "",
                                         f"{n.published_gmacs:.4g}G" if n.published_gmacs else "") if f)
        table.add_row(n.name, "x".join(map(str, n.input_hw)), str(n.default_batch),
                      f"{n.measured_params / 1e6:.2f}M", f"{n.measured_gmacs:.2f}", published or "-",
                      n.postprocess)
    console = Console()
    if not console.is_terminal:  # piped or captured: full rows rather than rich's 80-column default
        console.width = max(console.width, 120)
    console.print(table)
    typer.echo("params: prepared form as built; GMACs: per image; published: the original's figures.")


@zoo_app.command("build")
def build_network(
    name: str = typer.Argument(..., help="Zoo name (dlakit zoo list)."),
    output: Path = typer.Option(..., "--output", "-o", help="ONNX file to write."),
    form: str = typer.Option("prepared", "--form", help="prepared (DLA-ready) or published (with post-processing)."),
    batch: int | None = typer.Option(None, "--batch", help="Batch size (default: the network's reference batch)."),
    weights: Path | None = typer.Option(None, "--weights", help=".npz of parameters keyed by name (default: random)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random weights."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json (what was written)."),
) -> None:
    """Build a reference network and write it atomically (a failure never leaves a partial file)."""
    import onnx

    from dlakit.zoo import FORMS, build, get

    check_format(fmt, ("table", "json"))
    if form not in FORMS:
        raise DlakitError(f"--form: '{form}' is not one of {', '.join(FORMS)}")
    if output.is_dir():
        raise DlakitError(f"{output}: is a directory; pass the path of the .onnx file to write")
    if batch is not None and batch > MAX_BATCH:
        raise DlakitError(f"--batch: {batch} is over {MAX_BATCH} (a DLA engine runs batches of a few images)")
    if not 0 <= seed < 2**32:
        raise DlakitError(f"--seed: {seed} is not in 0..{2**32 - 1}")
    net = get(name)
    model = build(net.name, form=form, batch=batch, weights=weights, seed=seed)
    write_with(output, lambda tmp: onnx.save(model, str(tmp)))
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    record = {
        "name": net.name, "form": form, "output": str(output), "input": {"name": net.input_name, "shape": dims},
        "outputs": [o.name for o in model.graph.output], "nodes": len(model.graph.node),
        "bytes": model.ByteSize(), "weights": str(weights) if weights else f"random (seed {seed})",
    }
    if fmt == "json":
        print_json(record)
        return
    shape = "x".join(map(str, record["input"]["shape"]))
    typer.echo(f"wrote {output} ({net.name}, {form}, input {net.input_name}:{shape}, {record['nodes']} nodes, "
               f"{len(record['outputs'])} outputs, {record['bytes'] / 1e6:.1f} MB, weights {record['weights']})")


def register(app: typer.Typer) -> None:
    app.add_typer(zoo_app, name="zoo")
