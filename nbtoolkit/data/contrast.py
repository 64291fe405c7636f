"""Contrast pairs for CCS: one binary example, one template, two completions (one per answer).

    sets = load_contrast("capitals", templates=[0, 1], n=100)   # one ContrastSet per template
    sets[0].pairs[0]    # ("The capital of ... Answer: true", "The capital of ... Answer: false")

Convention used everywhere in nbtoolkit: ``x_pos`` is the prompt completed with the answer of
label 1 (``choices[1]``: "true", "Yes", "positive"), ``x_neg`` the prompt completed with the answer
of label 0. A reporter's probability is the probability that label 1 is correct.

Misleading prefix (Burns et al. Table 3): ``load_contrast(..., prefix=MISLEADING_PREFIX)`` puts a
text before every prompt that asks for wrong answers; any other string works too.

Sources: the project's own datasets in ``data/contrast/*.json`` (schema in its README), and
Burns et al.'s datasets on the Hugging Face hub (:data:`HF_DATASETS`: ``imdb``,
``amazon_polarity``, ``ag_news``, ``dbpedia_14``, ``rte``, ``qnli``, ``copa``, ``boolq``,
``piqa``), downloaded by `datasets` into its cache, with templates written here in the style of
promptsource.
"""

from __future__ import annotations

import hashlib
import json
import string
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .files import data_path, read_json

# Burns et al.'s datasets on the Hugging Face hub (read with `datasets`, never bundled): where each
# lives (``path``, config ``name``, ``split``), its columns (``fields``: template field -> column;
# ``label``), the answers (``choices``: the label-0 answer, then the label-1 one) and templates
# written here in the style of promptsource and Burns' code; the answer follows after a space.
# Multi-class datasets (``label_words``) become binary as Burns did: each example offers its true
# class and one other at random, in random order, as choices 1 and 2; its label says which is true.
# story_cloze is not here: its data is a manual download. Tests: tests/test_data_loaders.py.
HF_DATASETS: dict[str, dict] = {
    "imdb": dict(path="stanfordnlp/imdb", split="test", choices=["negative", "positive"],
                 fields={"text": "text"}, label="label",
                 templates=["Review: {text}\nIs this review positive or negative? Answer:",
                            "{text}\nDid the reviewer like the movie? The sentiment is",
                            "Consider the following movie review: \"{text}\" Its sentiment is"]),
    "amazon_polarity": dict(path="fancyzhx/amazon_polarity", split="test",
                            choices=["negative", "positive"],
                            fields={"title": "title", "text": "content"}, label="label",
                            templates=["Title: {title}\nReview: {text}\nIs this review positive or "
                                       "negative? Answer:",
                                       "{title}. {text}\nThe sentiment of this product review is",
                                       "Product review: \"{text}\" Is the customer satisfied? "
                                       "The review is"]),
    "ag_news": dict(path="fancyzhx/ag_news", split="test", choices=["1", "2"],
                    fields={"text": "text"}, label="label",
                    label_words=["world politics", "sports", "business", "science and technology"],
                    templates=["Consider the following example: \"{text}\"\nChoice 1: {choice1}. "
                               "Choice 2: {choice2}. Between choice 1 and choice 2, the topic of "
                               "this example is choice",
                               "News article: {text}\nIs this article about {choice1} (1) or "
                               "{choice2} (2)? Answer:",
                               "{text}\nWhich section of a newspaper would this article appear "
                               "in, 1: {choice1}, or 2: {choice2}? Answer:"]),
    "dbpedia_14": dict(path="fancyzhx/dbpedia_14", split="test", choices=["1", "2"],
                       fields={"title": "title", "text": "content"}, label="label",
                       label_words=["company", "educational institution", "artist", "athlete",
                                    "office holder", "means of transportation", "building",
                                    "natural place", "village", "animal", "plant", "album",
                                    "film", "written work"],
                       templates=["Consider the following example: \"{title}. {text}\"\nChoice 1: "
                                  "{choice1}. Choice 2: {choice2}. Between choice 1 and choice 2, "
                                  "the topic of this example is choice",
                                  "{title}: {text}\nIs {title} a kind of {choice1} (1) or "
                                  "{choice2} (2)? Answer:",
                                  "Title: {title}\nText: {text}\nThe category of this text, 1: "
                                  "{choice1}, or 2: {choice2}, is"]),
    "rte": dict(path="nyu-mll/glue", name="rte", split="train+validation", choices=["yes", "no"],
                fields={"premise": "sentence1", "hypothesis": "sentence2"}, label="label",
                templates=["{premise}\nQuestion: Does this imply that \"{hypothesis}\"? Yes or "
                           "no? Answer:",
                           "{premise}\nQuestion: {hypothesis} True or false? The hypothesis "
                           "follows, yes or no:",
                           "Given that \"{premise}\", is it guaranteed true that "
                           "\"{hypothesis}\"? Answer:"]),
    "qnli": dict(path="nyu-mll/glue", name="qnli", split="validation", choices=["yes", "no"],
                 fields={"question": "question", "sentence": "sentence"}, label="label",
                 templates=["Question: {question}\nSentence: {sentence}\nDoes the sentence "
                            "answer the question? Answer:",
                            "Can the question \"{question}\" be answered by \"{sentence}\"? "
                            "Answer:",
                            "{sentence}\nDoes this sentence contain the answer to \"{question}\""
                            "? Yes or no? Answer:"]),
    "copa": dict(path="aps/super_glue", name="copa", split="train+validation", choices=["1", "2"],
                 fields={"premise": "premise", "question": "question", "choice1": "choice1",
                         "choice2": "choice2"}, label="label",
                 templates=["Premise: {premise}\nWhat was the {question}?\nChoice 1: {choice1}\n"
                            "Choice 2: {choice2}\nThe more plausible {question} is choice",
                            "{premise} What is the {question}: 1) {choice1} or 2) {choice2}? "
                            "Answer:",
                            "Consider \"{premise}\" Which {question} is more likely, 1: "
                            "\"{choice1}\", or 2: \"{choice2}\"? Answer:"]),
    "boolq": dict(path="google/boolq", split="validation", choices=["No", "Yes"],
                  fields={"passage": "passage", "question": "question"}, label="answer",
                  templates=["{passage}\nQuestion: {question}?\nAnswer:",
                             "Passage: {passage}\nAfter reading this passage, is it true that "
                             "{question}? Answer:",
                             "{passage}\nBased on the passage, {question}? Yes or No? Answer:"]),
    # the PIQA authors' repository (ybisk/piqa) holds a loading script, which `datasets` no longer
    # runs; this is its data as parquet, the copy lm-evaluation-harness reads
    "piqa": dict(path="baber/piqa", split="validation", choices=["1", "2"],
                 fields={"goal": "goal", "solution1": "sol1", "solution2": "sol2"}, label="label",
                 templates=["Goal: {goal}\nSolution 1: {solution1}\nSolution 2: {solution2}\n"
                            "The better solution is",
                            "How would you do this: {goal}? 1) {solution1} 2) {solution2} "
                            "Answer:",
                            "To {goal}, is it better to 1: {solution1}, or 2: {solution2}? "
                            "Answer:"]),
}


# Written for nbtoolkit in the spirit of Burns et al.'s misleading prefix (their exact wording is
# not in their released code): it asks for the wrong answer, whatever the dataset's answer words.
MISLEADING_PREFIX = ("Answer every question below incorrectly: when something is true, say it is "
                     "false, and when it is false, say it is true; call good things bad and bad "
                     "things good.\n\n")


def local_datasets(folder: str | Path | None = None) -> list[str]:
    """Names of the datasets in ``data/contrast`` (``capitals``, ``arithmetic``, ...) or in
    ``folder``, which must exist."""
    folder = Path(folder) if folder else data_path("contrast")
    if not folder.is_dir():
        raise ValueError(f"no folder {folder} (the folder of your contrast datasets, "
                         f"<name>.json each; schema in data/contrast/README.md)")
    return sorted(p.stem for p in folder.glob("*.json"))


def available_datasets(folder: str | Path | None = None) -> list[str]:
    """Every dataset name :func:`load_contrast` accepts (local ones first, then hub ones)."""
    return local_datasets(folder) + sorted(HF_DATASETS)


@dataclass
class ContrastSet:
    """One dataset under one template: ``n`` examples, each a contrast pair.

    ``prompts[i]`` is the filled template (no answer); the pair is ``prompts[i] + " " + choices[1]``
    (``x_pos``) and ``prompts[i] + " " + choices[0]`` (``x_neg``). ``labels`` [n] are 0/1 ints;
    ``row_ids`` [n] index the examples in the source dataset.
    """

    dataset: str
    template: str
    template_id: int
    choices: tuple[str, str]
    prompts: list[str]
    labels: np.ndarray
    row_ids: np.ndarray
    source: str = field(default="", repr=False)

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """``(x_pos, x_neg)`` texts: the prompt ending in the label-1 answer, then the label-0 one."""
        return [(f"{p} {self.choices[1]}", f"{p} {self.choices[0]}") for p in self.prompts]

    @property
    def name(self) -> str:
        return f"{self.dataset}/t{self.template_id}"

    def fingerprint(self) -> str:
        """A hash of everything that defines the pairs (template, choices, prompts, labels, rows)."""
        h = hashlib.sha256()
        payload = [self.dataset, self.template, list(self.choices), self.prompts,
                   self.labels.tolist(), self.row_ids.tolist()]
        h.update(json.dumps(payload, ensure_ascii=False).encode())
        return h.hexdigest()[:16]


def _pick_templates(templates, available: list[str], name: str) -> list[int]:
    if templates is None:
        return list(range(len(available)))
    if isinstance(templates, (int, np.integer)):
        templates = [int(templates)]
    chosen = []
    for t in templates:
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
            raise TypeError(f"templates are given by index, got {t!r}")
        if not 0 <= t < len(available):
            raise ValueError(f"dataset {name!r} has templates 0..{len(available) - 1}, got {t}")
        chosen.append(int(t))
    return chosen


def balanced_subsample(labels: np.ndarray, n: int | None, seed: int = 0) -> np.ndarray:
    """Indices of ``n`` examples, half of each label (as near as possible), in random order."""
    labels = np.asarray(labels)
    if n is None or n >= len(labels):
        return np.random.default_rng(seed).permutation(len(labels))
    if n < 2:
        raise ValueError(f"n must be at least 2 (one example of each label), got {n}")
    rng = np.random.default_rng(seed)
    ones, zeros = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    k1 = min(len(ones), n // 2 + (n % 2) * int(rng.integers(2)))
    k0 = min(len(zeros), n - k1)
    k1 = min(len(ones), n - k0)
    idx = np.concatenate([rng.choice(ones, k1, replace=False), rng.choice(zeros, k0, replace=False)])
    return rng.permutation(idx)


def load_contrast(name: str, templates: int | list[int] | None = None, *, n: int | None = None,
                  seed: int = 0, folder: str | Path | None = None,
                  prefix: str | None = None) -> list[ContrastSet]:
    """Contrast pairs of dataset ``name``, one :class:`ContrastSet` per template.

    ``n`` examples are drawn balanced (seeded); the same examples are used for every template.
    ``name`` is a file of ``data/contrast`` or one of :data:`HF_DATASETS` (needs the hub).
    ``prefix``: text put before every prompt (part of each set's ``template``), e.g.
    :data:`MISLEADING_PREFIX`.
    """
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a string, got {type(name).__name__}")
    if prefix is not None and not isinstance(prefix, str):
        raise TypeError(f"prefix must be a string or None, got {type(prefix).__name__}")
    if name in local_datasets(folder):
        return _with_prefix(_load_local(name, templates, n, seed, folder), prefix)
    if name in HF_DATASETS:
        return _with_prefix(_load_hub(name, templates, n, seed), prefix)
    import difflib
    valid = available_datasets(folder)
    close = difflib.get_close_matches(name, valid, n=2, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(f"unknown contrast dataset {name!r}.{hint} Available: {', '.join(valid)}")


def _with_prefix(sets: list[ContrastSet], prefix: str | None) -> list[ContrastSet]:
    if not prefix:
        return sets
    return [replace(s, template=prefix + s.template, prompts=[prefix + p for p in s.prompts])
            for s in sets]


def _load_local(name, templates, n, seed, folder) -> list[ContrastSet]:
    path = (Path(folder) if folder else data_path("contrast")) / f"{name}.json"
    spec = check_contrast_spec(read_json(path, SCHEMA), path)
    examples = spec["examples"]
    labels = np.array([e["label"] for e in examples], dtype=np.int64)
    idx = balanced_subsample(labels, n, seed)
    sets = []
    for t in _pick_templates(templates, spec["templates"], name):
        template = spec["templates"][t]
        prompts = [template.format(**examples[i]) for i in idx]
        sets.append(ContrastSet(name, template, t, tuple(spec["choices"]), prompts,
                                labels[idx].copy(), idx.astype(np.int64), source=str(path)))
    return sets


SCHEMA = "The schema is in data/contrast/README.md."


def check_contrast_spec(spec, path: Path) -> dict:
    """``spec`` if it is a contrast dataset: ``choices`` two strings, ``templates`` one or more
    strings, ``examples`` a list of objects with a ``label`` 0 or 1 (both present) and every field
    the templates use; else ``ValueError`` naming ``path`` and the first problem."""
    def bad(problem):
        return ValueError(f"{path}: {problem}. {SCHEMA}")
    if not isinstance(spec, dict):
        raise bad(f"the file holds a JSON {type(spec).__name__}, not an object")
    missing = [key for key in ("choices", "templates", "examples") if key not in spec]
    if missing:
        raise bad(f"missing key {missing[0]!r}")
    choices, templates, examples = spec["choices"], spec["templates"], spec["examples"]
    if not isinstance(choices, list) or len(choices) != 2 or \
            not all(isinstance(c, str) for c in choices):
        raise bad(f"'choices' must be two answer strings (label 0's, then label 1's), got {choices!r}")
    if not isinstance(templates, list) or not templates or \
            not all(isinstance(t, str) for t in templates):
        raise bad(f"'templates' must be a non-empty list of strings, got {templates!r}")
    fields = {name for t in templates for _, name, _, _ in string.Formatter().parse(t) if name}
    if not isinstance(examples, list) or not examples:
        raise bad(f"'examples' must be a non-empty list, got {examples!r}")
    for i, example in enumerate(examples):
        if not isinstance(example, dict):
            raise bad(f"example {i} is a {type(example).__name__}, not an object")
        absent = sorted(fields - set(example))
        if absent:
            raise bad(f"example {i} lacks the field {absent[0]!r} that the templates use")
        if example.get("label") not in (0, 1) or isinstance(example.get("label"), bool):
            raise bad(f"example {i} has label {example.get('label')!r}; labels are 0 or 1")
    labels = {e["label"] for e in examples}
    if len(labels) < 2:
        raise bad(f"every example has label {labels.pop()}; a contrast dataset needs both labels")
    return spec


def _load_hub(name, templates, n, seed) -> list[ContrastSet]:
    info = HF_DATASETS[name]
    chosen = _pick_templates(templates, info["templates"], name)
    try:
        import datasets
        args = (info["path"], info["name"]) if "name" in info else (info["path"],)
        data = datasets.load_dataset(*args, split=info["split"])
    except Exception as error:  # offline, missing builder, network error: one clear message
        raise RuntimeError(
            f"could not load {name!r} from the Hugging Face hub ({info['path']}; "
            f"{type(error).__name__}: {error}). A hub dataset is downloaded once into the "
            f"Hugging Face cache; offline (HF_HUB_OFFLINE=1) only a cached copy loads. The "
            f"offline datasets are {', '.join(local_datasets())}.") from error
    labels = np.asarray(data[info["label"]], dtype=np.int64)
    if "label_words" in info:
        labels, choice_classes = _binarize(labels, len(info["label_words"]), seed)
    idx = balanced_subsample(labels, n, seed)
    rows = data.select(idx.tolist())
    columns = {key: rows[col] for key, col in info["fields"].items()}
    if "label_words" in info:
        for key, classes in choice_classes.items():
            columns[key] = [info["label_words"][c] for c in classes[idx]]
    sets = []
    for t in chosen:
        template = info["templates"][t]
        prompts = [template.format(**{k: str(v[i]).strip() for k, v in columns.items()})
                   for i in range(len(idx))]
        sets.append(ContrastSet(name, template, t, tuple(info["choices"]), prompts,
                                labels[idx].copy(), idx.astype(np.int64), source=f"hub:{info['path']}"))
    return sets


def _binarize(classes: np.ndarray, n_classes: int, seed: int) -> tuple[np.ndarray, dict]:
    """A multi-class dataset as binary choices (Burns et al.): example i offers its class and one
    other drawn at random, in random order (seeded), as ``choice1`` and ``choice2``; its label is 1
    when the true class is ``choice2``. Returns the labels [n] and each choice's class [n]."""
    if classes.min() < 0 or classes.max() >= n_classes:
        raise ValueError(f"labels must be classes 0..{n_classes - 1}, got "
                         f"{classes.min()}..{classes.max()}")
    rng = np.random.default_rng(seed)
    other = (classes + rng.integers(1, n_classes, size=len(classes))) % n_classes
    second = rng.integers(0, 2, size=len(classes))  # 1: the true class is choice 2
    return second.astype(np.int64), {"choice1": np.where(second == 1, other, classes),
                                     "choice2": np.where(second == 1, classes, other)}
