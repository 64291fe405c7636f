"""Hidden states of both halves of every contrast pair, at every layer, with an on-disk cache.

    states = extract(lm, load_contrast("capitals", 0, n=100)[0])
    states.hidden_pos            # [n, n_layers + 1, d_model]: x⁺ at the embeddings and every layer
    xp, xn = states.at(12)       # [n, d_model] each: the residual stream after block 12

Layers follow nbtoolkit's one numbering: layer i is the residual stream leaving block i (site
``layer.{i}``) and layer −1 the embeddings (site ``embed``); Hugging Face's ``hidden_states[i + 1]``
is our layer i, except that our last layer is taken *before* the final norm, like every other.

Pooling: ``"last"`` (the last token: a decoder's answer's last token, an encoder's end token
[SEP] or </s>; the default as in Burns/elk) or ``"mean"`` (over the non-padding tokens). For
decoders the same forward also gives the zero-shot baseline: the mean log-probability of each
answer's tokens (logits are computed only at those few positions, which matters for a 262k
vocabulary). Encoders and encoder-decoders (T5: either stack, as Burns' code) are read as
:func:`extract` says.

Cache: one folder per (model + fingerprint of all its weights, buffers, dtypes and tokenizer,
dataset + content fingerprint (prompts, template, choices, labels), template, pooling, layers,
stack), holding ``key.json`` and shards, each a ``datasets.Dataset`` saved with ``save_to_disk``
next to a JSON with its row range and a SHA-256 of its arrays. Shards are written to a temporary
folder and renamed into place, so an interrupted run keeps its finished shards and the next run
resumes. A shard whose hash, shape or key does not match is reported (warning), deleted and
recomputed, never used.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..core.anatomy import STACKS, check_layers, require, residual_site
from ..core.files import replace_folder, slug, stale_asides, write_json
from ..core.hooks import capture
from ..core.lm import masked_mean
from ..core.loading import cache_dir
from ..data.contrast import ContrastSet

CACHE_FORMAT = 1
POOLINGS = ("last", "mean")
SUPPORTED_KINDS = ("decoder", "encoder", "encoder-decoder")


@dataclass
class ContrastStates:
    """Extracted states of one :class:`~nbtoolkit.data.contrast.ContrastSet`.

    ``hidden_pos``/``hidden_neg`` [n, len(layers), d] float32; ``labels``, ``row_ids`` [n];
    ``logp_pos``/``logp_neg`` [n]: mean log-prob of each answer's tokens; ``layers``: the layers
    extracted (−1 = embeddings, i = after block i).
    """

    dataset: str
    template_id: int
    hidden_pos: np.ndarray
    hidden_neg: np.ndarray
    labels: np.ndarray
    row_ids: np.ndarray
    logp_pos: np.ndarray
    logp_neg: np.ndarray
    layers: list[int]
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def _index(self, layer: int) -> int:
        if layer not in self.layers:
            raise ValueError(f"layer {layer} was not extracted; available: {self.layers}")
        return self.layers.index(layer)

    def at(self, layer: int) -> tuple[np.ndarray, np.ndarray]:
        """``(x_pos, x_neg)`` at one layer, ``[n, d]`` each."""
        i = self._index(layer)
        return self.hidden_pos[:, i], self.hidden_neg[:, i]

    def stack(self, layers: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x_pos, x_neg)`` for several layers, ``[len(layers), n, d]`` tensors."""
        idx = [self._index(l) for l in (self.layers if layers is None else layers)]
        # moveaxis, not transpose: stacked templates add an axis (nbtoolkit.ccs.pooling)
        return (torch.from_numpy(np.ascontiguousarray(np.moveaxis(self.hidden_pos[:, idx], 1, 0))),
                torch.from_numpy(np.ascontiguousarray(np.moveaxis(self.hidden_neg[:, idx], 1, 0))))

    def subset(self, idx) -> "ContrastStates":
        idx = np.asarray(idx)
        return ContrastStates(self.dataset, self.template_id, self.hidden_pos[idx], self.hidden_neg[idx],
                              self.labels[idx], self.row_ids[idx], self.logp_pos[idx],
                              self.logp_neg[idx], list(self.layers), dict(self.meta))

    def split(self, train_frac: float = 0.6, seed: int = 0) -> tuple["ContrastStates", "ContrastStates"]:
        """A stratified train/test split by example (seeded): same examples for any template."""
        if not 0 < train_frac < 1:
            raise ValueError(f"train_frac must be in (0, 1), got {train_frac}")
        train = split_indices(self.row_ids, self.labels, train_frac, seed)
        mask = np.isin(self.row_ids, train)
        return self.subset(np.flatnonzero(mask)), self.subset(np.flatnonzero(~mask))


def split_indices(row_ids, labels, train_frac: float, seed: int) -> np.ndarray:
    """Row ids of the training part of a stratified split (depends on ids and labels only)."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label in (0, 1):
        ids = np.sort(np.asarray(row_ids)[np.asarray(labels) == label])
        chosen.append(rng.permutation(ids)[: int(round(train_frac * len(ids)))])
    return np.concatenate(chosen)


# --------------------------------------------------------------------------- extraction

def answer_lengths(lm, prompts: list[str], texts: list[str]) -> list[int]:
    """Tokens each answer adds to its prompt (at least 1)."""
    tok = lm.tokenizer
    p = tok(prompts)["input_ids"]
    t = tok(texts)["input_ids"]
    return [max(1, len(b) - len(a)) for a, b in zip(p, t)]


@torch.no_grad()
def forward_states(lm, prompts: list[str], answers: list[str], layers: list[int],
                   pooling: str = "last", stack: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One batch of (prompt, answer) pairs: pooled states ``[b, len(layers), d]`` and mean answer
    log-probs ``[b]`` (float32; NaN for models without a causal LM head). See :func:`extract`."""
    if lm.kind == "encoder-decoder":
        return _encoder_decoder_states(lm, prompts, answers, layers, pooling, stack)
    texts = [f"{p} {a}" for p, a in zip(prompts, answers)]  # ContrastSet.pairs' texts
    sites = [residual_site(layer) for layer in layers]
    batch = lm.encode(texts)
    if lm.kind == "encoder":
        with capture(lm, sites) as acts:
            lm.model.base_model(**batch)  # the body: hidden states need no head
        logp = np.full(len(texts), np.nan, np.float32)
        return _pool(acts, sites, batch["attention_mask"], pooling), logp
    n_answer = answer_lengths(lm, prompts, texts)
    keep = max(n_answer) + 1  # the LM head runs only on the last positions
    # as an index, not ``logits_to_keep=keep``: a slice hands the LM head a strided view, which a
    # frozen model multiplies row by row (1.4x slower extraction; see core.lm.LAST_POSITION)
    last = torch.arange(-keep, 0, device=lm.device)
    with capture(lm, sites) as acts:
        try:
            logits = lm.model(**batch, logits_to_keep=last).logits
        except TypeError:  # models without logits_to_keep
            logits = lm.model(**batch).logits[:, -keep:]
    ids = batch["input_ids"]
    logprobs = []
    for r, n in enumerate(n_answer):
        # logits[:, j] predicts the token after kept position j; answer tokens are the last n ids
        lp = logits[r, keep - 1 - n: keep - 1].float().log_softmax(-1)
        logprobs.append(lp.gather(-1, ids[r, -n:, None]).mean())
    logp = torch.stack(logprobs).float().cpu().numpy()
    return _pool(acts, sites, batch["attention_mask"], pooling), logp


def _encoder_decoder_states(lm, prompts, answers, layers, pooling, stack):
    """Burns' two ways to read an encoder-decoder: ``stack="encoder"`` encodes the pair
    ``prompt </s> answer </s>`` and reads the encoder (the decoder would not change it, so it does
    not run); ``stack="decoder"`` encodes the prompt and feeds the answer's tokens (ending in
    </s>, no start token, as Burns' code) to the decoder, whose states are read."""
    sites = [residual_site(layer, stack) for layer in layers]
    if stack == "encoder":
        batch = lm.encode(prompts, answers)
        with capture(lm, sites) as acts:
            lm.model.get_encoder()(**batch)
        mask = batch["attention_mask"]
    else:
        batch, target = lm.encode(prompts), lm.encode(answers)
        with capture(lm, sites) as acts:
            lm.model(**batch, decoder_input_ids=target["input_ids"],
                     decoder_attention_mask=target["attention_mask"])
        mask = target["attention_mask"]
    return _pool(acts, sites, mask, pooling), np.full(len(prompts), np.nan, np.float32)


def _pool(acts, sites: list[str], mask: torch.Tensor, pooling: str) -> np.ndarray:
    """``[b, len(sites), d]``: each site's last position (left padding: every row's last token) or
    its mean over the tokens."""
    pooled = [acts[site][:, -1] if pooling == "last" else masked_mean(acts[site], mask)
              for site in sites]
    return torch.stack(pooled, 1).float().cpu().numpy()


def extract(lm, contrast: ContrastSet, *, layers: list[int] | None = None, pooling: str = "last",
            stack: str | None = None, batch_size: int = 32, chunk_size: int = 64,
            cache: bool | str | Path | None = True, progress: bool = True) -> ContrastStates:
    """Hidden states of both halves of every pair of ``contrast`` at ``layers`` (default: all).

    Decoders read ``prompt + " " + answer`` (and give the zero-shot answer log-probs); encoders
    the same text wrapped in their special tokens, as Burns' code (``pooling="last"`` then reads
    the end token, [SEP] or </s>; no log-probs: NaN). Encoder-decoders (T5): ``stack`` names the
    stack read, ``"encoder"`` (default; Burns' default, the paper's choice for T5 and UnifiedQA)
    or ``"decoder"`` (the paper's choice for T0): see :func:`_encoder_decoder_states`; layers are
    then that stack's.

    ``cache``: ``True`` = ``<NBTOOLKIT_CACHE>/activations``, a path = that folder, ``False``/``None``
    = no cache. Work is done in chunks of ``chunk_size`` pairs (one cache shard each); sequences
    are sorted by length inside a chunk to waste little padding.
    """
    require(lm.model, "CCS extraction", SUPPORTED_KINDS)
    if not isinstance(contrast, ContrastSet):
        raise TypeError(f"extract() takes a ContrastSet (from load_contrast), got "
                        f"{type(contrast).__name__}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if batch_size < 1 or chunk_size < 1:
        raise ValueError(f"batch_size and chunk_size must be >= 1, got {batch_size}, {chunk_size}")
    if len(contrast) == 0:
        raise ValueError(f"{contrast.name}: no examples")
    stack = _check_stack(lm, stack)
    layers = check_layers(lm.model, layers, stack=stack or "")
    key = cache_key(lm, contrast, layers, pooling, stack)
    store = _Store(_cache_root(cache), key) if cache else None
    n = len(contrast)
    chunks = [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]
    done = store.valid_shards(chunks) if store else {}
    todo = [c for c in chunks if c not in done]
    from tqdm.auto import tqdm

    bar = tqdm(total=2 * sum(b - a for a, b in todo), desc=f"{contrast.name} states",
               unit="seq", disable=not progress or not todo, leave=False)
    try:
        for start, stop in todo:
            k = stop - start
            prompts = contrast.prompts[start:stop] * 2
            answers = [contrast.choices[1]] * k + [contrast.choices[0]] * k  # x⁺ rows, then x⁻
            order = np.argsort([len(p) + len(a) for p, a in zip(prompts, answers)], kind="stable")
            states = np.zeros((2 * k, len(layers), lm.d_model), np.float32)
            logp = np.zeros(2 * k, np.float32)
            for b in range(0, 2 * k, batch_size):
                sel = order[b: b + batch_size]
                s, l = forward_states(lm, [prompts[i] for i in sel], [answers[i] for i in sel],
                                      layers, pooling, stack)
                states[sel], logp[sel] = s, l
                bar.update(len(sel))
            part = dict(index=np.arange(start, stop), hidden_pos=states[:k], hidden_neg=states[k:],
                        logp_pos=logp[:k], logp_neg=logp[k:])
            if store:
                store.write_shard(start, stop, part)
            done[(start, stop)] = part
    finally:
        bar.close()
    parts = [done[c] for c in chunks]
    cat = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    meta = dict(key, cache=str(store.folder) if store else None)
    return ContrastStates(contrast.dataset, contrast.template_id, cat["hidden_pos"], cat["hidden_neg"],
                          contrast.labels.copy(), contrast.row_ids.copy(), cat["logp_pos"],
                          cat["logp_neg"], layers, meta)


def _check_stack(lm, stack: str | None) -> str | None:
    """The stack read: an encoder-decoder's (default ``"encoder"``); ``None`` for other models."""
    if lm.kind != "encoder-decoder":
        if stack is not None:
            raise ValueError(f"stack is for encoder-decoder models; {lm.family!r} has one stack")
        return None
    stack = "encoder" if stack is None else stack
    if stack not in STACKS:
        raise ValueError(f"stack must be one of {STACKS}, got {stack!r}")
    return stack


# --------------------------------------------------------------------------- cache

def model_fingerprint(lm) -> str:
    """A hash of everything in the model that the states depend on: its name and sizes, every
    parameter and buffer (names, dtypes, shapes and all their bytes, so an edit of one weight
    anywhere changes it) and its tokenizer. The tensors are hashed in two fixed halves on two
    threads (hashlib lets go of the GIL): about 0.2 s for SmolLM2-135M (0.5 GB) on 2 cores."""
    tensors = sorted([*lm.model.named_parameters(), *lm.model.named_buffers()],
                     key=lambda item: (-item[1].nbytes, item[0]))
    halves, sizes = ([], []), [0, 0]
    for item in tensors:  # largest first onto the lighter half: the same split on every machine
        lighter = sizes.index(min(sizes))
        halves[lighter].append(item)
        sizes[lighter] += item[1].nbytes
    with ThreadPoolExecutor(2) as pool:
        digests = list(pool.map(_tensors_digest, halves))
    h = hashlib.sha256()
    h.update(json.dumps([lm.name, lm.family, lm.n_layers, lm.d_model], default=str).encode())
    for digest in digests:
        h.update(digest)
    h.update(tokenizer_fingerprint(lm.tokenizer).encode())
    return h.hexdigest()[:16]


def _tensors_digest(tensors: list[tuple[str, torch.Tensor]]) -> bytes:
    """sha256 of named tensors: each one's name, dtype, shape and bytes."""
    h = hashlib.sha256()
    with torch.no_grad():
        for name, t in tensors:
            h.update(f"{name} {t.dtype} {tuple(t.shape)}".encode())
            h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.digest()


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of a tokenizer: its full definition (a fast tokenizer's JSON without the padding and
    truncation that each call sets, else its vocabulary), special tokens and padding side."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        text = _definition_without_call_state(backend)
    else:
        text = json.dumps(sorted(tokenizer.get_vocab().items()))
    extra = [sorted(tokenizer.special_tokens_map.items()), tokenizer.padding_side]
    return hashlib.sha256((text + json.dumps(extra, default=str)).encode()).hexdigest()[:16]


def _definition_without_call_state(backend) -> str:
    """A fast tokenizer's JSON (``to_str``, ~30 ms) with padding and truncation off for the moment
    (each call sets them; put back after). Not ``json.loads``/``dumps``: a Python copy of a 50k
    vocabulary costs ~0.4 s, most of it the garbage collector walking it."""
    padding, truncation = backend.padding, backend.truncation
    backend.no_padding()
    backend.no_truncation()
    try:
        return backend.to_str()
    finally:
        if padding is not None:
            backend.enable_padding(**padding)
        if truncation is not None:
            backend.enable_truncation(**truncation)


def cache_key(lm, contrast: ContrastSet, layers: list[int], pooling: str,
              stack: str | None = None) -> dict:
    """Everything that determines the extracted arrays."""
    read = {} if stack is None else {"stack": stack}  # an encoder-decoder's stack
    return {**read, "format": CACHE_FORMAT, "model": lm.name, "model_fingerprint": model_fingerprint(lm),
            "dataset": contrast.dataset, "template_id": contrast.template_id,
            "template": contrast.template, "data_fingerprint": contrast.fingerprint(),
            "n": len(contrast), "pooling": pooling, "layers": list(layers), "d_model": lm.d_model}


def _cache_root(cache) -> Path:
    if cache is True:
        return cache_dir() / "activations"
    if isinstance(cache, (str, Path)):
        return Path(cache)
    raise TypeError(f"cache must be True, False/None or a folder path, got {cache!r}")


def _digest(part: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(part):
        a = np.ascontiguousarray(part[name])
        h.update(name.encode() + str(a.shape).encode() + str(a.dtype).encode() + a.tobytes())
    return h.hexdigest()


class _Store:
    """One cache folder: ``key.json`` + ``shard-<start>-<stop>/`` datasets + their ``.json``."""

    def __init__(self, root: Path, key: dict):
        self.key = key
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        self.folder = (root / slug(key["model"]) / slug(key["dataset"]) /
                       f"t{key['template_id']}-{key['pooling']}-{digest}")
        self.folder.mkdir(parents=True, exist_ok=True)
        key_file = self.folder / "key.json"
        try:
            stored = json.loads(key_file.read_text()) if key_file.exists() else None
        except ValueError:
            stored = "corrupt"
        if stored != key:
            if stored is not None:
                warnings.warn(f"activation cache {self.folder}: key.json does not match this "
                              f"extraction ({'unreadable' if stored == 'corrupt' else 'different key'}); "
                              f"rebuilding it")
            for child in self.folder.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
            write_json(key_file, key)
        for child in [*self.folder.glob(".tmp-*"), *stale_asides(self.folder / "shard-*")]:
            shutil.rmtree(child, ignore_errors=True)  # leftovers of an interrupted write

    def _name(self, start: int, stop: int) -> str:
        return f"shard-{start:07d}-{stop:07d}"

    def valid_shards(self, chunks) -> dict:
        """``{(start, stop): arrays}`` for every shard that loads and matches its hash."""
        import datasets

        found = {}
        wanted = set(chunks)
        for meta_file in sorted(self.folder.glob("shard-*.json")):
            name = meta_file.stem
            folder = self.folder / name
            try:
                meta = json.loads(meta_file.read_text())
                chunk = (meta["start"], meta["stop"])
                if chunk not in wanted:
                    raise ValueError("row range is not a chunk of this run")
                ds = datasets.load_from_disk(str(folder)).with_format("numpy")
                cols = ds[:]
                part = {k: np.asarray(cols[k]) for k in ("index", "hidden_pos", "hidden_neg",
                                                          "logp_pos", "logp_neg")}
                n, L, d = chunk[1] - chunk[0], len(self.key["layers"]), self.key["d_model"]
                if part["hidden_pos"].shape != (n, L, d) or part["hidden_neg"].shape != (n, L, d):
                    raise ValueError(f"shape {part['hidden_pos'].shape}, expected {(n, L, d)}")
                if _digest(part) != meta["sha256"]:
                    raise ValueError("SHA-256 of the arrays does not match")
                found[chunk] = part
            except Exception as error:
                warnings.warn(f"activation cache shard {folder} is corrupt or mismatched "
                              f"({type(error).__name__}: {error}); recomputing it")
                meta_file.unlink(missing_ok=True)
                shutil.rmtree(folder, ignore_errors=True)
        # a shard folder without its JSON never finished: drop it
        for folder in self.folder.glob("shard-*"):
            if folder.is_dir() and not folder.with_suffix(".json").exists():
                shutil.rmtree(folder, ignore_errors=True)
        return found

    def write_shard(self, start: int, stop: int, part: dict) -> None:
        """Save one shard: dataset into a temp folder, rename, then its JSON (the commit mark)."""
        import datasets

        n, L, d = part["hidden_pos"].shape
        features = datasets.Features({
            "index": datasets.Value("int64"),
            "hidden_pos": datasets.Array2D((L, d), "float32"),
            "hidden_neg": datasets.Array2D((L, d), "float32"),
            "logp_pos": datasets.Value("float32"),
            "logp_neg": datasets.Value("float32"),
        })
        ds = datasets.Dataset.from_dict(part, features=features)
        name = self._name(start, stop)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.folder))
        quiet = datasets.are_progress_bars_disabled()
        datasets.disable_progress_bars()  # restored below: no sticky global change
        try:
            ds.save_to_disk(str(tmp / "data"))
            replace_folder(tmp / "data", self.folder / name)
        finally:
            if not quiet:
                datasets.enable_progress_bars()
            shutil.rmtree(tmp, ignore_errors=True)
        write_json(self.folder / f"{name}.json",
                    {"start": start, "stop": stop, "sha256": _digest(part)})


def load_cached(folder: str | Path):
    """The cached shards of one extraction as a single ``datasets.Dataset`` (rows in order)."""
    import datasets

    folder = Path(folder)
    shards = sorted(p for p in folder.glob("shard-*") if p.is_dir())
    if not shards:
        raise ValueError(f"{folder} holds no cache shards")
    return datasets.concatenate_datasets([datasets.load_from_disk(str(p)) for p in shards])
