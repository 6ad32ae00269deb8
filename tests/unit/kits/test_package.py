"""The kit engine's package loads its names on first use; each name is the function or
class, never a submodule that happens to share it."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import types

import sandkit.kits


def test_every_public_name_is_the_object_not_a_module() -> None:
    for info in pkgutil.iter_modules(sandkit.kits.__path__):  # every submodule loaded first
        importlib.import_module(f"sandkit.kits.{info.name}")
    for name in sandkit.kits.__all__:
        value = getattr(sandkit.kits, name)
        assert not isinstance(value, types.ModuleType), name
        assert value.__name__ == name


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        sandkit.kits.nothing_here  # noqa: B018
    except AttributeError as exc:
        assert "nothing_here" in str(exc)
    else:
        raise AssertionError("no AttributeError")


def test_the_sandbox_cli_does_not_load_the_kit_models_or_the_golden_snapshots() -> None:
    # `sandkit run`/`exec` on a running sandbox or a warm-pool member must not pay for the
    # kit engine or the snapshot code (its supervisor does). The control protocol's models
    # are pydantic, built lazily (defer_build), so pydantic itself is allowed.
    code = (
        "import sys, sandkit.cli.sandbox, sandkit.cli.net, sandkit.cli.pool;"
        "print('sandkit.kits.model' in sys.modules, 'sandkit.vm.golden' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
