"""A verifiable task with an exact-match reward: multi-digit addition written as bytes.

A problem is a pair of ``digits``-digit numbers ``(a, b)``; the prompt and the answer are fixed-width text::

    prompt   "123+456="          operands zero-padded to ``digits`` digits, 2·digits + 2 bytes
    answer   "0579\\n"            the sum zero-padded to digits + 1 digits, then a newline (the terminator)
    reversed "9750\\n"            with ``reverse=True`` the sum is written least-significant digit first

Writing the sum in reverse lets a left-to-right model compute each digit from the carries it has already
written (Lee et al. 2023, "Teaching Arithmetic to Small Transformers"). Because every prompt and every answer
has the same length, batches need no padding.

The reward of a sampled answer is 1 when it equals the reference answer exactly (all digits and the
terminator in place; sampling stops at the first terminator) and 0 otherwise. Its expectation under the
policy, pass@1 at temperature 1, has a closed form: the product over the reference answer's tokens of their
conditional probabilities. :func:`answer_logprob` computes it without sampling noise.

The held-out problems are a fixed set drawn once from their own seed; training problems are drawn from a
generator seeded by (seed, step, stream) and never include a held-out problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F

TERMINATOR = ord("\n")
HELDOUT_SEED = 20250930  # fixed: every run, size and seed is evaluated on the same problems


@dataclass(frozen=True)
class AdditionTask:
    """Addition of two ``digits``-digit numbers, answered as fixed-width text with a terminator.

    Parameters
    ----------
    digits
        Digits per operand (operands are drawn uniformly from 0 … 10^digits − 1).
    reverse
        Write the sum least-significant digit first.
    n_heldout
        Size of the fixed held-out problem set on which pass@1 is measured.
    """

    digits: int = 3
    reverse: bool = True
    n_heldout: int = 256

    def __post_init__(self) -> None:
        if not 1 <= self.digits <= 9:
            raise ValueError(f"digits={self.digits} must be between 1 and 9")
        if not 1 <= self.n_heldout <= (10**self.digits) ** 2 // 4:
            raise ValueError(f"n_heldout={self.n_heldout} must be between 1 and a quarter of all problems")

    @property
    def name(self) -> str:
        return f"add{self.digits}{'r' if self.reverse else ''}"

    @property
    def prompt_len(self) -> int:
        return 2 * self.digits + 2

    @property
    def answer_len(self) -> int:
        """Bytes of an answer, terminator included."""
        return self.digits + 2

    @property
    def seq_len(self) -> int:
        return self.prompt_len + self.answer_len

    def prompt_text(self, a: int, b: int) -> str:
        return f"{a:0{self.digits}d}+{b:0{self.digits}d}="

    def answer_text(self, a: int, b: int) -> str:
        total = f"{a + b:0{self.digits + 1}d}"
        return (total[::-1] if self.reverse else total) + "\n"

    def encode(self, problems: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts (n, prompt_len) and reference answers (n, answer_len) as byte tensors."""
        prompts = [self.prompt_text(int(a), int(b)).encode() for a, b in problems]
        answers = [self.answer_text(int(a), int(b)).encode() for a, b in problems]
        as_tensor = lambda rows: torch.tensor([list(r) for r in rows], dtype=torch.long)
        return as_tensor(prompts), as_tensor(answers)

    @cached_property
    def heldout(self) -> np.ndarray:
        """The fixed held-out problems, (n_heldout, 2), distinct and sorted."""
        rng = np.random.default_rng(HELDOUT_SEED)
        keys = rng.choice((10**self.digits) ** 2, size=self.n_heldout, replace=False)
        return np.stack(np.divmod(np.sort(keys), 10**self.digits), axis=1)

    @cached_property
    def _heldout_keys(self) -> np.ndarray:
        return self.heldout[:, 0] * 10**self.digits + self.heldout[:, 1]

    def sample(self, n: int, seed: int, step: int, stream: int = 0) -> np.ndarray:
        """``n`` training problems for ``(seed, step, stream)``, never a held-out one; (n, 2) ints.

        The draw depends only on its arguments, so a resumed run sees exactly the problems of an
        uninterrupted one. ``stream`` separates uses (0: supervised stage, 1: RL).
        """
        rng = np.random.default_rng([seed, step, stream])
        size = 10**self.digits
        keys = rng.integers(0, size * size, size=n)
        clash = np.isin(keys, self._heldout_keys)
        while clash.any():
            keys[clash] = rng.integers(0, size * size, size=int(clash.sum()))
            clash = np.isin(keys, self._heldout_keys)
        return np.stack(np.divmod(keys, size), axis=1)

    @staticmethod
    def reward(samples: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
        """Exact-match reward, (n,) floats in {0, 1}: 1 when every sampled byte, terminator too, is right."""
        return (samples == answers).all(dim=1).float()


def response_mask(samples: torch.Tensor) -> torch.Tensor:
    """(n, answer_len) bool: the tokens up to and including the first terminator (sampling stops there)."""
    is_end = samples == TERMINATOR
    ended_before = torch.cumsum(is_end.long(), dim=1) - is_end.long()
    return ended_before == 0


def token_logprobs(model: torch.nn.Module, prompts: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
    """Log-probabilities (n, answer_len) of each response token given the prompt and the tokens before it."""
    sequence = torch.cat([prompts, responses], dim=1)
    logits = model(sequence[:, :-1])[:, prompts.shape[1] - 1 :]
    return torch.gather(F.log_softmax(logits.float(), dim=-1), 2, responses[:, :, None])[:, :, 0]


def answer_logprob(model: torch.nn.Module, prompts: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
    """log P(sampled answer = reference) at temperature 1, (n,): the sum of the reference tokens' log-probs.

    ``exp`` of it is the exact pass@1 of one problem; its mean over problems is the task's pass@1.
    """
    return token_logprobs(model, prompts, answers).sum(dim=1)


@torch.no_grad()
def generate(model: torch.nn.Module, prompts: torch.Tensor, length: int, *, temperature: float = 1.0,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample ``length`` tokens after each prompt, (n, length); ``temperature=0`` decodes greedily.

    Tokens after a terminator are sampled too (the shapes stay fixed) and masked by :func:`response_mask`.
    """
    sequence = prompts
    for _ in range(length):
        logits = model(sequence)[:, -1].float()
        if temperature == 0:
            token = logits.argmax(dim=-1, keepdim=True)
        else:
            probs = F.softmax(logits / temperature, dim=-1)
            if generator is not None and generator.device != probs.device:  # draws stay on the CPU generator
                token = torch.multinomial(probs.to(generator.device), 1, generator=generator).to(probs.device)
            else:
                token = torch.multinomial(probs, 1, generator=generator)
        sequence = torch.cat([sequence, token], dim=1)
    return sequence[:, prompts.shape[1] :]
