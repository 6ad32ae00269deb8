"""The guest agent as the image holds it: every module of sandkit.guest is in the image key
and copied in, under empty package stubs, and imports from there with the standard library
alone, the way init.sh starts it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import sandkit.guest
from sandkit import hostconfig
from sandkit.errors import SetupError
from sandkit.vm import image as images
from sandkit.vm import imagebuild
from sandkit.vm.imagebuild import AGENT_ROOT

GUEST = Path(sandkit.guest.__file__).parent
MODULES = sorted(p.name for p in GUEST.glob("*.py") if p.name != "__init__.py")


@pytest.fixture
def apt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """What the key reads from apt and the host, fixed (no apt-cache run)."""
    monkeypatch.setattr(images, "kernel_package", lambda: ("linux-image-6.1.0-99", "6.1.999"))
    monkeypatch.setattr(hostconfig, "apt_mirrors", lambda: ["http://mirror.test/debian"])
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_the_guest_files_are_init_and_every_module() -> None:
    files = images.guest_files()
    assert list(files) == sorted(["init.sh", *MODULES])
    assert {"agent.py", "procs.py"} <= set(files)
    for name, data in files.items():
        assert data == (GUEST / name).read_bytes(), name


@pytest.mark.usefixtures("apt")
def test_a_change_to_any_guest_file_changes_the_image_key(monkeypatch: pytest.MonkeyPatch) -> None:
    key, inputs = images.image_key()
    files = images.guest_files()
    guest = inputs["guest"]
    assert isinstance(guest, dict) and set(guest) == set(files)
    for name in files:
        changed = {**files, name: files[name] + b"\n"}
        monkeypatch.setattr(images, "guest_files", lambda changed=changed: changed)
        assert images.image_key()[0] != key, name


def uploads(hooks: list[str]) -> dict[str, Path]:
    """The hooks' uploads: where in the image -> which file."""
    out = {}
    for hook in hooks:
        if hook.startswith("upload "):
            _, source, target = hook.split()
            out[target] = Path(source)
    return out


def test_the_hooks_upload_each_module_under_empty_package_stubs(tmp_path: Path) -> None:
    package = images.write_agent(tmp_path / "agent")
    hooks = imagebuild.agent_hooks(package)
    copied = uploads(hooks)
    guest = f"{AGENT_ROOT}/sandkit/guest"
    assert set(copied) == {
        f"{AGENT_ROOT}/sandkit/__init__.py",
        f"{guest}/__init__.py",
        *(f"{guest}/{name}" for name in MODULES),
    }
    for target, source in copied.items():
        expected = b"" if target.endswith("/__init__.py") else (GUEST / source.name).read_bytes()
        assert source.read_bytes() == expected, target
        # Made before, readable after.
        assert hooks.index(f'mkdir -p "$1{guest}"') < hooks.index(f"upload {source} {target}")
        assert hooks[hooks.index(f"upload {source} {target}") + 1] == f'chmod 0644 "$1{target}"'
    assert hooks[-1] == f'chroot "$1" python3 -m compileall -q {AGENT_ROOT}/sandkit'


def init_command() -> str:
    """The Python code init.sh hands PID 1 to."""
    found = re.search(r"python3 -IS -c \\\n\s*'([^']*)'\n", (GUEST / "init.sh").read_text())
    assert found, "init.sh no longer starts the agent with python3 -IS -c"
    return found.group(1)


def test_the_agent_imports_from_the_images_layout_with_the_standard_library_alone(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    for target, source in uploads(
        imagebuild.agent_hooks(images.write_agent(tmp_path / "a"))
    ).items():
        (root / target.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, root / target.lstrip("/"))
    code = init_command()
    start = f'import sys; sys.path.append("{AGENT_ROOT}"); from sandkit.guest.agent import main'
    assert code == f"{start}; sys.exit(main())"
    # init.sh's code up to main() (which would look for the VM's port), from the copy.
    check = (
        start.replace(AGENT_ROOT, str(root / AGENT_ROOT.lstrip("/")))
        + "; import sandkit; print(sandkit.__file__); print(*sorted(sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-IS", "-c", check], capture_output=True, text=True, check=True
    )
    where, modules = done.stdout.splitlines()
    assert where == str(root / AGENT_ROOT.lstrip("/") / "sandkit" / "__init__.py")
    ours = {m for m in modules.split() if m.split(".")[0] == "sandkit"}
    assert ours == {"sandkit", "sandkit.guest", *(f"sandkit.guest.{m[:-3]}" for m in MODULES)}
    known = {*sys.stdlib_module_names, "sandkit", "__main__"}
    foreign = {m for m in modules.split() if m.split(".")[0] not in known}
    assert not foreign


def test_on_the_host_the_agent_imports_nothing_else_of_sandkit() -> None:
    code = "import sys, sandkit.guest.agent; print(*sorted(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    ours = {m for m in done.stdout.split() if m.split(".")[0] == "sandkit"}
    assert ours == {"sandkit", "sandkit.guest", *(f"sandkit.guest.{m[:-3]}" for m in MODULES)}


def test_a_guest_file_edited_after_the_key_is_never_built_under_it(
    apt: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The build reads the guest code once and checks it against the key: an edit made
    in between (an editor saving, a checkout) fails the build before anything is
    written, instead of caching the new code under the old code's key."""
    key, inputs = images.image_key()
    edited = {**images.guest_files(), "procs.py": b"# edited meanwhile\n"}
    monkeypatch.setattr(images, "guest_files", lambda: edited)
    final = tmp_path / "images" / key
    with pytest.raises(SetupError, match="changed after the image key was computed"):
        images.build(key, inputs, final, lambda *_: None)
    assert not final.parent.exists() or not any(final.parent.iterdir())
