"""Small repositories in the layout and formats of the hub's own, for tests/fake_hub.py to serve:
Burns et al.'s datasets (the parquet files `datasets` reads, with each column and class label of
the real ones, a README whose ``configs`` name the split files, as the hub's datasets have), and
ROME's known_1000.json records (its exact fields)."""

from __future__ import annotations

from pathlib import Path

import datasets

String, Int32, Int64 = datasets.Value("string"), datasets.Value("int32"), datasets.Value("int64")
AG_NEWS = ["World", "Sports", "Business", "Sci/Tech"]
DBPEDIA = ["Company", "EducationalInstitution", "Artist", "Athlete", "OfficeHolder",
           "MeanOfTransportation", "Building", "NaturalPlace", "Village", "Animal", "Plant", "Album",
           "Film", "WrittenWork"]
ENTAILMENT = datasets.ClassLabel(names=["entailment", "not_entailment"])
ROWS = 24  # per split: enough for a balanced n=8 after binarizing


def _rows(kind: str, i: int) -> dict:
    """Row i of a dataset of ``kind``: texts that name their row, labels cycling over the classes."""
    two = i % 2
    return {
        "imdb": dict(text=f"Movie review {i}: {'loved' if two else 'hated'} it.", label=two),
        "amazon_polarity": dict(label=two, title=f"Product {i}", content=f"Review {i} of a product."),
        "ag_news": dict(text=f"News story {i}.", label=i % 4),
        "dbpedia_14": dict(label=i % 14, title=f"Entity {i}", content=f"Entity {i} is a thing."),
        "rte": dict(sentence1=f"Premise {i}.", sentence2=f"Hypothesis {i}.", label=two, idx=i),
        "qnli": dict(question=f"Question {i}?", sentence=f"Sentence {i}.", label=two, idx=i),
        "copa": dict(premise=f"Premise {i}.", choice1=f"First {i}.", choice2=f"Second {i}.",
                     question=["cause", "effect"][i % 2], idx=i, label=(i // 2) % 2),
        "boolq": dict(question=f"is question {i} true", answer=bool(two), passage=f"Passage {i}."),
        "piqa": dict(goal=f"goal {i}", sol1=f"way one {i}", sol2=f"way two {i}", label=two),
    }[kind]


FEATURES = {
    "imdb": dict(text=String, label=datasets.ClassLabel(names=["neg", "pos"])),
    "amazon_polarity": dict(label=datasets.ClassLabel(names=["negative", "positive"]), title=String,
                            content=String),
    "ag_news": dict(text=String, label=datasets.ClassLabel(names=AG_NEWS)),
    "dbpedia_14": dict(label=datasets.ClassLabel(names=DBPEDIA), title=String, content=String),
    "rte": dict(sentence1=String, sentence2=String, label=ENTAILMENT, idx=Int32),
    "qnli": dict(question=String, sentence=String, label=ENTAILMENT, idx=Int32),
    "copa": dict(premise=String, choice1=String, choice2=String, question=String, idx=Int32,
                 label=datasets.ClassLabel(names=["choice1", "choice2"])),
    "boolq": dict(question=String, answer=datasets.Value("bool"), passage=String),
    "piqa": dict(goal=String, sol1=String, sol2=String, label=Int64),
}

# repo -> config -> (folder of its files, splits); a config "default" is the repo's only one
REPOS = {
    "stanfordnlp/imdb": {"plain_text": ("imdb", "plain_text", ["train", "test", "unsupervised"])},
    "fancyzhx/amazon_polarity": {"amazon_polarity": ("amazon_polarity", "amazon_polarity",
                                                     ["train", "test"])},
    "fancyzhx/ag_news": {"default": ("ag_news", "data", ["train", "test"])},
    "fancyzhx/dbpedia_14": {"dbpedia_14": ("dbpedia_14", "dbpedia_14", ["train", "test"])},
    "nyu-mll/glue": {"rte": ("rte", "rte", ["train", "validation", "test"]),
                     "qnli": ("qnli", "qnli", ["train", "validation", "test"])},
    "aps/super_glue": {"copa": ("copa", "copa", ["train", "validation", "test"])},
    "google/boolq": {"default": ("boolq", "data", ["train", "validation"])},
    "baber/piqa": {"default": ("piqa", "data", ["train", "validation", "test"])},
}


def dataset_rows(kind: str, split: str) -> list[dict]:
    """The rows of one split (a test split of GLUE / SuperGLUE has label -1, as the real ones)."""
    offset = {"train": 0, "validation": 1000, "test": 2000, "unsupervised": 3000}[split]
    rows = [_rows(kind, offset + i) for i in range(ROWS)]
    if split == "test" and kind in ("rte", "qnli", "copa"):
        rows = [dict(r, label=-1) for r in rows]
    return rows


def write_dataset_repos(root: Path, repos=tuple(REPOS)) -> dict[str, Path]:
    """The ``repos`` of :data:`REPOS` under ``root``; returns repo id -> folder."""
    folders = {}
    for repo in repos:
        configs = REPOS[repo]
        folder = root / repo.replace("/", "--")
        card = ["---", "configs:"]
        for config, (kind, subdir, splits) in configs.items():
            card.append(f"- config_name: {config}")
            card.append("  data_files:")
            for split in splits:
                rows = dataset_rows(kind, split)
                table = datasets.Dataset.from_list(rows, features=datasets.Features(FEATURES[kind]))
                path = folder / subdir / f"{split}-00000-of-00001.parquet"
                path.parent.mkdir(parents=True, exist_ok=True)
                table.to_parquet(path)
                card += [f"  - split: {split}", f"    path: {subdir}/{split}-*"]
            if len(configs) == 1:
                card.append("  default: true")
        card += ["---", f"# {repo} (a test copy in the hub's layout)", ""]
        (folder / "README.md").write_text("\n".join(card))
        folders[repo] = folder
    return folders


def rome_known_1000(facts: list[dict]) -> list[dict]:
    """Records in known_1000.json's exact layout (ROME's dsets/knowns.py): known_id, subject,
    attribute, template, prediction (GPT-2 XL's continuation), prompt, relation_id."""
    return [{"known_id": i, "subject": f["subject"], "attribute": f["attribute"],
             "template": f["template"], "prediction": f" {f['attribute']} and more.",
             "prompt": f["prompt"], "relation_id": f["relation_id"]} for i, f in enumerate(facts)]


def write_file(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ---------------------------------------------------------------- tiny models in the hub's layout

CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
          "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def train_tokenizer(texts: list[str], vocab_size: int = 1024):
    """A byte-level BPE tokenizer trained on ``texts``, digits split one by one (as LLaMA's), with
    SmolLM2's special tokens: the kind of tokenizer a hub model ships, in seconds."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False)])
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|im_start|>",
                                   eos_token="<|im_end|>", pad_token="<|im_end|>",
                                   unk_token="<|endoftext|>")


def taught_model(tokenizer, facts: list[dict], seed: int, steps: int = 80):
    """A 2-block LLaMA (d = 64) trained until it completes most facts' prompts with their
    attributes (so causal tracing has facts it knows), nothing else. One thread: on a model this
    small, a second one only waits."""
    import torch

    from nbtoolkit import tiny_model

    lm = tiny_model("llama", n_layers=2, d_model=64, seed=seed, context=1024, tokenizer=tokenizer)
    texts = [f"{f['prompt']} {f['attribute']}{tokenizer.eos_token}" for f in facts]
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.Adam(lm.model.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            lm.model.train()
            for _ in range(steps):
                optimizer.zero_grad()
                lm.model(**batch, labels=labels).loss.backward()
                optimizer.step()
    finally:
        torch.set_num_threads(threads)
        lm.model.eval()
    return lm


def write_model_repos(root: Path, corpus: list[str], facts: list[dict]) -> dict[str, Path]:
    """``nbtoolkit-test/tiny-llama`` (a base model) and ``nbtoolkit-test/tiny-llama-chat`` (the
    same tokenizer with a ChatML chat template, another seed): a base/instruct pair of one
    family, saved as ``save_pretrained`` writes a hub repository."""
    texts = [f"{f['prompt']} {f['attribute']}" for f in facts] * 20  # so " Italy" is one token, as in
    tokenizer = train_tokenizer(corpus + texts)                       # real vocabularies
    folders = {}
    for repo, seed, chat in [("nbtoolkit-test/tiny-llama", 0, False),
                             ("nbtoolkit-test/tiny-llama-chat", 1, True)]:
        lm = taught_model(tokenizer, facts, seed)
        folder = root / repo.replace("/", "--")
        lm.model.save_pretrained(folder)
        if chat:
            tokenizer.chat_template = CHATML
        tokenizer.save_pretrained(folder)
        folders[repo] = folder
    return folders
