"""``dlakit --help`` lists commands without importing them (nor onnx, onnx_ir, numpy), and the list stays true."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import typer

from dlakit.cli import COMMAND_MODULES, COMMANDS
from tests.cli import run


def _registered() -> dict[str, tuple[str, str]]:
    found = {}
    for module in COMMAND_MODULES:
        sub = typer.Typer()
        importlib.import_module(f"dlakit.cli.{module}").register(sub)
        for command in sub.registered_commands:
            first = inspect.getdoc(command.callback).split("\n\n")[0]
            found[command.name] = (module, " ".join(first.split()))
        for group in sub.registered_groups:
            found[group.name] = (module, group.typer_instance.info.help)
    return found


def test_command_table_matches_what_the_modules_register():
    assert _registered() == COMMANDS


def test_help_and_version_import_no_command_module():
    code = ("import sys\nfrom dlakit.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('onnx', 'onnx_ir', 'numpy', 'ml_dtypes', 'onnxruntime', 'matplotlib', "
            "'dlakit.check', 'dlakit.cli.check') if m in sys.modules]\nprint('HEAVY', heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in done.stdout, done.stdout + done.stderr
    assert "qdq-translate" in done.stdout and "recover" in done.stdout


def test_help_shows_no_bool_type_for_flags_and_upper_case_arguments():
    for args in (["--help"], ["trtexec", "--help"], ["zoo", "build", "--help"]):
        result = run(*args)
        assert result.returncode == 0, result.stderr
        assert "<bool>" not in result.stdout and "{model}" not in result.stdout, result.stdout
    assert "dlakit trtexec [OPTIONS] MODEL" in " ".join(run("trtexec", "--help").stdout.split())


def test_prepare_help_lists_every_recipe_uncut():
    from dlakit.choices import NETWORK_CHOICES

    text = " ".join(run("prepare", "--help").stdout.split())
    assert "…" not in text and all(name in text for name in NETWORK_CHOICES)


def test_every_command_help_imports_no_heavy_module():
    names = [*COMMANDS, "zoo build"]
    code = ("import sys\nfrom dlakit.cli import main\nfor args in " + repr([n.split() for n in names]) + ":\n"
            "    try:\n        main([*args, '--help'])\n    except SystemExit:\n        pass\n"
            "heavy = [m for m in ('onnx', 'onnx_ir', 'numpy', 'ml_dtypes', 'onnxruntime', 'matplotlib', 'sympy') "
            "if m in sys.modules]\nprint('HEAVY', heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "HEAVY []" in done.stdout, done.stdout[-2000:] + done.stderr


def test_help_choices_equal_the_library_tables():
    """dlakit.choices lists names for --help without importing the tables; they must stay the tables' keys."""
    from dlakit import choices
    from dlakit.prepare.recognise import GENERIC, SIGNATURES
    from dlakit.quantize.data import PRESETS
    from dlakit.rewrite import known_ids

    assert tuple(PRESETS) == choices.PRESET_NAMES
    assert ("auto", *SIGNATURES, GENERIC) == choices.NETWORK_CHOICES
    assert tuple(known_ids()) == choices.FIX_RULE_IDS
