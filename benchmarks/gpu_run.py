"""The GPU run: on a bare NVIDIA host (no network), the working tree plus .gpu/ in, records, logs and timings out.

    bash benchmarks/gpu_run.sh [--backend cuda|vulkan] [--deadline-s 540] [--out DIR] [--work DIR]
                               [--plan-steps speed-dense,speed-moe,kld,tune]

Steps, each timed: check the carried bundle (benchmarks/gpu_carry.py's list) -> install the wheels and the collector
into a local prefix -> compile llama-server, -perplexity, -quantize and -tokenize of the pinned build for the backend
(CUDA: the card's architecture only, read from nvidia-smi) with `collector llama compile` -> write the models
(gpu_models.py) -> quantize the ladder -> the GPU plan (benchmarks/gpu_plans/: -ngl 99 and 12, flash attention off
and on, f16 and q8_0 KV; --n-cpu-moe on the MoE model; a KLD ladder; a short tune within a GPU memory budget) ->
pack. The deadline (default 540 s from the start) is watched between and inside steps: a step that cannot start in
the time left is skipped, one that runs past it is stopped (the collector keeps every finished record), and the
pack step always runs. `--backend vulkan` with GGML_VK_VISIBLE_DEVICES=0 rehearses it all on Mesa's llvmpipe.

Out (at most 8 files, none in folders): summary.txt (the step table and one line per record), timings.json,
records.tar.gz (data/records/...), logs.tar.gz (every llama-server log, every llama-perplexity/llama-quantize
output, the compile log, nvidia-smi -q, the tools' --version and --list-devices); gpu_run.sh adds run.log.

`gpu_run.py collector LOGDIR ARGS...` is the collector's CLI with every tool log kept in LOGDIR (used by the steps).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import hashlib
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import gpu_carry as carry  # noqa: E402

TARGETS = ("llama-server", "llama-perplexity", "llama-quantize", "llama-tokenize")  # tokenize: the KLD's checks
LADDER = ("Q4_1", "Q2_K")  # Q4_1: the demo model's type, measured for speed; both scored for KLD
TWIN_STEM = "SmolLM2-135M-Random"
RESERVE_S = 25  # kept for the pack step
TUNE_MAX_MIN = 3.0
TUNE_ARGS = ("--ctx", "1024", "--depth", "0", "--memory-budget", "80", "--kv", "f16,q8_0")
PLAN_STEPS = ("speed-dense", "speed-moe", "kld", "tune")
# a step starts only with this much time left (seconds): enough for its first useful result
MIN_START_S = {"models": 20, "quantize": 20, "speed-dense": 60, "speed-moe": 30, "kld": 45, "tune": 60}
# where the NVIDIA driver's libcuda.so.1 lives (container runtimes mount it into one of these)
DRIVER_DIRS = ["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/local/nvidia/lib64", "/usr/local/nvidia/lib",
               "/lib/x86_64-linux-gnu"]
MAX_OUT_BYTES = 15 * 2**20  # one file back from the device: 16 MiB at most


class Stop(Exception):
    """A step failed in a way that leaves nothing for the later steps to do; one line."""


class DeadlineStop(Stop):
    """A step stopped at the deadline (its finished records are kept)."""


STOPPED = 124  # what Runner.sh returns for a command it stopped at the deadline


def check_carry(bundle: Path) -> str | None:
    """None when the bundle holds every file of gpu_carry's list with the manifest's sha256; else one line."""
    fix = f"run `make gpu-bundle` in the checkout and name {carry.BUNDLE_DIR} in the run call's carry"
    try:
        manifest = json.loads((bundle / carry.MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"gpu_run: {bundle / carry.MANIFEST} is missing or unreadable: {fix}"
    if sorted(files) != carry.carry_files():
        return (f"gpu_run: {bundle / carry.MANIFEST} lists other files than benchmarks/gpu_carry.py "
                f"(bundle of another version): {fix}")
    for name in carry.carry_files():
        path = bundle / name
        if not path.is_file():
            return f"gpu_run: {path} is missing: {fix}"
        with open(path, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
        if digest != files[name].get("sha256"):
            return f"gpu_run: {path} is not the file the manifest records (sha256 differs): {fix}"
    return None


# --- CUDA toolchain ------------------------------------------------------------------------------------------------

def cuda_arch() -> str:
    """The compute capabilities of the host's GPUs as CMake wants them (9.0 -> 90), from nvidia-smi."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Stop(f"nvidia-smi could not be run ({exc}): no NVIDIA driver here? use --backend vulkan") from None
    caps = sorted({c.strip().replace(".", "") for c in out.splitlines() if c.strip()})
    if not caps or not all(c.isdigit() for c in caps):
        raise Stop(f"nvidia-smi gave no compute capability ({out.strip()!r})")
    return ";".join(caps)


def _site_dirs() -> list[str]:
    import site
    dirs = [*site.getsitepackages(), site.getusersitepackages()]
    for pattern in ("/opt/*/.venv/lib/python3*/site-packages", "/usr/local/lib/python3*/dist-packages",
                    "/usr/lib/python3/dist-packages"):
        dirs += glob.glob(pattern)
    return list(dict.fromkeys(d for d in dirs if os.path.isdir(d)))


def _first(patterns: list[str]) -> str | None:
    for pattern in patterns:
        hits = sorted(glob.glob(pattern))
        if hits:
            return hits[0]
    return None


def _toolkit() -> tuple[str, Path]:
    """nvcc and the toolkit folder it belongs to (a PATH entry may be a wrapper script: /usr/local/cuda first)."""
    nvcc = _first(["/usr/local/cuda/bin/nvcc"]) or shutil.which("nvcc")
    if not nvcc:
        raise Stop("nvcc not found (PATH, /usr/local/cuda/bin): a CUDA toolkit is needed to compile")
    return nvcc, Path(os.path.realpath(nvcc)).parent.parent


def cuda_cmake_args(work: Path, notes: list[str]) -> list[str]:
    """-D arguments for a CUDA build on this host: compiler, architecture, and cuBLAS and libcuda where the toolkit
    folder lacks them (a toolkit assembled from NVIDIA's wheels has neither: cuBLAS then comes from the nvidia-cublas
    wheel of an installed Python package, libcuda.so from the driver), linked through a shim folder."""
    nvcc, toolkit = _toolkit()
    libdirs = [str(toolkit / d) for d in ("lib64", "lib", "targets/x86_64-linux/lib")]
    sites = _site_dirs()
    args = [f"-DCMAKE_CUDA_COMPILER={nvcc}", f"-DCMAKE_CUDA_ARCHITECTURES={cuda_arch()}"]
    shim = work / "cuda-shim"
    links: dict[str, str] = {}
    include: str | None = None
    if not _first([f"{d}/libcublas.so" for d in libdirs]):
        lib = _first([f"{d}/libcublas.so*" for d in libdirs]
                     + [f"{s}/nvidia/{sub}/lib/libcublas.so*" for s in sites for sub in ("cu13", "cu12", "cublas")])
        if lib is None:
            raise Stop(f"cuBLAS not found (neither in {toolkit} nor in a Python package nvidia-cublas)")
        lt = _first([str(Path(lib).parent / "libcublasLt.so*")])
        links |= {"libcublas.so": lib, **({"libcublasLt.so": lt} if lt else {})}
        notes.append(f"cuBLAS from {Path(lib).parent}")
    if not _first([f"{toolkit}/include/cublas_v2.h", f"{toolkit}/targets/x86_64-linux/include/cublas_v2.h"]):
        head = _first([f"{s}/nvidia/{sub}/include/cublas_v2.h" for s in sites for sub in ("cu13", "cu12", "cublas")])
        if head is None:
            raise Stop(f"cublas_v2.h not found (neither in {toolkit}/include nor in a Python package nvidia-cublas)")
        include = str(Path(head).parent)
    if not _first([f"{d}/libcuda.so" for d in libdirs] + [f"{d}/stubs/libcuda.so" for d in libdirs]):
        drv = _first([f"{d}/libcuda.so*" for d in DRIVER_DIRS])
        if drv is None:
            raise Stop("libcuda.so (the driver's library) not found: is the NVIDIA driver visible here?")
        links["libcuda.so"] = drv
        notes.append(f"libcuda from {drv}")
    if links:
        (shim / "lib").mkdir(parents=True, exist_ok=True)
        for name, target in links.items():
            (shim / "lib" / name).unlink(missing_ok=True)
            (shim / "lib" / name).symlink_to(target)
        args.append(f"-DCMAKE_LIBRARY_PATH={shim / 'lib'}")
    if include:
        args.append(f"-DCMAKE_CUDA_FLAGS=-I{include}")
        notes.append(f"cublas_v2.h from {include}")
    return args


def link_missing_libs(bin_dir: Path, notes: list[str]) -> None:
    """The tools' RPATH is $ORIGIN: a shared library the loader cannot find (cuBLAS from a wheel, the toolkit's
    cudart off the loader's path) is linked into the tools' folder."""
    search = [*_site_dirs()]
    for tool in [*TARGETS, *sorted(p.name for p in bin_dir.glob("*.so"))]:
        path = bin_dir / tool
        if not path.exists():
            continue
        out = subprocess.run(["ldd", str(path)], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if "=> not found" not in line:
                continue
            name = line.split()[0]
            _, toolkit = _toolkit()
            found = _first([f"{toolkit}/{d}/{name}" for d in ("lib64", "lib", "targets/x86_64-linux/lib")]
                           + [f"{s}/nvidia/*/lib/{name}" for s in search]
                           + [f"{d}/{name}" for d in DRIVER_DIRS])
            if found is None:
                raise Stop(f"{tool} needs {name}, found nowhere (toolkit, Python packages' nvidia/*/lib)")
            if not (bin_dir / name).exists():
                (bin_dir / name).symlink_to(found)
                notes.append(f"{name} -> {found}")


# --- the run ---------------------------------------------------------------------------------------------------------

class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.t0 = time.monotonic()
        self.args = args
        self.backend: str = args.backend
        self.deadline = args.deadline_s or None
        self.work: Path = args.work.resolve()
        self.out: Path = args.out.resolve()
        self.bundle: Path = args.bundle.resolve()
        self.prefix = self.work / "prefix"
        self.logs = self.work / "logs"
        self.data = self.work / "data"
        self.models = self.work / "models"
        self.llama = self.work / f"llama-{self.backend}"
        self.bin = self.llama / "bin"
        self.steps: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.python = sys.executable
        self.child: subprocess.Popen[bytes] | None = None

    def left(self) -> float:
        if self.deadline is None:
            return float("inf")
        return self.deadline - (time.monotonic() - self.t0) if self.deadline else -1.0

    def env(self, step: str) -> dict[str, str]:
        env = dict(os.environ, PYTHONPATH=str(self.prefix), PYTHONUNBUFFERED="1", QA_GPU_STEP=step,
                   COLLECTOR_CACHE_DIR=str(self.work / "cache"), PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
        if shutil.which("ninja"):
            env.setdefault("CMAKE_GENERATOR", "Ninja")  # same output as make's; keeps 16 cores busy to the end
        if self.backend == "vulkan":
            env.setdefault("GGML_VK_VISIBLE_DEVICES", "0")
        return env

    def sh(self, argv: list[str], step: str, *, timeout: float | None = None, log: Path | None = None) -> int:
        """Run a command in its own process group, its output to our stdout (and `log`); SIGTERM at the deadline
        (the collector then keeps its finished records and exits), SIGKILL 20 s later."""
        limit = timeout if timeout is not None else max(1.0, self.left() - RESERVE_S)
        print(f"$ {shlex.join(argv)}", flush=True)
        with open(log, "ab") if log else contextlib.nullcontext() as sink:
            proc = subprocess.Popen(argv, cwd=self.work, env=self.env(step), stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            assert proc.stdout is not None
            os.set_blocking(proc.stdout.fileno(), False)
            end = time.monotonic() + (limit if limit != float("inf") else 10**9)
            stopped = False
            self.child = proc
            while True:
                chunk = proc.stdout.read() or b""  # None: nothing to read yet (non-blocking)
                if chunk:
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.flush()
                    if sink:
                        sink.write(chunk)
                if proc.poll() is not None and not chunk:
                    break
                if not stopped and time.monotonic() > end:
                    print(f"\n[gpu_run] {step}: the deadline is near: stopping it (SIGTERM)", flush=True)
                    os.killpg(proc.pid, signal.SIGTERM)
                    stopped, end = True, time.monotonic() + 20
                elif stopped and time.monotonic() > end:
                    os.killpg(proc.pid, signal.SIGKILL)
                if not chunk:
                    time.sleep(0.05)
            self.child = None
            return proc.returncode if not stopped else STOPPED

    def collector(self, step: str, *args: str) -> int:
        """A collector command (its tools' logs kept); --wait: a collector already measuring here is waited for."""
        return self.sh([self.python, str(HERE / "gpu_run.py"), "collector", str(self.logs), *args, "--wait"], step)

    def step(self, name: str, fn: Callable[[], str | None]) -> bool:
        need = MIN_START_S.get(name, 0)
        if self.left() < need + RESERVE_S:
            self.steps.append({"step": name, "status": "skipped", "seconds": 0.0,
                               "note": f"{self.left():.0f} s left, needs {need} s"})
            print(f"[gpu_run] {name}: skipped ({self.left():.0f} s left)", flush=True)
            return False
        print(f"\n[gpu_run] === {name} ({self.left():.0f} s left) ===", flush=True)
        t0 = time.monotonic()
        status, note = "ok", ""
        try:
            note = fn() or ""
        except Stop as exc:
            status, note = "stopped" if isinstance(exc, DeadlineStop) else "failed", str(exc)
            print(f"[gpu_run] {name}: {exc}", flush=True)
        entry = {"step": name, "status": status, "seconds": round(time.monotonic() - t0, 1), "note": note}
        self.steps.append(entry)
        print(f"[gpu_run] {name}: {status} in {entry['seconds']} s {note}", flush=True)
        return status == "ok"

    # the steps

    def s_host(self) -> str:
        self.logs.mkdir(parents=True, exist_ok=True)
        if self.backend != "cuda":
            devices = self.env("host").get("GGML_VK_VISIBLE_DEVICES")
            return f"{platform.node()}: {os.cpu_count()} CPUs, GGML_VK_VISIBLE_DEVICES={devices}"
        self.sh(["nvidia-smi", "-q"], "host", timeout=60, log=self.logs / "nvidia-smi-q.txt")
        q = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap,memory.total,driver_version,power.limit",
                            "--format=csv,noheader"], capture_output=True, text=True, timeout=60).stdout.strip()
        return f"{q}; {os.cpu_count()} CPUs"

    def s_install(self) -> str:
        wheels = sorted(str(p) for p in (self.bundle / "wheels").glob("*.whl"))
        pip = [self.python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir",
               "--upgrade", "--target", str(self.prefix)]
        if self.sh([*pip, *wheels], "install", timeout=300) != 0:
            raise Stop("pip could not install the carried wheels (see above)")
        note = "collector installed"
        if self.sh([*pip, "--no-build-isolation", str(ROOT)], "install", timeout=300) != 0:
            # setuptools too old or missing: the collector is pure Python, so the tree itself is importable
            (self.prefix / "collector").unlink(missing_ok=True)
            (self.prefix / "collector").symlink_to(ROOT / "collector")
            note = "the collector's build failed (setuptools?): linked from the tree instead"
        check = subprocess.run([self.python, "-c", "import collector.cli, pydantic, ruamel.yaml, ulid, gguf, httpx, "
                                "click, rich, yaml, numpy; import collector; print(collector.__file__)"],
                               cwd=self.work, env=self.env("install"), capture_output=True, text=True)
        if check.returncode != 0:
            raise Stop(f"the installed collector does not import: {check.stderr.strip().splitlines()[-1]}")
        return f"{note} ({check.stdout.strip()})"

    def s_compile(self) -> str:
        args = ["llama", "compile", str(carry.LLAMA_BUILD), "--backend", self.backend, "--out", str(self.llama),
                "--sdist", str(self.bundle / carry.TRIMMED)]
        for t in TARGETS:
            args += ["--target", t]
        notes: list[str] = []
        if self.backend == "cuda":
            for a in cuda_cmake_args(self.work, notes):
                args += ["--cmake-arg", a]
        code = self.collector("compile", *args)
        if code != 0:
            raise Stop(f"the compile failed (exit {code}); its log: {self.llama / '.work' / 'compile.log'}")
        if self.backend == "cuda":
            link_missing_libs(self.bin, notes)
        for flag in ("--version", "--list-devices"):
            self.sh([str(self.bin / "llama-server"), flag], "compile", timeout=120,
                    log=self.logs / f"llama-server{flag.replace('--', '-')}.txt")
        stamp = json.loads((self.llama / ".built").read_text())
        self.notes += notes
        took = f"{stamp.get('wall_s')} s wall, {stamp.get('cpu_s')} CPU-s, {stamp.get('jobs')} jobs"
        return "; ".join([took, *notes])

    def s_models(self) -> str:
        if self.sh([self.python, str(HERE / "gpu_models.py"), str(self.bundle), str(self.models)], "models") != 0:
            raise Stop("the models could not be written")
        return ", ".join(p.name for p in sorted(self.models.glob("*.gguf")))

    def s_quantize(self) -> str:
        twin = self.models / f"{TWIN_STEM}.F16.gguf"
        if self.collector("quantize", "quantize", str(twin), *LADDER, "--base-type", "F16", "--out-dir",
                          str(self.models), "--llama-bin", str(self.bin)) != 0:
            raise Stop("llama-quantize failed")
        return ", ".join(f"{p.name} {p.stat().st_size / 2**20:.0f} MiB" for p in sorted(self.models.glob("*.gguf")))

    def _plan(self, name: str) -> Path:
        """The plan in WORK/plans/ (its model paths, ../models/..., and its prompt suite are relative to it)."""
        shutil.copytree(HERE / "gpu_plans", self.work / "plans", dirs_exist_ok=True)
        return self.work / "plans" / f"{name}.yaml"

    def _run_plan(self, step: str, name: str, *extra: str) -> str:
        code = self.collector(step, "run", str(self._plan(name)), "--data-dir", str(self.data), "--llama-bin",
                              str(self.bin), *extra)
        if code == STOPPED:
            raise DeadlineStop("stopped at the deadline; the runs it finished are recorded")
        if code != 0:
            raise Stop(f"collector run {name} exited {code}")
        return ""

    def s_speed_dense(self) -> str:
        return self._run_plan("speed-dense", "dense", "--only", "speed")

    def s_speed_moe(self) -> str:
        return self._run_plan("speed-moe", "moe")

    def s_kld(self) -> str:
        return self._run_plan("kld", "dense", "--only", "kld")

    def s_tune(self) -> str:
        minutes = min(TUNE_MAX_MIN, (self.left() - RESERVE_S - 20) / 60)
        code = self.collector("tune", "tune", str(self.models / f"{TWIN_STEM}.Q4_1.gguf"), *TUNE_ARGS,
                              "--time-budget", f"{minutes:.2f}", "--data-dir", str(self.data), "--llama-bin",
                              str(self.bin))
        if code == STOPPED:
            raise DeadlineStop("stopped at the deadline")
        if code != 0:
            raise Stop(f"collector tune exited {code}")
        return f"--time-budget {minutes:.2f} min"

    def pack(self) -> None:
        t0 = time.monotonic()
        self.out.mkdir(parents=True, exist_ok=True)
        compile_log = self.llama / ".work" / "compile.log"
        if compile_log.is_file():
            self.logs.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(compile_log, self.logs / "compile.log")
        lines = self.record_lines()
        if self.data.is_dir():
            _tar(self.out / "records.tar.gz", self.data, "data")
        if self.logs.is_dir():
            _tar(self.out / "logs.tar.gz", self.logs, "logs")
            if (self.out / "logs.tar.gz").stat().st_size > MAX_OUT_BYTES:
                _tar(self.out / "logs.tar.gz", self.logs, "logs", skip_over=2**20)
                self.notes.append("logs over 1 MiB left out of logs.tar.gz (over the 16 MiB a file may bring back)")
        self.steps.append({"step": "pack", "status": "ok", "seconds": round(time.monotonic() - t0, 1), "note": ""})
        total = time.monotonic() - self.t0
        table = [f"gpu_run {self.backend}: {total:.0f} s in all (deadline {self.deadline or 'none'} s)",
                 f"{'step':<12} {'status':<8} {'seconds':>8}  note"]
        table += [f"{s['step']:<12} {s['status']:<8} {s['seconds']:>8.1f}  {s['note']}" for s in self.steps]
        text = "\n".join([*table, "", *lines, "", *self.notes]) + "\n"
        (self.out / "summary.txt").write_text(text, encoding="utf-8")
        (self.out / "timings.json").write_text(json.dumps({"backend": self.backend, "total_s": round(total, 1),
                                                           "steps": self.steps, "notes": self.notes}, indent=1) + "\n")
        print("\n" + text, flush=True)

    def record_lines(self) -> list[str]:
        """One line per record: what ran, its status and the figures to look at first."""
        try:
            import yaml
        except ImportError:
            return ["(PyYAML missing: records not summarised)"]
        lines = []
        for path in sorted(self.data.glob("records/**/*.yaml")):
            try:
                r = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                lines.append(f"{path.name}: unreadable ({exc})")
                continue
            cfg, summ = r.get("config") or {}, r.get("summary") or {}
            tg = (summ.get("tg_tps") or {}).get("median") if isinstance(summ, dict) else None
            mem = r.get("memory_mib") or {}
            bits = [r.get("kind"), r.get("status"), (r.get("model") or {}).get("quant"),
                    " ".join(f"{k}={cfg[k]}" for k in ("n_gpu_layers", "n_cpu_moe", "flash_attn", "cache_type_k")
                             if cfg.get(k) is not None),
                    f"tg {tg:.1f}" if isinstance(tg, (int, float)) else None,
                    f"vram_peak {mem.get('vram_peak')}" if mem.get("vram_peak") else None,
                    f"J/token {summ.get('energy_j_per_token')}" if isinstance(summ, dict)
                    and summ.get("energy_j_per_token") else None,
                    f"kld_mean {(r.get('results') or {}).get('kld_mean')}" if r.get("kind") == "kld" else None,
                    (r.get("error") or {}).get("message") if r.get("error") else None]
            lines.append(f"{path.parent.parent.name}/{path.name}: " + ", ".join(str(b) for b in bits if b))
        return lines

    def terminated(self, signum: int, _frame: Any) -> None:
        """SIGTERM/SIGINT (the caller's time is up): stop the running step's group, skip the rest, pack."""
        child, self.child = self.child, None
        if child is not None and child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
        self.deadline = 0.0  # every later step is skipped
        raise Stop(f"stopped by signal {signum}")

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.terminated)
        signal.signal(signal.SIGINT, self.terminated)
        bad = check_carry(self.bundle)
        if bad:
            print(bad, file=sys.stderr)
            return 2
        self.work.mkdir(parents=True, exist_ok=True)
        self.steps.append({"step": "carry", "status": "ok", "seconds": round(time.monotonic() - self.t0, 1),
                           "note": f"{len(carry.carry_files())} files as the manifest records them"})
        try:
            ok = self.step("host", self.s_host) and self.step("install", self.s_install)
            if ok:
                ok = ok and self.step("compile", self.s_compile) and self.step("models", self.s_models)
                ok = ok and self.step("quantize", self.s_quantize)
                if ok:
                    for name, fn in (("speed-dense", self.s_speed_dense), ("speed-moe", self.s_speed_moe),
                                     ("kld", self.s_kld), ("tune", self.s_tune)):
                        if name in self.args.plan_steps:
                            self.step(name, fn)
        except Stop as exc:  # a signal between two steps
            self.steps.append({"step": "stop", "status": "failed", "seconds": 0.0, "note": str(exc)})
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the pack step is short: let it finish
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            self.pack()
        return 0 if all(s["status"] != "failed" for s in self.steps) else 1


def _tar(dst: Path, folder: Path, arcname: str, skip_over: int | None = None) -> None:
    part = dst.with_name(dst.name + ".part")
    with tarfile.open(part, "w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink() and (skip_over is None or path.stat().st_size <= skip_over):
                tar.add(path, arcname=f"{arcname}/{path.relative_to(folder)}")
    part.replace(dst)


# --- the collector with its tools' logs kept ---------------------------------------------------------------------

def collector_keeping_logs(logdir: Path, argv: list[str]) -> None:
    """`collector ARGV` in this process, every llama-server log and llama.cpp tool output copied into logdir
    (named <n>-<step>-<what>.log; index.tsv maps each file to its command)."""
    import collector.llama.perplexity as perplexity
    import collector.quality.quantize as quantize
    from collector.llama import server as server_mod
    from collector.llama import tools

    logdir.mkdir(parents=True, exist_ok=True)
    step = os.environ.get("QA_GPU_STEP", "step")

    def keep(text: str | bytes, what: str, argv_: list[str]) -> None:
        n = len(list(logdir.glob("[0-9]*.log"))) + 1
        name = f"{n:03d}-{step}-{what}.log"
        (logdir / name).write_bytes(text if isinstance(text, bytes) else text.encode())
        with open(logdir / "index.tsv", "a", encoding="utf-8") as fh:
            fh.write(f"{name}\t{shlex.join(argv_)}\n")

    original_stop = server_mod.ServerProcess.stop

    def stop(self: Any, grace_s: float | None = None) -> int | None:
        code = original_stop(self, grace_s)
        if self.argv and not getattr(self, "_qa_kept", False):
            for path in (self.log_file, self.log_dir / "llama-server.stderr"):
                if path.is_file() and path.stat().st_size:
                    keep(path.read_bytes(), f"server-{Path(self.model).stem}-{path.suffix.lstrip('.')}", self.argv)
            self._qa_kept = True
        return code

    server_mod.ServerProcess.stop = stop  # type: ignore[method-assign]

    def kept_run_tool(argv_: Any, stage: str, timeout_s: float | None = None, **kw: Any) -> Any:
        try:
            res = tools.run_tool(argv_, stage, timeout_s, **kw)
        except tools.ToolError as exc:
            keep("\n".join(exc.log_tail or []), f"{Path(argv_[0]).name}-{stage}-failed", list(argv_))
            raise
        keep(res.text + (res.stderr or ""), f"{Path(argv_[0]).name}-{stage}", list(argv_))
        return res

    perplexity.run_tool = kept_run_tool  # type: ignore[assignment]
    quantize.run_tool = kept_run_tool  # type: ignore[assignment]
    from collector.cli import main

    sys.argv = ["collector", *argv]
    main()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["collector"]:
        collector_keeping_logs(Path(argv[1]), argv[2:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=("cuda", "vulkan"), default="cuda")
    ap.add_argument("--deadline-s", type=float, default=540.0, help="0: none (a rehearsal measuring every step)")
    ap.add_argument("--bundle", type=Path, default=ROOT / carry.BUNDLE_DIR)
    ap.add_argument("--work", type=Path, default=Path("/tmp/qa-gpu-run"))
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or ROOT / "build" / "gpu-out"))
    ap.add_argument("--plan-steps", type=lambda v: v.split(","), default=list(PLAN_STEPS),
                    help=f"which of {','.join(PLAN_STEPS)} to run (default: all; the steps before them always run)")
    args = ap.parse_args(argv)
    unknown = sorted(set(args.plan_steps) - set(PLAN_STEPS))
    if unknown:
        ap.error(f"--plan-steps: {', '.join(unknown)} not one of {', '.join(PLAN_STEPS)}")
    return Runner(args).run()


if __name__ == "__main__":
    sys.exit(main())
