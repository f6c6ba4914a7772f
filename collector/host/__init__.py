"""The machine a run measures on: host and GPU facts, vendor telemetry (NVML, amdsmi / amdgpu sysfs).

- `hardware`: the host probe and the sampler thread (VRAM, power, energy, RSS) during a run.
- `gpus`: a record's GPUs, the devices llama.cpp listed and used, with the vendor's facts added.
- `amdgpu`: AMD's facts and telemetry.
"""

__all__ = ["amdgpu", "gpus", "hardware"]
