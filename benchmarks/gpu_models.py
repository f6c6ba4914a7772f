"""The models of the GPU run, written on the device from the bundle (the demo model itself is too large to carry).

    python benchmarks/gpu_models.py BUNDLE_DIR OUT_DIR

- `SmolLM2-135M-Random.F16.gguf`: the demo model's GGUF keys (tokenizer, chat template, hyperparameters) and its
  272 tensors in their shapes, with random weights (seed 0; norms 1, the rest N(0, 0.05) in F16, 1-D tensors F32).
  llama.cpp computes exactly what it computes for the real model of these shapes and types, so its speed, buffers
  and placement are the demo model's; its text and KLD are those of noise. general.name says so.
- `Tiny-MoE.gguf`: tests/moe_model.py's qwen3moe (4 layers, 8 experts, 2 used) with the same tokenizer, for
  --n-cpu-moe.
Needs numpy and gguf (the carried wheel).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_carry as carry  # noqa: E402

from moe_model import write_tiny_moe_gguf  # noqa: E402

TWIN = "SmolLM2-135M-Random.F16.gguf"
TWIN_NAME = "SmolLM2-135M Random (synthetic: random weights in SmolLM2-135M's shapes)"
MOE = "Tiny-MoE.gguf"
MOE_LAYERS, MOE_EXPERTS, MOE_USED = 4, 8, 2
_REPLACED = {"general.name", "general.file_type", "general.quantization_version"}


def write_twin(meta: Path, shapes: Path, out: Path) -> Path:
    """The random-weight model of the demo model's keys and shapes, F16 (written under a temporary name)."""
    info = json.loads(shapes.read_text(encoding="utf-8"))
    reader = GGUFReader(meta)
    part = out.with_name(out.name + ".part")
    writer = GGUFWriter(part, info["arch"])
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture" or key in _REPLACED:
            continue
        vtype = field.types[0]
        writer.add_key_value(key, field.contents(), vtype,
                             sub_type=field.types[1] if vtype == GGUFValueType.ARRAY else None)
    writer.add_name(TWIN_NAME)
    writer.add_description(f"Random weights (numpy seed 0) in the tensor shapes of {info['source']} (sha256 "
                           f"{info['source_sha256']}); its keys and tokenizer copied. Not a language model.")
    writer.add_file_type(1)  # MOSTLY_F16
    rng = np.random.default_rng(0)
    for name, shape in info["tensors"]:
        np_shape = tuple(reversed(shape))  # GGML's ne0 is numpy's last axis
        if len(shape) == 1:
            data = np.ones(np_shape, dtype=np.float32)
        else:
            data = (rng.standard_normal(np_shape, dtype=np.float32) * 0.05).astype(np.float16)
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    part.replace(out)
    return out


def main(bundle: Path, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    twin = write_twin(bundle / carry.META_GGUF, bundle / carry.SHAPES, out_dir / TWIN)
    part = out_dir / (MOE + ".part")
    write_tiny_moe_gguf(part, n_layers=MOE_LAYERS, n_experts=MOE_EXPERTS, n_experts_used=MOE_USED,
                        tokenizer_from=bundle / carry.META_GGUF)
    part.replace(out_dir / MOE)
    for p in (twin, out_dir / MOE):
        print(f"{p.stat().st_size / 2**20:8.1f} MiB  {p}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
