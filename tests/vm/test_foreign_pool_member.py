"""A pool member whose supervisor runs another sandkit installation is never adopted.

As a user saw it: a member started from another venv (since deleted) was adopted, its
supervisor failed to import sandkit.sandbox.lifecycle, and `sandkit create` failed with
"the supervisor closed the connection", leaving no sandbox. Now such a member is drained
and replaced, and the new sandbox starts cold.

The other installation is made as an editable install would make it (no build backend is
available offline): a venv whose site-packages holds a .pth to a copy of the sources and
a dist-info naming another version; its dependencies come from this venv's site-packages
(a plain path entry, so this venv's own .pth files, and its sandkit, are not loaded)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from tests.vm.conftest import Env
from tests.vm.test_pool import members, wait_pooled

pytestmark = pytest.mark.vm
REPO = Path(__file__).resolve().parents[2]
FOREIGN_VERSION = "0.0.1+elsewhere"


def foreign_installation(root: Path) -> Path:
    """Another installation of sandkit (a copy of the sources, another version) in its
    own venv; returns its python."""
    source = root / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "server", source / "server", ignore=ignore)
    shutil.copytree(REPO / "kits", source / "kits", ignore=ignore)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    site = Path(purelib)
    ours = sysconfig.get_paths()["purelib"]  # pydantic and the rest, after the copy
    (site / "sandkit_copy.pth").write_text(f"{source / 'server'}\n{ours}\n")
    info = site / f"sandkit-{FOREIGN_VERSION}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: sandkit\nVersion: {FOREIGN_VERSION}\n"
    )
    (info / "RECORD").write_text("")
    return python


def state_of(env: Env, name: str) -> dict[str, object]:
    return dict(json.loads((env.state / name / "state.json").read_text()))


def test_a_member_of_another_installation_is_replaced_not_adopted(env: Env, tmp_path: Path) -> None:
    pooled = Env({**env.vars, "SANDKIT_POOL_SIZE": "1"}, env.state)
    pooled.sk("pool", "drain", check=True)
    python = foreign_installation(tmp_path / "elsewhere")
    said = subprocess.run(
        [str(python), "-c", "import sandkit.sandbox.protocol as p; print(p.sandkit_version())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert said.stdout.strip() == FOREIGN_VERSION
    fill = [str(python), "-m", "sandkit", "pool", "fill", "--memory", "512m"]
    done = subprocess.run(fill, env=pooled.vars, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    (old,) = wait_pooled(pooled, 1)
    old_name = str(old["name"])
    assert state_of(pooled, old_name)["sandkit"] == FOREIGN_VERSION
    assert state_of(pooled, old_name)["prefix"] == str(tmp_path / "elsewhere" / "venv")
    shutil.rmtree(tmp_path / "elsewhere")  # the user deleted that venv

    run = pooled.sk(
        "run", "shell", "--name", "fromhere", "--memory", "512m", "--", "echo", "cold start",
        timeout=600,
    )  # fmt: skip
    try:
        assert run.returncode == 0, run.stderr
        assert "cold start" in run.stdout
        mine = state_of(pooled, "fromhere")
        assert mine["adopted_from"] is None and mine["prefix"] == sys.prefix
        assert not (pooled.state / old_name).exists()  # drained
        # ... and replaced by a member of this installation (the background refill).
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            ready = [m for m in members(pooled) if m["state"] == "pooled"]
            if ready and state_of(pooled, str(ready[0]["name"]))["prefix"] == sys.prefix:
                break
            time.sleep(1)
        else:
            raise AssertionError(f"the pool was not refilled: {members(pooled)}")
    finally:
        pooled.sk("rm", "-f", "fromhere")
        pooled.sk("pool", "drain")
