"""A small built-in suite of multiple-choice tasks, made from held-out text and scored at every evaluation.

The tasks follow the "model ladder" recipe (Bhagia et al. 2024, arXiv 2412.04403): each item is a context and
``n_choices`` candidate continuations, one of them true. A model answers by **ranked classification**: the
candidate with the lowest mean negative log-likelihood per byte, given the context, is its choice. Two
metrics per task and evaluation:

``task/<name>/acc``
    the share of items answered correctly (chance = ``1 / n_choices``, logged as ``task/<name>/n_choices``);
``task/<name>/bpb``
    the task loss: the mean over items of the bits per byte of the *true* continuation given its context.

Every item is drawn from the corpus's **validation split** (never trained on) by a generator with a fixed
seed, so every run on the same corpus and ``seq_len`` is scored on the same items. The tasks (for
``seq_len`` ≥ 127; a shorter window shortens the context, never the candidates):

``next-line`` (4 choices)
    96 bytes of context ending at a line break; the true continuation is the next 32 bytes (the start of the
    next line); the 3 distractors are 32 bytes that start a line at random positions of the held-out text
    at least 2,048 bytes away.
``near-line`` (2 choices, harder)
    the same, but the one distractor starts a line 256–2,048 bytes further on: same scene, same speakers,
    same style, so only local coherence tells them apart.
``word-cloze`` (4 choices)
    64 bytes of context ending just before a word of 4–10 letters; the candidates are that word and 3 other
    words of the same length drawn from the held-out text (equal lengths make the per-byte comparison fair).
``mid-word`` (4 choices, the easy one)
    64 bytes of context that stop inside a word of 4 or more letters; the candidates are the next 16 bytes
    and 3 stretches of 16 bytes that also start inside a word elsewhere in the held-out text. Spelling alone
    goes a long way, so even small models rise well above chance: the suite spans easy to hard.

Byte-level corpora only: the bits are per byte because one token is one byte.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

TASK_SEED = 20261203
DEFAULT_TASKS = ("next-line", "near-line", "word-cloze", "mid-word")
ITEMS = {"next-line": 100, "near-line": 100, "word-cloze": 100, "mid-word": 100}
SEED_INDEX = {"next-line": 0, "near-line": 1, "word-cloze": 2, "mid-word": 3}  # each task's own generator
CONTINUATION_BYTES = 32
LINE_CONTEXT_BYTES = 96
CLOZE_CONTEXT_BYTES = 64
MID_WORD_BYTES = 16
WORD_LENGTHS = (4, 10)
FAR_BYTES = 2048          # next-line distractors start at least this far from the item
NEAR_BYTES = (256, 2048)  # near-line distractors start this far after the true continuation
EVAL_CHUNK = 256          # sequences per forward pass


@dataclass(frozen=True)
class Task:
    """One task's items as equal-length candidate sequences, ``n_choices`` consecutive rows per item.

    ``inputs`` and ``targets`` are (items·choices, length) byte ids (targets = inputs shifted by one);
    ``scored`` marks the target positions that belong to the candidate continuation; ``answer`` is the true
    candidate's index within each item.
    """

    name: str
    n_choices: int
    inputs: torch.Tensor
    targets: torch.Tensor
    scored: torch.Tensor
    answer: torch.Tensor

    @property
    def n_items(self) -> int:
        return len(self.answer)


def _assemble(name: str, contexts: list[np.ndarray], candidates: list[list[np.ndarray]],
              rng: np.random.Generator) -> Task:
    """Stack (context + candidate) sequences, the true candidate (listed first) moved to a random slot."""
    n_choices = len(candidates[0])
    length = max(len(c) + max(len(x) for x in cands) for c, cands in zip(contexts, candidates, strict=True))
    sequences = np.zeros((len(contexts) * n_choices, length), dtype=np.int64)
    scored = np.zeros((len(contexts) * n_choices, length - 1), dtype=bool)
    answer = rng.integers(0, n_choices, size=len(contexts))
    for i, (context, cands) in enumerate(zip(contexts, candidates, strict=True)):
        order = list(range(1, n_choices))
        order.insert(int(answer[i]), 0)
        for slot, which in enumerate(order):
            row, cand = i * n_choices + slot, cands[which]
            sequences[row, :len(context)] = context
            sequences[row, len(context):len(context) + len(cand)] = cand
            scored[row, len(context) - 1:len(context) + len(cand) - 1] = True  # targets of the candidate
    seq = torch.from_numpy(sequences)
    return Task(name, n_choices, seq[:, :-1].contiguous(), seq[:, 1:].contiguous(), torch.from_numpy(scored),
                torch.from_numpy(answer))


def _line_task(name: str, text: np.ndarray, seq_len: int, rng: np.random.Generator) -> Task:
    context_len = min(LINE_CONTEXT_BYTES, seq_len + 1 - CONTINUATION_BYTES)
    starts = np.flatnonzero(text[:-1] == ord("\n")) + 1  # every line start
    far_end = NEAR_BYTES[1] + CONTINUATION_BYTES
    usable = starts[(starts >= context_len) & (starts + far_end < len(text))]
    if name == "near-line":  # items need a line start 256–2,048 bytes after them
        lo, hi = np.searchsorted(starts, usable + NEAR_BYTES[0]), np.searchsorted(starts, usable + NEAR_BYTES[1])
        usable = usable[hi > lo]
    contexts, candidates = [], []
    for p in rng.permutation(usable):
        if len(contexts) == ITEMS[name]:
            break
        true = text[p:p + CONTINUATION_BYTES]
        if name == "next-line":
            pool, wanted = usable[np.abs(usable - p) >= FAR_BYTES], 3
        else:
            pool, wanted = starts[(starts >= p + NEAR_BYTES[0]) & (starts < p + NEAR_BYTES[1])], 1
        chosen = _distinct([true], (text[q:q + CONTINUATION_BYTES] for q in rng.permutation(pool)), wanted)
        if chosen is not None:  # else no distinct distractor exists (e.g. repeated table rows): skip the item
            contexts.append(text[p - context_len:p])
            candidates.append(chosen)
    if len(contexts) < ITEMS[name]:
        raise ValueError(f"task {name!r}: the held-out text gives only {len(contexts)} items")
    return _assemble(name, contexts, candidates, rng)


def _distinct(chosen: list[np.ndarray], pool, wanted: int) -> list[np.ndarray] | None:
    """``chosen`` plus the first ``wanted`` candidates of ``pool`` that differ from all before; None if too few."""
    for cand in pool:
        if len(chosen) == wanted + 1:
            break
        if not any(np.array_equal(cand, c) for c in chosen):
            chosen.append(cand)
    return chosen if len(chosen) == wanted + 1 else None


def _letters(text: np.ndarray) -> np.ndarray:
    return ((text >= ord("a")) & (text <= ord("z"))) | ((text >= ord("A")) & (text <= ord("Z")))


def _words(text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, length) of every maximal run of ASCII letters."""
    letters = _letters(text)
    edges = np.diff(np.concatenate([[0], letters.astype(np.int8), [0]]))
    begins, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return begins, ends - begins


def _cloze_task(name: str, text: np.ndarray, seq_len: int, rng: np.random.Generator) -> Task:
    context_len = min(CLOZE_CONTEXT_BYTES, seq_len + 1 - WORD_LENGTHS[1])
    begins, lengths = _words(text)
    fits = (lengths >= WORD_LENGTHS[0]) & (lengths <= WORD_LENGTHS[1]) & (begins >= context_len)
    contexts, candidates = [], []
    for i in rng.choice(np.flatnonzero(fits), size=ITEMS[name], replace=False):
        p, k = begins[i], lengths[i]
        pool = begins[lengths == k]
        chosen = _distinct([text[p:p + k]], (text[q:q + k] for q in rng.choice(pool, size=len(pool))), 3)
        if chosen is None:
            raise ValueError(f"task {name!r}: the held-out text has too few distinct {k}-letter words")
        contexts.append(text[p - context_len:p])
        candidates.append(chosen)
    return _assemble(name, contexts, candidates, rng)


def _mid_word_task(name: str, text: np.ndarray, seq_len: int, rng: np.random.Generator) -> Task:
    context_len = min(CLOZE_CONTEXT_BYTES, seq_len + 1 - MID_WORD_BYTES)
    begins, lengths = _words(text)
    fits = (lengths >= 4) & (begins >= context_len) & (begins + lengths + MID_WORD_BYTES < len(text))
    letters = _letters(text)
    inside = np.flatnonzero(letters[1:] & letters[:-1]) + 1  # a letter right after a letter: a cut inside a word
    inside = inside[(inside >= context_len) & (inside + MID_WORD_BYTES < len(text))]
    contexts, candidates = [], []
    for i in rng.choice(np.flatnonzero(fits), size=ITEMS[name], replace=False):
        cut = begins[i] + rng.integers(1, lengths[i])  # after 1 … k-1 letters of the word
        chosen = _distinct([text[cut:cut + MID_WORD_BYTES]],
                           (text[q:q + MID_WORD_BYTES] for q in rng.choice(inside, size=64)), 3)
        if chosen is None:
            raise ValueError(f"task {name!r}: the held-out text has too few distinct word stretches")
        contexts.append(text[cut - context_len:cut])
        candidates.append(chosen)
    return _assemble(name, contexts, candidates, rng)


BUILDERS = {"next-line": _line_task, "near-line": _line_task, "word-cloze": _cloze_task,
            "mid-word": _mid_word_task}


def check_task_names(names: tuple[str, ...] | list[str]) -> None:
    unknown = sorted(set(names) - set(BUILDERS))
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; the built-in tasks are {sorted(BUILDERS)} (or none: [])")


def build_tasks(names: tuple[str, ...] | list[str], heldout: np.ndarray, seq_len: int) -> list[Task]:
    """The named tasks built from ``heldout`` bytes (the validation split), the same for every run."""
    check_task_names(names)
    text = np.asarray(heldout, dtype=np.int64)
    return [BUILDERS[name](name, text, seq_len, np.random.default_rng([TASK_SEED, SEED_INDEX[name]]))
            for name in names]


def candidate_nll_per_byte(model: torch.nn.Module, task: Task, device: str, autocast: bool = False) -> torch.Tensor:
    """(items, choices) mean negative log-likelihood per byte (nats) of each candidate given its context."""
    per_row = []
    for i in range(0, len(task.inputs), EVAL_CHUNK):
        x = task.inputs[i:i + EVAL_CHUNK].to(device)
        y = task.targets[i:i + EVAL_CHUNK].to(device)
        mask = task.scored[i:i + EVAL_CHUNK].to(device)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=autocast):
            logits = model.head(model.features(x)[mask])  # the head only where a candidate byte is predicted
        nll = F.cross_entropy(logits.float(), y[mask], reduction="none")
        row = torch.arange(len(x), device=device)[:, None].expand_as(mask)[mask]
        sums = torch.zeros(len(x), device=device).index_add_(0, row, nll)
        per_row.append((sums / mask.sum(1)).cpu())
    return torch.cat(per_row).view(task.n_items, task.n_choices)


@torch.no_grad()
def score_tasks(model: torch.nn.Module, tasks: list[Task], device: str, autocast: bool = False) -> dict:
    """The wide-form columns ``task/<name>/{acc,bpb,n_choices}`` for one evaluation."""
    was_training = model.training
    model.eval()
    columns: dict[str, float | int] = {}
    for task in tasks:
        nll = candidate_nll_per_byte(model, task, device, autocast)
        chosen = nll.argmin(dim=1)
        true_nll = nll.gather(1, task.answer[:, None]).squeeze(1)
        columns[f"task/{task.name}/acc"] = float((chosen == task.answer).double().mean())
        columns[f"task/{task.name}/bpb"] = float(true_nll.double().mean()) / math.log(2)
        columns[f"task/{task.name}/n_choices"] = task.n_choices
    model.train(was_training)
    return columns
