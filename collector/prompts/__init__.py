"""Prompt suites for speed runs (data: NAME.yaml) and the filler text that fills context to a depth."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from collector.base.errors import CollectorError, short_repr
from collector.base.yamlcheck import load_yaml_file

PROMPTS_DIR = Path(__file__).resolve().parent
FILLER = PROMPTS_DIR / "filler-v1.txt"


@dataclass(frozen=True)
class PromptSuite:
    name: str
    sha256: str
    prompts: dict[str, str]  # category -> prompt text, in file order


def load_suite(name_or_path: str, categories: tuple[str, ...] = ()) -> PromptSuite:
    """A built-in suite by name (collector/prompts/NAME.yaml) or a YAML file path; checks categories.

    A suite file is `name: ...` and `prompts: {category: {text: ...}, ...}`."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROMPTS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROMPTS_DIR.glob("*.yaml")))
        raise CollectorError(f"speed.prompt_suite: no prompt suite {short_repr(name_or_path)}; use one of: {known}, "
                             "or a path to a suite YAML file")
    data = load_yaml_file(path)
    raw_prompts = data.get("prompts") if isinstance(data, dict) else None
    if not isinstance(raw_prompts, dict) or not raw_prompts:
        raise CollectorError(f"{path}: a prompt suite needs `prompts:`, a mapping of category: {{text: ...}}")
    prompts = {}
    for key, value in raw_prompts.items():
        text = value.get("text") if isinstance(value, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise CollectorError(f"{path}: prompts.{short_repr(key)}: needs `text:`, the prompt as a string")
        prompts[str(key)] = text
    unknown = [c for c in categories if c not in prompts]
    if unknown:
        raise CollectorError(f"speed.categories: {', '.join(unknown)} not in prompt suite {data.get('name')} "
                             f"({path}); choose from: {', '.join(prompts)}")
    if categories:
        prompts = {c: prompts[c] for c in categories}
    return PromptSuite(str(data.get("name", path.stem)), hashlib.sha256(path.read_bytes()).hexdigest(), prompts)
