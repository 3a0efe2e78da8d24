"""Training-loop pieces the language-model runner and the RL runner share: the optimiser, one clipped step, resume.

The optimiser is AdamW with β = (0.9, 0.95), ε = 1e-8 and weight decay on matrices only (embeddings and
linear weights; none on biases and LayerNorm gains), as in nanoGPT and GPT-3's recipe; gradients are clipped
to a global norm of 1.0 before every step.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .files import load_checkpoint

BETAS = (0.9, 0.95)
CLIP_NORM = 1.0


def adamw(model: torch.nn.Module, lr: float, weight_decay: float = 0.1) -> torch.optim.AdamW:
    """AdamW over ``model``'s parameters, ``weight_decay`` on the matrices (``dim >= 2``) only."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=BETAS, eps=1e-8)


def clipped_step(loss: torch.Tensor, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Backpropagate ``loss``, clip the gradients' global norm to ``CLIP_NORM`` and take one optimiser step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
    optimizer.step()


def resume(path: Path, out: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
           fresh: dict, *, map_location: str = "cpu") -> dict:
    """Load the checkpoint at ``path`` into ``model`` and ``optimizer``; return the rest of its state.

    Without a checkpoint, or with a damaged one (moved to quarantine, with a line saying so), the model and
    optimiser are left as they are and ``fresh`` is returned: the run starts from the beginning.
    """
    saved = load_checkpoint(path, out, map_location=map_location)
    if saved is None:
        return fresh
    model.load_state_dict(saved.pop("model"))
    optimizer.load_state_dict(saved.pop("optimizer"))
    return saved
