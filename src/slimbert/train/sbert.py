"""Stage ``sbert-train``: small Sentence-BERT students, trained NLI → STS → target (paper §4.2).

A student is a sentence-transformers model: transformer → mean pooling → (optional) L2
normalisation, saved in sentence-transformers' own folder format (safetensors + JSON). It is
made from all-MiniLM-L6-v2 or any transformer folder, optionally keeping a subset of layers
(DistilBERT-style, as the classifier students are).

Three objectives, each one stage run, each starting from the previous stage's folder:

* ``nli``: SNLI with the original SBERT objective (a softmax classifier over (u, v, |u−v|),
  thrown away afterwards) or MultipleNegativesRanking on entailment pairs; batch 16.
* ``sts``: STS benchmark train, cosine-similarity regression on scores scaled to 0–1; batch 128.
* ``target``: the user's pairs (duplicate 1 / related 0.5 / unrelated 0) or AugSBERT's silver
  pairs, cosine-similarity regression; batch 64, up to 8 epochs.

All three: batches of pairs of similar token length (the paper's bucketing: little compute
goes to padding; the batch order is shuffled), AdamW, linear warm-up over 10% of the steps then
linear decay, evaluation on a validation pair set (Spearman of cosine similarity) a few times
per epoch, early stopping with patience, and the best model kept (written atomically). The
losses are sentence-transformers' own (``SoftmaxLoss``, ``MultipleNegativesRankingLoss``,
``CosineSimilarityLoss``); the loop is ours because the Trainer's checkpoints pickle their
state (``training_args.bin``, ``optimizer.pt``) and it needs ``datasets`` and ``accelerate``
for a job this small.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from slimbert.config import Options, check
from slimbert.data.pairs import NLI_LABELS, PairSet, distinct_sentences, load_pairs
from slimbert.errors import DataError, ModelError
from slimbert.io import atomic_dir, write_json
from slimbert.train.sampler import BalancedBucketSampler

log = logging.getLogger(__name__)

REPORT_FILE = "sbert_report.json"
Objective = Literal["distill", "nli", "sts", "target"]

# Per-objective defaults (paper §4.2 and the SBERT paper): data, validation, loss, batch size,
# epochs, evaluations per epoch and learning rate.
DEFAULTS: dict[str, dict[str, Any]] = {
    # Embedding distillation (slimbert.train.sbert_distill): MSE to the teacher's embeddings on
    # unlabelled sentences; lr 1e-4 as in sentence-transformers' distillation examples.
    "distill": {
        "train": "sentences",
        "validation": "stsb:validation",
        "loss": "mse",
        "batch_size": 64,
        "epochs": 1,
        "evals_per_epoch": 4,
        "lr": 1e-4,
    },
    "nli": {
        "train": "snli:train",
        "validation": "stsb:validation",
        "loss": "softmax",
        "batch_size": 16,
        "epochs": 1,
        "evals_per_epoch": 4,
        "lr": 2e-5,
    },
    "sts": {
        "train": "stsb:train",
        "validation": "stsb:validation",
        "loss": "cosine",
        "batch_size": 128,
        "epochs": 4,
        "evals_per_epoch": 1,
        "lr": 2e-5,
    },
    "target": {
        "train": "mrpc-target:train",
        "validation": "mrpc-target:validation",
        "loss": "cosine",
        "batch_size": 64,
        "epochs": 8,
        "evals_per_epoch": 1,
        "lr": 2e-5,
    },
}


@dataclasses.dataclass(frozen=True)
class SbertTrainOptions(Options):
    stage: ClassVar[str] = "sbert-train"

    objective: Objective = "sts"
    model: str = "all-MiniLM-L6-v2"
    out: Path = Path("runs/sbert")
    layers: tuple[int, ...] | None = None
    train: str | None = None
    # More pair sets trained on together with ``train``, e.g. AugSBERT's silver pairs beside the
    # gold ones (Thakur et al. train on both at once; the paper's recipe is silver, then gold).
    extra_train: tuple[str, ...] = ()
    validation: str | None = None
    loss: Literal["auto", "softmax", "mnrl", "cosine", "mse"] = "auto"
    batch_size: int | None = None
    lr: float | None = None
    # The model whose embeddings objective ``distill`` reproduces.
    teacher: str = "all-MiniLM-L6-v2"
    epochs: int | None = None
    patience: int = 2
    evals_per_epoch: int | None = None
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_length: int = 128
    normalize: bool = True
    bucket: bool = True
    seed: int = 13
    limit: int | None = None
    validation_limit: int | None = None

    def validate(self) -> None:
        check(self.lr is None or self.lr > 0, f"lr must be positive, got {self.lr}")
        check(self.patience >= 1, f"patience must be at least 1, got {self.patience}")
        check(0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1)")
        check(self.weight_decay >= 0, "weight_decay must be >= 0")
        check(self.max_length >= 8, f"max_length must be at least 8, got {self.max_length}")
        for name in ("batch_size", "epochs", "evals_per_epoch", "limit", "validation_limit"):
            value = getattr(self, name)
            check(value is None or value >= 1, f"{name} must be at least 1, got {value}")
        loss = self.resolved("loss")
        if self.objective == "distill":
            check(
                loss == "mse",
                "objective 'distill' learns the teacher's embeddings: loss must be 'mse'",
            )
        elif self.objective != "nli":
            check(
                loss == "cosine",
                f"objective {self.objective!r} trains on scored pairs: loss must be 'cosine'",
                hint="softmax and mnrl are NLI objectives",
            )
        check(
            loss != "mnrl" or self.resolved("batch_size") >= 2,
            "mnrl needs batches of at least 2 pairs (the other pairs are its negatives)",
        )
        check(str(self.out) != str(self.model), "out must not be the model folder")

    def resolved(self, name: str) -> Any:
        """The value used for ``name``: the option when given, else the objective's default."""
        value = getattr(self, name)
        if value is None or (name == "loss" and value == "auto"):
            return DEFAULTS[self.objective][name]
        return value


# --- models -------------------------------------------------------------------------------


def build_embedder(
    model: str | Path,
    *,
    layers: Sequence[int] | None = None,
    max_length: int = 128,
    normalize: bool = True,
    seed: int = 13,
) -> Any:
    """A sentence-transformers model: a saved SBERT folder, or transformer + mean pooling.

    ``layers`` keeps a subset of the transformer's layers (a student made from its teacher).
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Normalize, Pooling, Transformer

    from slimbert.models.load import keep_layers, resolve_model

    torch.manual_seed(seed)
    transformer: Any
    pooling: Any
    path = resolve_model(str(model))
    if (Path(path) / "modules.json").is_file():
        st = SentenceTransformer(path, device="cpu")  # never trust_remote_code
        kinds = [type(module).__name__ for module in st]
        if kinds[:2] != ["Transformer", "Pooling"]:
            raise ModelError(f"{path}: expected Transformer → Pooling, found {' → '.join(kinds)}")
        transformer, pooling = st[0], st[1]
    else:
        transformer = Transformer(path, max_seq_length=max_length)
        pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    transformer.max_seq_length = max_length
    if layers:
        keep_layers(transformer.auto_model, layers)
    modules = [transformer, pooling] + ([Normalize()] if normalize else [])
    return SentenceTransformer(modules=modules, device="cpu")


def num_layers(st: Any) -> int:
    return int(st[0].auto_model.config.num_hidden_layers)


def encode(st: Any, sentences: Sequence[str], batch_size: int = 128) -> np.ndarray:
    vectors = st.encode(
        list(sentences),
        batch_size=batch_size,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=False,
    )
    return np.asarray(vectors, dtype=np.float32)


def spearman(st: Any, pairs: PairSet, batch_size: int = 128) -> float:
    """Spearman correlation of cosine similarity with the gold scores (not ×100)."""
    from slimbert.train.eval_embedders import spearman_x100

    def embed(texts: list[str]) -> np.ndarray:
        return encode(st, texts, batch_size)

    return spearman_x100(embed, pairs, batch_size=batch_size) / 100


# --- training -----------------------------------------------------------------------------


@dataclasses.dataclass
class _Batches:
    first: list[str]
    second: list[str]
    targets: list[float] | list[int] | None
    # Objective distill: one sentence per example (``second`` empty), the teacher's embedding.
    embeddings: np.ndarray | None = None


def _agreement_sentences(validation: PairSet) -> tuple[str, list[str]]:
    """Held-out sentences for the student-teacher agreement: STSb test, else validation's."""
    from slimbert.train.sbert_distill import AGREEMENT_SET

    try:
        return AGREEMENT_SET, distinct_sentences(AGREEMENT_SET)
    except DataError:
        return "validation", list(dict.fromkeys([*validation.first, *validation.second]))


@dataclasses.dataclass
class _Distilled:
    """What objective distill keeps beside the batches: the report's facts, and the held-out
    sentences with the teacher's embeddings of them (computed once, for both agreements)."""

    info: dict[str, Any]
    held_out: list[str]
    teacher_held_out: np.ndarray
    components: np.ndarray


def _distill_data(
    options: SbertTrainOptions, st: Any, validation: PairSet
) -> tuple[_Batches, _Distilled]:
    """The sentences and the teacher's embeddings of them; what the report says of them."""
    from slimbert.train.sbert_distill import agreement, load_sentences, teacher_targets

    specs = [options.resolved("train"), *options.extra_train]
    sentences = load_sentences(specs, options.limit, options.seed)
    teacher = build_embedder(options.teacher, max_length=options.max_length)
    started = time.perf_counter()
    targets, components, info = teacher_targets(
        teacher,
        options.teacher,
        lambda texts: encode(teacher, texts),
        sentences,
        st.get_embedding_dimension(),
    )
    info["teacher_seconds"] = time.perf_counter() - started
    info["sentences"] = len(sentences)
    info["agreement_set"], held_out = _agreement_sentences(validation)
    teacher_held_out = encode(teacher, held_out)
    info["agreement_start"] = agreement(encode(st, held_out), teacher_held_out, components)
    distilled = _Distilled(info, held_out, teacher_held_out, components)
    return _Batches(sentences, [], None, targets), distilled


def _training_pairs(pairs: PairSet, loss: str) -> _Batches:
    if loss == "softmax":
        labels = pairs.require_labels()
        index = {name: i for i, name in enumerate(NLI_LABELS)}
        return _Batches(pairs.first, pairs.second, [index[x] for x in labels])
    if loss == "mnrl":
        labels = pairs.require_labels()
        keep = [i for i, x in enumerate(labels) if x == "entailment"]
        return _Batches([pairs.first[i] for i in keep], [pairs.second[i] for i in keep], None)
    return _Batches(pairs.first, pairs.second, pairs.require_scores())


def _pair_lengths(st: Any, data: _Batches, max_length: int) -> list[int]:
    """Token length of each pair (its longer side): what a batch is padded to."""
    tokenizer = st.tokenizer

    def lengths(texts: list[str]) -> list[int]:
        ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
        return [len(x) for x in ids]

    if not data.second:
        return lengths(data.first)
    return [max(a, b) for a, b in zip(lengths(data.first), lengths(data.second), strict=True)]


def _loss_module(st: Any, loss: str) -> Any:
    from sentence_transformers.losses import (
        CosineSimilarityLoss,
        MultipleNegativesRankingLoss,
        SoftmaxLoss,
    )

    if loss == "softmax":
        return SoftmaxLoss(st, st.get_embedding_dimension(), num_labels=len(NLI_LABELS))
    if loss == "mnrl":
        return MultipleNegativesRankingLoss(st)
    if loss == "mse":
        from sentence_transformers.losses import MSELoss

        return MSELoss(st)
    return CosineSimilarityLoss(st)


class _LogReporter:
    def epoch_started(self, epoch: int, steps: int) -> None:
        log.info("epoch %d: %d steps", epoch, steps)

    def step_done(self, loss: float) -> None:
        pass

    def epoch_done(self, record: dict[str, Any]) -> None:
        log.info("step %(step)d: validation Spearman %(val_spearman).4f", record)


def train_sbert(options: SbertTrainOptions, reporter: Any = None) -> dict[str, Any]:
    """Run one SBERT training stage; returns the report it also writes beside the model."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    from slimbert.train.loop import make_optimizer, optimizer_step, train_with_evals

    reporter = reporter or _LogReporter()
    loss_name = options.resolved("loss")
    batch_size = int(options.resolved("batch_size"))
    epochs = int(options.resolved("epochs"))
    evals_per_epoch = int(options.resolved("evals_per_epoch"))
    validation = load_pairs(options.resolved("validation"), limit=options.validation_limit)
    validation.require_scores()
    st = build_embedder(
        options.model,
        layers=options.layers,
        max_length=options.max_length,
        normalize=options.normalize,
        seed=options.seed,
    )
    distilled: _Distilled | None = None
    if options.objective == "distill":
        data, distilled = _distill_data(options, st, validation)
    else:
        train_pairs = load_pairs(options.resolved("train"), limit=options.limit)
        for spec in options.extra_train:
            train_pairs = train_pairs.concat(load_pairs(spec, limit=options.limit))
        data = _training_pairs(train_pairs, loss_name)
    if len(data.first) < batch_size and loss_name == "mnrl":
        raise ModelError("too few entailment pairs for one MultipleNegativesRanking batch")
    loss = _loss_module(st, loss_name)
    sampler = BalancedBucketSampler(
        _pair_lengths(st, data, options.max_length),
        None,
        batch_size,
        balance=False,
        bucket=options.bucket,
        shuffle=True,
        seed=options.seed,
        jitter=0.1,
    )
    steps_per_epoch = max(1, len(sampler))
    total_steps = steps_per_epoch * epochs
    optimizer = make_optimizer(loss, options.resolved("lr"), options.weight_decay)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, math.ceil(options.warmup_ratio * total_steps), total_steps
    )
    # sentence-transformers 6 renamed tokenize to preprocess; 3.x to 5.x only have tokenize.
    tokenize = getattr(st, "preprocess", None) or st.tokenize

    def batches(epoch: int) -> list[list[int]]:
        sampler.set_epoch(epoch)
        return list(sampler)

    def step(idx: list[int]) -> float | None:
        if loss_name == "mnrl" and len(idx) < 2:
            return None
        loss.train()
        features = [tokenize([data.first[i] for i in idx])]
        if data.second:
            features.append(tokenize([data.second[i] for i in idx]))
        if data.embeddings is not None:
            labels = torch.from_numpy(data.embeddings[idx])
        elif data.targets is None:
            labels = torch.zeros(len(idx))  # MNRL builds its own targets
        elif loss_name == "softmax":
            labels = torch.tensor([data.targets[i] for i in idx], dtype=torch.long)
        else:
            labels = torch.tensor([data.targets[i] for i in idx], dtype=torch.float32)
        return optimizer_step(loss(features, labels), loss.parameters(), optimizer, scheduler)

    def evaluate() -> float:
        st.eval()
        return spearman(st, validation)

    started = time.perf_counter()
    baseline = evaluate()
    # The starting model counts: a stage that only makes things worse keeps its input.
    _save(st, options.out)
    result = train_with_evals(
        batches,
        step,
        evaluate,
        lambda: _save(st, options.out),
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        evals_per_epoch=evals_per_epoch,
        patience=options.patience,
        best=baseline,
        history=[{"step": 0, "epoch": 0, "val_spearman": baseline}],
        reporter=reporter,
    )
    report = {
        "stage": options.stage,
        "options": options.to_dict(),
        "objective": options.objective,
        "loss": loss_name,
        "batch_size": batch_size,
        "epochs": epochs,
        "train": options.resolved("train"),
        "extra_train": list(options.extra_train),
        "validation": options.resolved("validation"),
        "train_pairs": len(data.first),
        "layers": num_layers(st),
        "parameters": int(sum(p.numel() for p in st.parameters())),
        "val_spearman_start": baseline,
        "best_val_spearman": result.best,
        "best_step": result.best_step,
        "steps": result.steps,
        "stopped_early": result.stopped_early,
        "seconds": time.perf_counter() - started,
        "history": result.history,
    }
    if distilled is not None:
        from slimbert.train.sbert_distill import agreement

        best = build_embedder(options.out, max_length=options.max_length)
        distilled.info["agreement"] = agreement(
            encode(best, distilled.held_out), distilled.teacher_held_out, distilled.components
        )
        report["distill"] = distilled.info
    write_json(Path(options.out) / REPORT_FILE, report)
    return report


def _save(st: Any, out: Path) -> None:
    with atomic_dir(out, kind="sentence-transformer") as tmp:
        st.save(str(tmp), safe_serialization=True)
