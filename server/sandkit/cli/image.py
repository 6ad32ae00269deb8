"""`sandkit image build|ls|rm`: the cached guest images."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from sandkit.ui import ProgressLine, table


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    formatter: type[argparse.HelpFormatter],
) -> None:
    img = commands.add_parser(
        "image",
        help="build, list or remove guest images",
        description="Guest images live in ~/.cache/sandkit/images/<key>; the key "
        "hashes every input, so a changed mirror, kernel or guest code means a new image.\n"
        "An image that root built into /var/cache/sandkit/images (image build --system) "
        "is used by everyone whose own cache lacks it.",
        formatter_class=formatter,
    )
    verbs = img.add_subparsers(dest="verb", metavar="VERB", required=True)
    build = verbs.add_parser("build", help="build the current image (no-op when it is cached)")
    build.add_argument("--force", action="store_true", help="rebuild even when cached")
    build.add_argument(
        "--system",
        action="store_true",
        help="as root: build into /var/cache/sandkit, for every user of this machine",
    )
    build.add_argument(
        "--docker",
        action="store_true",
        help="the variant with Docker Engine (what `-docker` templates and the docker kit use)",
    )
    ls = verbs.add_parser("ls", help="list cached images")
    ls.add_argument("--json", action="store_true", help="print JSON")
    rm = verbs.add_parser("rm", help="remove cached images")
    rm.add_argument(
        "keys", nargs="*", metavar="KEY", help="images to remove (default: all but the current)"
    )


def run(args: argparse.Namespace) -> int:
    from sandkit.vm import image as images

    if args.verb == "build":
        return _build(args)
    root = images.images_dir()
    found = (
        [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]
        if root.is_dir()
        else []
    )
    current = {images.image_key(v)[0] for v in images.VARIANTS}
    if args.verb == "ls":
        return _list(args, found, current)
    return _remove(args, found, current)


def _build(args: argparse.Namespace) -> int:
    from sandkit.vm import image as images

    variant = images.DOCKER if args.docker else images.BASE
    if args.force:
        key, _ = images.image_key(variant)
        shutil.rmtree(images.images_dir(args.system) / key, ignore_errors=True)
    built = images.ensure_image(
        ProgressLine("guest image").step, system=args.system, variant=variant
    )
    print(f"{built.key} {built.path} ({built.variant}, kernel {built.kernel_release})")
    return 0


def _list(args: argparse.Namespace, found: list[Path], current: set[str]) -> int:
    from sandkit.vm import image as images

    rows: list[dict[str, Any]] = []
    for path in found:
        image = images.load(path)
        size = sum(f.stat().st_blocks * 512 for f in path.iterdir() if f.is_file())
        rows.append(
            {
                "key": path.name,
                "current": path.name in current,
                "valid": image is not None,
                "variant": image.variant if image else None,
                "kernel": image.kernel_release if image else None,
                "size_mib": size >> 20,
                "path": str(path),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        table(
            [
                (
                    r["key"] + (" *" if r["current"] else ""),
                    r["variant"] or "-",
                    r["kernel"] or "(damaged)",
                    f"{r['size_mib']} MiB",
                    r["path"],
                )
                for r in rows
            ],
            ("KEY", "VARIANT", "KERNEL", "SIZE", "PATH"),
        )
    )
    return 0


def _remove(args: argparse.Namespace, found: list[Path], current: set[str]) -> int:
    from sandkit.vm import golden

    targets = [p for p in found if (p.name in args.keys if args.keys else p.name not in current)]
    for path in targets:
        shutil.rmtree(path)
        print(f"removed {path.name}")
    # The warm pool's golden snapshots of images that are gone are of no use any more.
    kept = {p.name for p in found} - {p.name for p in targets}
    stale = golden.remove(keep_images=kept)
    if stale:
        print(f"removed {stale} golden snapshot(s) of removed images")
    return 0
