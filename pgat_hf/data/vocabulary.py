"""Prompt vocabularies as data: a YAML file of category synonyms and templates, checked on load.

The file format is documented in `pgat_hf/data/vocabularies/default.yaml`, which holds the defaults.
`load_vocabulary(path)` returns a `PromptVocabulary`; every problem in the file stops with an
error that names the file and the entry (`categories.neoplastic.held_out[1]`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

TRAINING_QUALITIES = ("low", "medium", "high")
HELD_OUT = "held_out"  # held-out framings, filled with training synonyms
HELD_OUT_SYNONYM = "held_out_synonym"  # training templates filled with held-out synonyms (T2 only)
TEMPLATE_KEYS = TRAINING_QUALITIES + (HELD_OUT,)
TASKS = ("T1", "T2")
PLACEHOLDER = "{syn}"
# Each group draws this many distinct prompts per training quality and this many held-out
# framings (prompts.make_prompt_groups), so every pool must hold at least that many.
PROMPTS_PER_QUALITY = 2
HELD_OUT_PER_GROUP = 2
DEFAULT_VOCABULARY = Path(__file__).parent / "vocabularies" / "default.yaml"

_TRAILING_PUNCT = re.compile(r"[\s.,;:!?]+$")
_WHITESPACE = re.compile(r"\s+")


def normalize_prompt(text: str) -> str:
    """Lowercase, strip, collapse whitespace and drop trailing punctuation (". , ; : ! ?").

    Applied to every prompt before tokenizing so "Segment the nuclei." and "segment the nuclei"
    map to the same token ids.
    """
    text = _WHITESPACE.sub(" ", str(text).lower().strip())
    return _TRAILING_PUNCT.sub("", text)


class VocabularyError(ValueError):
    """A vocabulary file breaks the format; the message names the file and the entry."""


@dataclass(frozen=True)
class Category:
    train: tuple[str, ...]
    held_out: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)  # hashed by identity: caches key on the object
class PromptVocabulary:
    """Categories (training and held-out synonyms) and templates {task: {quality: (template, ...)}}."""

    categories: dict[str, Category]
    templates: dict[str, dict[str, tuple[str, ...]]]
    source: str = "<memory>"
    sha256: str = ""
    text: str = field(default="", repr=False)

    def category(self, name: str) -> Category:
        """A category's synonyms; a name the file does not list is its own only training synonym."""
        key = category_key(name)
        return self.categories.get(key, Category(train=(key,)))

    def pool(self, task: str, quality: str, category: str = "nuclei") -> tuple[str, ...]:
        """Every distinct prompt of one task / quality / category, in a fixed order.

        held_out_synonym prompts are the training templates (every quality) filled with the
        category's held-out synonyms; T1 has none.
        """
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; expected 'T1' or 'T2'")
        if quality not in TEMPLATE_KEYS + (HELD_OUT_SYNONYM,):
            raise ValueError(f"unknown quality {quality!r}; expected one of {TEMPLATE_KEYS + (HELD_OUT_SYNONYM,)}")
        templates = self.templates[task]
        if task == "T1":
            return () if quality == HELD_OUT_SYNONYM else fill_templates(templates[quality], [""])
        entry = self.category(category)
        if quality == HELD_OUT_SYNONYM:
            return fill_templates([t for q in TRAINING_QUALITIES for t in templates[q]], entry.held_out)
        return fill_templates(templates[quality], entry.train)


def category_key(name: str) -> str:
    """How a category name is looked up: "spindle_shaped" and "Spindle Shaped" -> "spindle shaped"."""
    return normalize_prompt(str(name).replace("_", " "))


def fill_templates(templates, synonyms) -> tuple[str, ...]:
    """All distinct ``template`` strings with {syn} replaced by each synonym, template-major order."""
    synonyms = list(synonyms)
    out: dict[str, None] = {}  # ordered set: a deterministic order keeps sampling reproducible
    for template in templates:
        for syn in synonyms:
            out[normalize_prompt(template.replace(PLACEHOLDER, syn))] = None
    return tuple(out)


def _fail(path, where: str, message: str):
    raise VocabularyError(f"{path}: {where}: {message}")


def _strings(path, where: str, value) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        _fail(path, where, "must be a non-empty list of strings")
    out = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not normalize_prompt(item):
            _fail(path, f"{where}[{index}]", f"must be a non-empty string, got {item!r}")
        text = normalize_prompt(item)
        if text in out:
            _fail(path, f"{where}[{index}]", f"{item!r} is listed twice")
        out.append(text)
    return tuple(out)


def _check_keys(path, where: str, mapping, allowed, required=()) -> None:
    if not isinstance(mapping, dict):
        _fail(path, where, "must be a mapping")
    for key in mapping:
        if key not in allowed:
            _fail(path, f"{where}.{key}", f"unknown key; expected one of {list(allowed)}")
    for key in required:
        if key not in mapping:
            _fail(path, where, f"missing `{key}`")


def _parse_categories(path, raw) -> dict[str, Category]:
    if not isinstance(raw, dict) or not raw:
        _fail(path, "categories", "must be a non-empty mapping of category names")
    categories = {}
    for name, entry in raw.items():
        where = f"categories.{name}"
        _check_keys(path, where, entry, ("train", HELD_OUT), required=("train",))
        held = _strings(path, f"{where}.{HELD_OUT}", entry[HELD_OUT]) if HELD_OUT in entry else ()
        categories[category_key(name)] = Category(
            train=_strings(path, f"{where}.train", entry["train"]), held_out=held)
    training = {syn: name for name, cat in categories.items() for syn in cat.train}
    for name, cat in categories.items():
        for index, syn in enumerate(cat.held_out):
            if syn in training:
                _fail(path, f"categories.{name}.{HELD_OUT}[{index}]",
                      f"{syn!r} is also a training synonym (of {training[syn]!r})")
    return categories


def _parse_templates(path, raw) -> dict[str, dict[str, tuple[str, ...]]]:
    _check_keys(path, "templates", raw, TASKS, required=TASKS)
    templates = {}
    for task in TASKS:
        where = f"templates.{task}"
        _check_keys(path, where, raw[task], TEMPLATE_KEYS, required=TEMPLATE_KEYS)
        templates[task] = {}
        for quality in TEMPLATE_KEYS:
            entries = _strings(path, f"{where}.{quality}", raw[task][quality])
            for index, template in enumerate(entries):
                has = PLACEHOLDER in template
                if task == "T2" and not has:
                    _fail(path, f"{where}.{quality}[{index}]", f"{template!r} has no {PLACEHOLDER} placeholder")
                if task == "T1" and has:
                    _fail(path, f"{where}.{quality}[{index}]", f"T1 templates take no {PLACEHOLDER}: {template!r}")
                if re.sub(r"\{syn\}", "", template).count("{") or template.count("}") != template.count(PLACEHOLDER):
                    _fail(path, f"{where}.{quality}[{index}]", f"{template!r}: the only placeholder is {PLACEHOLDER}")
            templates[task][quality] = entries
        seen: dict[str, str] = {}
        for quality in TEMPLATE_KEYS:
            for index, template in enumerate(templates[task][quality]):
                if template in seen:
                    kind = "also a training template" if quality == HELD_OUT else f"also a {seen[template]} template"
                    _fail(path, f"{where}.{quality}[{index}]", f"{template!r} is {kind}")
                seen.setdefault(template, quality)
    return templates


def _check_pool_sizes(vocabulary: PromptVocabulary) -> None:
    """Every group's draw must find enough distinct prompts: fail at load, not at the first row."""
    need = {**dict.fromkeys(TRAINING_QUALITIES, PROMPTS_PER_QUALITY), HELD_OUT: HELD_OUT_PER_GROUP}
    for quality, count in need.items():
        if len(vocabulary.pool("T1", quality)) < count:
            _fail(vocabulary.source, f"templates.T1.{quality}",
                  f"needs at least {count} templates (a group draws {count} distinct prompts)")
        for name in vocabulary.categories:
            if len(vocabulary.pool("T2", quality, name)) < count:
                _fail(vocabulary.source, f"templates.T2.{quality}",
                      f"gives category {name!r} fewer than {count} distinct prompts (a group draws {count}); "
                      "add templates or synonyms")


def parse_vocabulary(text: str, source: str = "<memory>") -> PromptVocabulary:
    """YAML text -> PromptVocabulary, or VocabularyError naming `source` and the entry."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise VocabularyError(f"{source}: not valid YAML ({err})") from err
    _check_keys(source, "top level", raw, ("categories", "templates", "description"),
                required=("categories", "templates"))
    vocabulary = PromptVocabulary(
        categories=_parse_categories(source, raw["categories"]), templates=_parse_templates(source, raw["templates"]),
        source=source, sha256=hashlib.sha256(text.encode()).hexdigest(), text=text)
    _check_held_out_prompts(vocabulary)
    _check_pool_sizes(vocabulary)
    return vocabulary


def _check_held_out_prompts(vocabulary: PromptVocabulary) -> None:
    """No held-out prompt string may equal a training prompt of any category."""
    training = {p for q in TRAINING_QUALITIES for p in vocabulary.pool("T1", q)}
    for name in vocabulary.categories:
        training.update(p for q in TRAINING_QUALITIES for p in vocabulary.pool("T2", q, name))
    for name in vocabulary.categories:
        for quality in (HELD_OUT, HELD_OUT_SYNONYM):
            clash = sorted(set(vocabulary.pool("T2", quality, name)) & training)
            if clash:
                _fail(vocabulary.source, f"categories.{name}",
                      f"{quality} prompt {clash[0]!r} is also a training prompt")
    clash = sorted(set(vocabulary.pool("T1", HELD_OUT)) & training)
    if clash:
        _fail(vocabulary.source, f"templates.T1.{HELD_OUT}", f"{clash[0]!r} is also a training prompt")


def load_vocabulary(path: str | Path | None = None) -> PromptVocabulary:
    """Read and check a vocabulary file (default: the shipped one)."""
    path = Path(path) if path is not None else DEFAULT_VOCABULARY
    if not path.is_file():
        raise VocabularyError(f"{path}: prompt vocabulary file not found")
    return _load_cached(str(path.resolve()), path.stat().st_mtime_ns)


@lru_cache(maxsize=16)
def _load_cached(path: str, _mtime_ns: int) -> PromptVocabulary:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise VocabularyError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8") from err
    return parse_vocabulary(text, source=path)


def missing_categories(vocabulary: PromptVocabulary, names) -> list[str]:
    """The dataset category names the vocabulary has no entry for (their only synonym is the name)."""
    return [name for name in names if category_key(name) not in vocabulary.categories]


def default_vocabulary() -> PromptVocabulary:
    return load_vocabulary(DEFAULT_VOCABULARY)
