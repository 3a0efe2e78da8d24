"""The runner's built-in task suite: items made from held-out text, scored by ranked classification.

Truths used: a model with uniform predictions has exactly 8 bits per byte on every candidate; an "oracle"
that has memorised the held-out text (a 32-byte-context lookup table) picks the true continuation almost
always, since distractors are drawn from elsewhere in the text.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from runners.data import prepare_corpus
from runners.tasks import DEFAULT_TASKS, ITEMS, build_tasks, score_tasks
from runners.train import RunSpec

ORACLE_CONTEXT = 32  # as long as a candidate: a distractor byte is never predicted from its own text alone


@pytest.fixture(scope="module")
def heldout(tmp_path_factory) -> np.ndarray:
    cache = tmp_path_factory.mktemp("corpus-cache")
    return np.asarray(prepare_corpus("pydoc", cache).split("val"))


@pytest.fixture(scope="module")
def tasks(heldout):
    return build_tasks(DEFAULT_TASKS, heldout, 128)


def sequences(task, row: int) -> tuple[bytes, bytes]:
    """(context, candidate) bytes of one candidate row."""
    full = bytes(task.inputs[row].tolist()) + bytes([int(task.targets[row, -1])])
    scored = task.scored[row].numpy()
    first, last = int(np.flatnonzero(scored)[0]) + 1, int(np.flatnonzero(scored)[-1]) + 2
    return full[:first], full[first:last]


def test_items_come_from_the_heldout_text_with_the_true_candidate_in_place(tasks, heldout):
    text = heldout.tobytes()
    for task in tasks:
        assert task.n_items == ITEMS[task.name]
        assert task.inputs.shape == task.targets.shape == task.scored.shape
        assert task.inputs.shape[0] == task.n_items * task.n_choices
        assert task.inputs.shape[1] <= 127  # fits a 128-byte window
        assert torch.equal(task.inputs[:, 1:], task.targets[:, :-1])
        for item in range(task.n_items):
            rows = [sequences(task, item * task.n_choices + c) for c in range(task.n_choices)]
            contexts = {context for context, _ in rows}
            assert len(contexts) == 1  # every candidate follows the same context
            context, true = rows[int(task.answer[item])]
            assert text.find(context + true) >= 0  # the true continuation really follows the context
            candidates = [cand for _, cand in rows]
            assert len(set(candidates)) == task.n_choices  # distinct candidates
            assert len({len(c) for c in candidates}) == 1  # equal lengths
            for cand in candidates:
                assert text.find(cand) >= 0  # distractors are held-out text too
        # The true candidate's slot is spread over the choices (no position bias to exploit).
        counts = np.bincount(task.answer.numpy(), minlength=task.n_choices)
        assert counts.min() >= task.n_items / task.n_choices / 2


def test_task_shapes_follow_the_brief(tasks):
    by_name = {task.name: task for task in tasks}
    assert {name: task.n_choices for name, task in by_name.items()} == {
        "next-line": 4, "near-line": 2, "word-cloze": 4, "mid-word": 4}
    for name in ("next-line", "near-line"):
        context, cand = sequences(by_name[name], 0)
        assert (len(context), len(cand)) == (96, 32)
        assert context.endswith(b"\n")  # the candidates start a line
    context, word = sequences(by_name["word-cloze"], 0)
    assert len(context) == 64 and 4 <= len(word) <= 10 and word.isalpha()
    task = by_name["mid-word"]
    for row in range(0, len(task.inputs), 37):
        context, stretch = sequences(task, row)
        assert (len(context), len(stretch)) == (64, 16)
        assert context[-1:].isalpha() and stretch[:1].isalpha()  # the cut and every candidate are inside a word


def test_tasks_are_the_same_for_every_run_and_shorter_windows_shorten_the_context(heldout, tasks):
    again = build_tasks(DEFAULT_TASKS, heldout, 128)
    for a, b in zip(tasks, again, strict=True):
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.answer, b.answer)
    short = build_tasks(("next-line",), heldout, 64)[0]
    assert short.inputs.shape[1] <= 64
    assert sequences(short, 0)[1].__len__() == 32


class UniformModel(torch.nn.Module):
    """Predicts every byte with probability 1/256."""

    def features(self, idx: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*idx.shape, 256)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return features


class OracleModel(torch.nn.Module):
    """Has memorised the held-out text: after a 32-byte context seen there, predicts the byte that followed."""

    def __init__(self, text: bytes) -> None:
        super().__init__()
        self.next = {text[i - ORACLE_CONTEXT:i]: text[i] for i in range(ORACLE_CONTEXT, len(text))}

    def features(self, idx: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*idx.shape, 256)
        for b, row in enumerate(idx.tolist()):
            raw = bytes(row)
            for t in range(ORACLE_CONTEXT - 1, len(raw)):
                nxt = self.next.get(raw[t - ORACLE_CONTEXT + 1:t + 1])
                if nxt is not None:
                    logits[b, t, nxt] = 20.0
        return logits

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return features


def test_uniform_model_scores_exactly_eight_bits_per_byte(tasks):
    columns = score_tasks(UniformModel(), tasks, "cpu")
    for task in tasks:
        assert columns[f"task/{task.name}/bpb"] == pytest.approx(8.0, rel=1e-6)  # float32 log-softmax
        assert columns[f"task/{task.name}/n_choices"] == task.n_choices
        # All candidates tie; argmin takes the first, so accuracy is the share of items whose answer is slot 0.
        assert columns[f"task/{task.name}/acc"] == pytest.approx(float((task.answer == 0).double().mean()))


def test_oracle_that_memorised_the_heldout_text_answers_almost_every_item(tasks, heldout):
    columns = score_tasks(OracleModel(heldout.tobytes()), tasks, "cpu")
    for task in tasks:
        assert columns[f"task/{task.name}/acc"] >= 0.95, task.name
        # Nearly every true byte gets logit 20 against 255 zeros: -log2 softmax ≈ 255·e^-20/ln 2 ≈ 0.
        assert columns[f"task/{task.name}/bpb"] < 0.5, task.name
    # A model that has seen none of it: the uniform one, at chance on average over the three tasks.
    uniform = score_tasks(UniformModel(), tasks, "cpu")
    assert np.mean([uniform[f"task/{t.name}/acc"] for t in tasks]) < 0.75


def test_task_options_of_a_run_spec():
    assert RunSpec("n10k", 10_000, 1e-2).tasks == ()
    assert RunSpec("n10k", 10_000, 1e-2, tasks=["default"]).tasks == DEFAULT_TASKS
    assert RunSpec("n10k", 10_000, 1e-2, tasks=["near-line"]).tasks == ("near-line",)
    # Tasks do not change the run's identity (a run is the same training whatever it is scored on).
    assert RunSpec("n10k", 10_000, 1e-2, tasks="default").run_id == RunSpec("n10k", 10_000, 1e-2).run_id
    with pytest.raises(ValueError, match="unknown task"):
        RunSpec("n10k", 10_000, 1e-2, tasks=["hellaswag"])
    with pytest.raises(ValueError, match="byte-level"):
        RunSpec("n10k", 10_000, 1e-2, corpus="tokens:/x.bin", vocab_size=50_304, tasks=["next-line"])
    assert math.isclose(1 / 4, 0.25)  # chance of a 4-choice task, as data/README.md states
