"""Load, save and validate record files: one immutable YAML file per run, written atomically."""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.scalarstring import DoubleQuotedScalarString
from ulid import ULID

from collector.base.errors import CollectorError, short_repr
from collector.base.files import atomic_write_text
from collector.base.yamlcheck import line_of, load_yaml_file, surrogate_at
from collector.records.schema import SCHEMA_VERSION, Host, KldRecord, Record, SpeedRecord, TuneRecord

AnyRecord = SpeedRecord | KldRecord | TuneRecord
_ADAPTER: TypeAdapter[AnyRecord] = TypeAdapter(Record)


def new_id() -> str:
    """A new ULID: 26 characters, sortable by creation time, safe in file names."""
    return str(ULID())


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


_EXP = re.compile(r"^(-?[0-9]+)(e[-+][0-9]+)$")


def float_text(value: float) -> str:
    """A float as both YAML 1.2 and 1.1 readers read it back: Python's shortest repr, with a dot in the mantissa of
    exponent forms (PyYAML's 1.1 resolver reads `-2e-06` as a string, `-2.0e-06` as a float)."""
    text = repr(value)
    m = _EXP.match(text)
    return f"{m[1]}.0{m[2]}" if m else text


def _represent_float(representer: Any, value: float) -> Any:
    if _EXP.match(repr(value)):
        return representer.represent_scalar("tag:yaml.org,2002:float", float_text(value))
    return representer.represent_float(value)


class _Representer(RoundTripRepresenter):
    pass


_Representer.add_representer(float, _represent_float)


def _yaml() -> YAML:
    y = YAML()  # round-trip: keeps key order and comments
    y.Representer = _Representer
    y.default_flow_style = False
    y.width = 4096  # never fold long commands or log lines
    return y


SLUG_MAX = 64
RECORD_MAX_BYTES = 4 << 20  # a record is tens of KiB; the log tail is the biggest part


@lru_cache(maxsize=1 << 16)  # pure; site pages slug the same few hundred names many thousand times
def slugify(text: str, max_len: int = SLUG_MAX) -> str:
    """A lower-case ASCII slug of at most `max_len` characters: a readable prefix plus a short hash when cut,
    so no name (a GGUF's general.name, a CPU model) can make a path too long or collide when cut."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"
    if len(s) <= max_len:
        return s
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return s[: max_len - 9].rstrip("-") + "-" + digest


_SAFE_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
# the names of the site's own pages in a section (devices/index.md, devices/catalog.md, models/index.md,
# compare/index.md, runs/index.md, runs/_shell.md): no record's device, model or run page may take one
RESERVED_NAMES = frozenset({"index", "catalog", "_shell"})
_RESERVED = "_page"  # added to a slug that is a reserved name: "_" is never in a slug, so the name is its own


def page_id_of(record_id: str) -> str:
    """The permalink name (the folder under runs/) of the record with this id: the id when that is a plain token
    and no page of the site's own, else a bounded slug of it. The record index refuses two records whose ids give
    the same page."""
    if _SAFE_ID.match(record_id) and record_id.lower() not in RESERVED_NAMES:
        return record_id
    return "r-" + slugify(record_id, 60)


def page_slug(slug: str) -> str:
    """A device's or model's slug as the name of its page: a reserved name ("index") gets a suffix of its own."""
    return slug + _RESERVED if slug in RESERVED_NAMES else slug


_GPU_NOISE = re.compile(r"\b(nvidia|geforce|amd|radeon|tesla|intel|corporation)\b", re.I)
# what Mesa's Vulkan drivers add to a card's name in llama.cpp's description of a Vulkan device: the driver,
# "(RADV NAVI31)", "(LLVM 15.0.6, 256 bits)". Only there: elsewhere a parenthesis names the part, as in the catalog's
# "Apple M1 (7-core GPU)"
_VULKAN_DETAIL = re.compile(r"\([^()]*\)")
# what CPU vendors put in a model name ("Intel(R) Xeon(R) Processor", "AMD Ryzen(TM)") and public sets leave out
_TRADEMARK = re.compile(r"\((?:R|TM)\)|[\u00ae\u2122]", re.I)


def device_slug(host: Host) -> str:
    """`rtx-4090`, `2x-rtx-3060`, `llvmpipe`, or `cpu-<model>` for CPU-only records (never a reserved name: a GPU
    called "index" is `index_page`)."""
    return _device_slug(tuple(_VULKAN_DETAIL.sub(" ", g.name) if g.backend == "Vulkan" else g.name
                              for g in host.gpus), host.cpu.model)


@lru_cache(maxsize=4096)  # pages ask for every record's device several times; there are few distinct hosts
def _device_slug(gpu_names: tuple[str, ...], cpu_model: str | None) -> str:
    if gpu_names:
        counts: dict[str, int] = {}
        for gpu_name in gpu_names:
            name = slugify(_GPU_NOISE.sub(" ", gpu_name))
            counts[name] = counts.get(name, 0) + 1
        return page_slug(slugify("+".join(f"{n}x-{name}" if n > 1 else name for name, n in counts.items())))
    return "cpu-" + slugify(_TRADEMARK.sub(" ", cpu_model or "unknown"), SLUG_MAX - 4)


# a quant label at the end of a file stem: ".Q4_K_M", "-UD-IQ2_XXS", ".i1-IQ3_M", "-Q2_K_XL", "-MXFP4_MOE"
_QUANT_TAIL = re.compile(r"[.\-_](?:(?:UD|i1)-)?(?:I?Q\d|F16|BF16|F32|MXFP4|NVFP4|TQ\d)[A-Za-z0-9_]*$", re.I)
_TAIL_RUN = re.compile(r"[A-Za-z0-9_]*", re.I)  # the class that ends _QUANT_TAIL, with its flags


def without_quant_tail(stem: str) -> str:
    """The stem without its quant label, in time linear in its length. _QUANT_TAIL tried at every position of a
    stem like "_Q1_Q1_..._Q1-" scans to the end each time (minutes for 200 KB); but everything after a label's
    separator and "UD-"/"i1-" is word characters, so the label starts in the stem's last run of them or at most 4
    characters before it, and is looked for from there (the same match as from the start)."""
    run = _TAIL_RUN.match(stem[::-1])
    i = len(stem) - (run.end() if run else 0)
    m = _QUANT_TAIL.search(stem, max(i - 4, 0))
    return stem[:m.start()] if m else stem


def file_model(file_name: str) -> str:
    """The model a file's name names, without its shard label, ".gguf" and quant label
    ("GLM-4.5-Air-UD-Q4_K_XL-00001-of-00002.gguf": "GLM-4.5-Air")."""
    stem = re.sub(r"(-\d{5}-of-\d{5})?\.gguf$", "", file_name)
    return without_quant_tail(stem) or stem


def model_display_name(m: Any) -> str:
    """What a reader calls the model: the file name without its quant label (SmolLM2-135M-Instruct), else the
    name a source or the GGUF gives; a fine-tune the source names is said to be one."""
    if m.file_name and m.sha256:  # a real file: its name is what people download and search for
        return file_model(m.file_name)
    name = str(m.name or m.file_name or "unknown model")
    if m.finetune and m.finetune.lower() not in name.lower():
        name += f" ({m.finetune} fine-tune)"
    return name


def model_slug(record: AnyRecord) -> str:
    """The model page's name (a model called "index" does not take the Models index's page)."""
    return page_slug(slugify(model_display_name(record.model)))


def record_relpath(record: AnyRecord) -> Path:
    """records/<device>/<model>/<date>-<kind>-<id>.yaml, relative to the data directory. An id that is not a plain
    token (a stranger's record may hold any text there: a slash, a NUL) is named by its page id, a bounded slug."""
    date = record.created_at.strftime("%Y-%m-%d")
    name = f"{date}-{record.kind}-{page_id_of(record.id)}.yaml"
    return Path("records") / device_slug(record.host) / model_slug(record) / name


def record_to_dict(record: AnyRecord) -> dict[str, Any]:
    data = record.model_dump(mode="json", by_alias=True)
    # schema_version and kind first: a reader sees what the file is before anything else
    head = {"schema_version": data.pop("schema_version"), "kind": data.pop("kind")}
    return {**head, **data}


# plain scalars that a YAML 1.1 reader (PyYAML, the most common) resolves to something other than a string
_YAML11_NOT_STR = re.compile(r"""^(?:
    y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF
  | ~|null|Null|NULL|=|<<
  | [-+]?0b[0-1_]+ | [-+]?0[0-7_]+ | [-+]?(?:0|[1-9][0-9_]*) | [-+]?0x[0-9a-fA-F_]+
  | [-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?
  | [-+]?(?:[0-9][0-9_]*)?\.[0-9_]*(?:[eE][-+]?[0-9]+)? | [-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
  | [-+]?\.(?:inf|Inf|INF) | \.(?:nan|NaN|NAN)
  | [0-9]{4}-[0-9]{1,2}-[0-9]{1,2}
    (?:(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)?
)$""", re.X)


def _quote_ambiguous(value: Any) -> Any:
    """Strings that YAML 1.1 readers would take for a bool, null, number or date, double-quoted."""
    if isinstance(value, str):
        return DoubleQuotedScalarString(value) if _YAML11_NOT_STR.match(value) else value
    if isinstance(value, dict):
        return {k: _quote_ambiguous(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_quote_ambiguous(v) for v in value]
    return value


def dump_record(record: AnyRecord) -> str:
    buf = io.StringIO()
    _yaml().dump(_quote_ambiguous(record_to_dict(record)), buf)
    return buf.getvalue()


def save_record(record: AnyRecord, data_dir: Path) -> Path:
    """Validate and write one record under data_dir; returns its path. Raises CollectorError on I/O failure."""
    data = record_to_dict(record)
    _ADAPTER.validate_python(data)  # what we write must load back
    path = Path(data_dir) / record_relpath(record)
    bad = surrogate_at(data)
    if bad is not None:  # YAML would write it as an escape that no reader takes back
        raise CollectorError(f"{path}: {'.'.join(map(str, bad))}: text that is not Unicode (a lone surrogate, e.g. "
                             "from a file name that is not UTF-8); rename what it names and run again")
    if page_id_of(record.id) != record.id and path.exists():  # two ids that slug alike would share this file
        raise CollectorError(f"{path}: already holds a record whose id gives the same name as {record.id!r}; give "
                             "this record an id of its own (a ULID, as the collector makes)")
    text = dump_record(record)
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        kept = _keep_unsaved(path.name, text)
        where = (f"the record is kept at {kept}: move it to {path} once there is room" if kept else
                 "no other place could hold it either")
        raise CollectorError(f"{path}: could not write the record ({exc.strerror or exc}; nothing partial was "
                             f"left); {where}, then free disk space or fix permissions and run again") from exc
    return path


def _keep_unsaved(name: str, text: str) -> Path | None:
    """A record the data folder could not take, written where it can be found again: the cache's unsaved/, else
    a folder of this user's in /tmp. A measurement is never thrown away because its folder was full or read-only."""
    from collector.base.cache import cache_dir

    places: list[Any] = [lambda: cache_dir("unsaved"),
                         lambda: Path(tempfile.gettempdir()) / f"quant-atlas-unsaved-{os.getuid()}"]
    for place in places:
        folder = None
        try:
            folder = place()
            atomic_write_text(folder / name, text)
            return folder / name
        except (OSError, CollectorError):
            if folder is not None:
                try:
                    folder.rmdir()  # only when this attempt left it empty
                except OSError:
                    pass
    return None


def record_json(record: AnyRecord) -> str:
    """The record as pydantic's JSON (the record index's cache); `record_from_json` reads it back."""
    return _ADAPTER.dump_json(record).decode("utf-8")


def record_from_json(text: str) -> AnyRecord:
    """A record from `record_json`'s text, validated (raises pydantic's ValidationError)."""
    return _ADAPTER.validate_json(text)


def parse_record(data: Any, origin: str) -> AnyRecord:
    """Validate a loaded mapping; refuses unknown and newer schema versions. `origin` names the file, and
    when `data` was loaded with line numbers (ruamel round-trip) the error names the line too."""
    if not isinstance(data, dict):
        raise CollectorError(f"{origin}: not a record (expected a YAML mapping)")
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CollectorError(f"{origin}: schema_version is missing or not an integer")
    if version > SCHEMA_VERSION:
        raise CollectorError(f"{origin}: schema_version {version} is newer than this collector understands "
                             f"({SCHEMA_VERSION}); upgrade the collector")
    if version < 1:
        raise CollectorError(f"{origin}: schema_version {version} is not a known version")
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        path = tuple(p for p in err["loc"] if p not in ("speed", "kld"))
        loc = ".".join(str(p) for p in path)
        line = line_of(data, path) or (1 if hasattr(data, "lc") else None)  # a whole-record error: its first line
        more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        value = "" if err["type"] in ("missing", "value_error") else f" (got {short_repr(err.get('input'))})"
        where = f"{origin}:{line}" if line else origin
        msg = err["msg"].removeprefix("Value error, ")
        raise CollectorError(f"{where}: {loc or 'record'}: {msg}{value}{more}") from None


def load_record(path: Path) -> AnyRecord:
    return parse_record(load_yaml_file(path, max_bytes=RECORD_MAX_BYTES), str(path))
