"""The instruction-tuning-shift paper's released explanation files (Wu et al., arXiv 2310.00492;
github.com/JacksonWuxs/Interpret_Instruction_Tuning_LLMs, GPL-3): downloaded on demand into the
cache, never bundled.

    download_released()                       # online: fetch the files once (about 23 + 10 TSVs)
    pairs = load_bilinear_pairs(words=verbs)  # attention-head word pairs (Table 3)
    tasks = load_annotations("task")          # gpt-3.5 labels of FFN concepts, 5 seeds (Table 5)

Formats (read off the authors' ``run_*_explain.py``, ``run_chatgpt_annotate.py`` and analysis
scripts at :data:`COMMIT`), tab-separated, first line a header, tabs and newlines inside fields
escaped as ``/t`` and ``/n``:

- ``results/bilinear_interpret/bilinear_words_split.tsv{aa..aw}``: one file cut into parts (``cat``
  them); columns Model, Size, Layer (0-based), Type (QK), Head, Dim, Rank, Score, TopK, where TopK
  is ``key=query`` word pairs joined by ``|||``.
- ``results/linear_interpret/linear_{task,concept}_seed{0..4}.tsv``: Label (the task, or the
  linguistic level), Explainable, Words, Summary, then the ``linear_words.tsv`` columns Model,
  Size, Layer, Type (FFN), Head, Rank (1-based), Score, TopK. Only concepts whose summary was not
  "Cannot Tell" were labelled.

Rows whose field count is wrong are skipped, as the authors' ``read_rawfile`` does.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Iterable, Iterator

import pandas as pd

from ..core.files import atomic_write
from ..core.loading import cache_dir

REPOSITORY = "JacksonWuxs/Interpret_Instruction_Tuning_LLMs"
COMMIT = "52508a0a9597e8a2fb239740261cac424eea23c0"
RAW_URL = "https://raw.githubusercontent.com/{repository}/{commit}/{path}"
BILINEAR_PARTS = tuple(f"results/bilinear_interpret/bilinear_words_split.tsva{c}"
                       for c in string.ascii_lowercase[:23])  # aa .. aw
ANNOTATION_KINDS = ("task", "concept")
SEEDS = tuple(range(5))
BILINEAR_COLUMNS = ("Model", "Size", "Layer", "Type", "Head", "Dim", "Rank", "Score", "TopK")
ANNOTATION_COLUMNS = ("Label", "Explainable", "Words", "Summary", "Model", "Size", "Layer", "Type",
                      "Head", "Rank", "Score", "TopK")
MODELS = ("llama", "vicuna")  # the paper's pre-trained and tuned LLaMA-7B / Vicuna-7B-v1.1


def annotation_path(kind: str, seed: int) -> str:
    if kind not in ANNOTATION_KINDS:
        raise ValueError(f"kind must be one of {ANNOTATION_KINDS}, got {kind!r}")
    return f"results/linear_interpret/linear_{kind}_seed{seed}.tsv"


def released_files() -> list[str]:
    """Repository paths of every file the Table 3 and Table 5 analyses read."""
    return list(BILINEAR_PARTS) + [annotation_path(k, s) for k in ANNOTATION_KINDS for s in SEEDS]


def released_folder(folder: str | Path | None = None) -> Path:
    """``folder``, else ``<NBTOOLKIT_CACHE>/instruction_shift/<commit>``."""
    return Path(folder) if folder else cache_dir() / "instruction_shift" / COMMIT[:7]


def released_available(folder: str | Path | None = None) -> bool:
    """Whether every released file is in ``folder`` (see :func:`download_released`)."""
    root = released_folder(folder)
    return all((root / path).exists() for path in released_files())


def download_released(folder: str | Path | None = None, *, timeout: float = 60.0,
                      raw_url: str = RAW_URL) -> Path:
    """Fetch the released files at :data:`COMMIT` into ``folder`` (skipping those already there).

    ``raw_url``: where a file lives, with ``{repository}``, ``{commit}`` and ``{path}`` (default:
    GitHub's raw files). Each file is written atomically. Raises ``ValueError`` naming the file
    and URL when one cannot be fetched (offline, moved) or is a Git LFS pointer instead of the
    table.
    """
    from urllib.request import urlopen

    root = released_folder(folder)
    for path in released_files():
        target = root / path
        if target.exists():
            continue
        url = raw_url.format(repository=REPOSITORY, commit=COMMIT, path=path)
        try:
            with urlopen(url, timeout=timeout) as response:  # noqa: S310 (a fixed https URL)
                data = response.read()
        except OSError as error:
            raise ValueError(f"cannot fetch {path} from {url} ({error}); the released files need "
                             f"network access (they are GPL-3 and not bundled)") from error
        if data.startswith(b"version https://git-lfs"):
            raise ValueError(f"{url} is a Git LFS pointer, not the table; fetch the file with git "
                             f"lfs into {target}")
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, lambda tmp: Path(tmp).write_bytes(data))
    return root


def read_rows(paths: Iterable[str | Path], n_fields: int) -> Iterator[list[str]]:
    """Fields of every data row of the files read as one text (parts of a split file join
    mid-line), skipping header lines and rows without exactly ``n_fields`` fields."""
    header, carry = None, ""
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing; run download_released() (online) first")
        with open(path, encoding="utf8", newline="\n") as f:
            for line in f:
                line, carry = carry + line, ""
                if not line.endswith("\n"):
                    carry = line  # this part ends mid-line: the next part continues it
                    continue
                fields = line[:-1].split("\t")
                if header is None:
                    header = fields
                    continue
                if fields == header or len(fields) != n_fields:
                    continue
                yield fields
    if carry:
        fields = carry.split("\t")
        if len(fields) == n_fields and fields != header:
            yield fields


def normalise_pair(pair: str) -> str:
    """``"Write=essay"`` -> ``"essay=write"``: lower case, the two words sorted (the analysis'
    form, so a pair and its mirror are the same pair)."""
    return "=".join(sorted(pair.split("="))).lower()


def load_bilinear_pairs(folder: str | Path | None = None, *, words: Iterable[str] | None = None,
                        models: tuple[str, str] = MODELS) -> pd.DataFrame:
    """The attention word pairs of both models, one row per (model, layer, head, dim, pair).

    Only (layer, head, dim) present for both ``models`` are kept (the analysis merges the two
    models on them). ``words``: keep only pairs with one of these words (the files hold millions
    of pairs; Table 3 needs the verbs'), plus a row with ``pair`` None for every kept dim, so the
    dims stay countable. Columns: model, layer, head, dim, pair (normalised, see
    :func:`normalise_pair`).
    """
    root = released_folder(folder)
    keep = None if words is None else {w.lower() for w in words}
    rows = []
    for f in read_rows([root / p for p in BILINEAR_PARTS], len(BILINEAR_COLUMNS)):
        model, layer, head, dim, top = f[0], f[2], f[4], f[5], f[8]
        if model not in models:
            continue
        key = (model, int(layer), int(head), int(dim))
        rows.append(key + (None,))
        for pair in top.split("|||") if top else []:
            pair = normalise_pair(pair)
            if keep is None or not keep.isdisjoint(pair.split("=")):
                rows.append(key + (pair,))
    frame = pd.DataFrame(rows, columns=["model", "layer", "head", "dim", "pair"])
    dims = frame.drop_duplicates(["model", "layer", "head", "dim"])
    shared = dims.groupby(["layer", "head", "dim"])["model"].nunique()
    shared = shared[shared == len(models)].index
    return frame[pd.MultiIndex.from_frame(frame[["layer", "head", "dim"]]).isin(shared)]\
        .reset_index(drop=True)


def load_annotations(kind: str, folder: str | Path | None = None, *, seeds=SEEDS,
                     max_rank: int | None = 300, models: tuple[str, ...] = MODELS) -> pd.DataFrame:
    """gpt-3.5's labels of the FFN concepts: ``kind`` ``"task"`` (daily / literary / professional
    writing, solving math problems, coding, translation, None; several may be joined by ``;``) or
    ``"concept"`` (phonology, morphology, syntax, semantic), one row per (seed, model, layer,
    rank) with ``rank <= max_rank`` (the paper: 300). Columns: seed, model, layer, rank, label,
    summary."""
    root = released_folder(folder)
    rows = []
    for seed in seeds:
        for f in read_rows([root / annotation_path(kind, seed)], len(ANNOTATION_COLUMNS)):
            label, summary, model, layer, rank = f[0], f[3], f[4], f[6], f[9]
            if model in models and layer.isdigit() and rank.isdigit():
                rows.append((seed, model, int(layer), int(rank), label, summary))
    frame = pd.DataFrame(rows, columns=["seed", "model", "layer", "rank", "label", "summary"])
    return frame if max_rank is None else frame[frame["rank"] <= max_rank].reset_index(drop=True)
