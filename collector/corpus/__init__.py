"""Built-in text corpora for KLD runs (data files; origin and license in SOURCE.md)."""

from pathlib import Path

CORPUS_DIR = Path(__file__).resolve().parent
BUILTIN_CORPUS = CORPUS_DIR / "python-docs-3.11.txt"
