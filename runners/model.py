"""A GPT-style decoder-only transformer, its size ladder and its exact parameter and FLOP accounting.

Architecture (nanoGPT-like, Radford et al. 2019): learned token and position embeddings; ``n_layers`` pre-norm
blocks of causal multi-head self-attention and a GELU MLP (LayerNorm with bias, linear layers without bias);
a final LayerNorm; the output head is **tied** to the token embedding. Byte-level: vocab 256.

Parameter counts (d = d_model, f = d_ff, L = n_layers, V = vocab, T = seq_len):
    per block      4·d² (q, k, v, out) + 2·d·f (MLP) + 4·d (two LayerNorms, weight and bias)
    non-embedding  N = L·(4·d² + 2·d·f + 4·d) + 2·d          (the final LayerNorm counts as non-embedding)
    embedding      V·d + T·d                                   (the tied head adds nothing)
FLOPs per training token (forward + backward):
    ``6ND``        6·N                                         (Kaplan et al. 2020, Table 1, times 3)
    ``6ND+attn``   6·N + 12·L·d·T                              (PaLM, Chowdhery et al. 2022, App. B)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

FLOPS_CONVENTIONS = ("6ND", "6ND+attn")


@dataclass(frozen=True)
class GPTConfig:
    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int
    vocab_size: int = 256
    seq_len: int = 128

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")

    @property
    def non_embedding_params(self) -> int:
        d, f, L = self.d_model, self.d_ff, self.n_layers
        return L * (4 * d * d + 2 * d * f + 4 * d) + 2 * d

    @property
    def embedding_params(self) -> int:
        return (self.vocab_size + self.seq_len) * self.d_model

    def flops_per_token(self, convention: str = "6ND+attn") -> int:
        """Training FLOPs per token (forward and backward) under a named convention."""
        if convention == "6ND":
            return 6 * self.non_embedding_params
        if convention == "6ND+attn":
            return 6 * self.non_embedding_params + 12 * self.n_layers * self.d_model * self.seq_len
        raise ValueError(f"unknown FLOPs convention {convention!r}; use one of {FLOPS_CONVENTIONS}")


def shape(d_model: int, n_layers: int, seq_len: int = 128, vocab_size: int = 256) -> GPTConfig:
    """The family's shape rule: d_ff = 4·d_model; head dim 8 below d=64, 16 up to d=255, then 32, 64 from 1024."""
    head_dim = 8 if d_model < 64 else 16 if d_model < 256 else 32 if d_model < 1024 else 64
    return GPTConfig(d_model, n_layers, max(1, d_model // head_dim), 4 * d_model, vocab_size, seq_len)


# The CPU ladder: ~10k to ~5M non-embedding parameters, roughly ×2 per rung; depth grows slowly so that
# d_model/n_layers stays between ~5 and ~40. Larger models (GPU) are made with ``shape(d, L)`` directly,
# e.g. shape(2048, 24) ≈ 1.2B non-embedding parameters.
SIZES: dict[str, tuple[int, int]] = {
    "n10k": (16, 3),     # 9,440
    "n20k": (24, 3),     # 21,072
    "n40k": (32, 3),     # 37,312
    "n80k": (40, 4),     # 77,520
    "n160k": (56, 4),    # 151,536
    "n320k": (64, 6),    # 296,576
    "n640k": (96, 6),    # 666,048
    "n1m": (128, 5),     # 985,856
    "n3m": (192, 7),     # 3,102,336
    "n5m": (256, 6),     # 4,725,248
}


def size_config(name: str, seq_len: int = 128, vocab_size: int = 256) -> GPTConfig:
    """The config of a named rung of the ladder, or ``d<d_model>l<n_layers>`` for any other shape."""
    if name in SIZES:
        return shape(*SIZES[name], seq_len=seq_len, vocab_size=vocab_size)
    if name.startswith("d") and "l" in name:
        d, L = name[1:].split("l", 1)
        return shape(int(d), int(L), seq_len=seq_len, vocab_size=vocab_size)
    raise ValueError(f"unknown model size {name!r}: use one of {sorted(SIZES)} or 'd<d_model>l<n_layers>'")


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln_attn = nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.ln_mlp = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, cfg.d_ff, bias=False), nn.GELU(), nn.Linear(cfg.d_ff, cfg.d_model, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_attn(x))
        return x + self.mlp(self.ln_mlp(x))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.position_embedding = nn.Embedding(cfg.seq_len, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_final = nn.LayerNorm(cfg.d_model)
        self.apply(self._init_weights)
        # GPT-2's scaled init of the residual projections: std 0.02/sqrt(2L).
        for name, p in self.named_parameters():
            if name.endswith(("attn.out.weight", "mlp.2.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def features(self, idx: torch.Tensor) -> torch.Tensor:
        """The final (normalised) hidden states, (batch, T, d_model): the head's input."""
        T = idx.shape[1]
        x = self.token_embedding(idx) + self.position_embedding(torch.arange(T, device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.ln_final(x)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Logits over the vocabulary from hidden states (the head is tied to the token embedding)."""
        return features @ self.token_embedding.weight.T

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        logits = self.head(self.features(idx))
        if targets is None:
            return logits
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    def count_params(self) -> tuple[int, int]:
        """(non-embedding, embedding) parameters counted from the module itself."""
        embedding = self.token_embedding.weight.numel() + self.position_embedding.weight.numel()
        total = sum(p.numel() for p in self.parameters())
        return total - embedding, embedding
