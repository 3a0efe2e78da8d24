"""Training compute under the ``6ND`` convention, and its inverses.

One forward and backward pass costs about 6 FLOPs per parameter per token: 2 forward (one multiply and one
add per weight), 4 backward (gradients with respect to activations and to weights), so a run of ``N``
parameters trained on ``D`` tokens costs::

    C = 6 · N · D

(Kaplan et al. 2020, "Scaling Laws for Neural Language Models", §2.1: ``C ≈ 6NBS``, eq. 2.2 without the
context term; Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models": ``FLOPs(N, D) ≈ 6ND``,
compared with a full count in App. F). The runs table names this
convention ``"6ND"`` (:func:`scalefit.runs.derive_flops`, which also knows ``"6ND+attn"``).

Every function here is plain arithmetic, so it takes Python scalars, numpy arrays and pandas Series alike
and returns the same kind (a Series keeps its index).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import pandas as pd

#: FLOPs per parameter per token for one training step, forward (2) plus backward (4).
FLOPS_PER_PARAM_TOKEN = 6.0

Values = TypeVar("Values", float, np.ndarray, pd.Series)


def training_flops(params: Values, tokens: Values) -> Values:
    """Training compute ``C = 6 N D`` in FLOPs.

    Parameters
    ----------
    params : float, numpy.ndarray or pandas.Series
        ``N``, parameters (non-embedding, as the runs table counts them).
    tokens : float, numpy.ndarray or pandas.Series
        ``D``, tokens trained on.

    Returns
    -------
    float, numpy.ndarray or pandas.Series
        ``6 · N · D`` [FLOP] (Kaplan et al. 2020, §2.1 and eq. 2.2; Hoffmann et al. 2022).

    Examples
    --------
    Chinchilla, 70B parameters on 1.4T tokens:

    >>> float(training_flops(70e9, 1.4e12))
    5.88e+23
    """
    return FLOPS_PER_PARAM_TOKEN * params * tokens


def tokens_for(flops: Values, params: Values) -> Values:
    """Tokens a compute budget buys at a given size: ``D = C / (6 N)``.

    Parameters
    ----------
    flops : float, numpy.ndarray or pandas.Series
        ``C``, training compute [FLOP].
    params : float, numpy.ndarray or pandas.Series
        ``N``, parameters.

    Returns
    -------
    float, numpy.ndarray or pandas.Series
        ``D = C / (6 N)`` [tokens], the inverse of :func:`training_flops` in ``D``.
    """
    return flops / (FLOPS_PER_PARAM_TOKEN * params)


def params_for(flops: Values, tokens_per_param: Values) -> Values:
    """Model size a compute budget buys at a fixed tokens-per-parameter ratio: ``N = sqrt(C / (6 r))``.

    With ``D = r N``, ``C = 6 N D = 6 r N²``, hence ``N = sqrt(C / (6 r))`` and ``D = r N``.

    Parameters
    ----------
    flops : float, numpy.ndarray or pandas.Series
        ``C``, training compute [FLOP].
    tokens_per_param : float, numpy.ndarray or pandas.Series
        ``r = D / N`` (about 20 at Chinchilla's optimum, Hoffmann et al. 2022, Table 3).

    Returns
    -------
    float, numpy.ndarray or pandas.Series
        ``N = sqrt(C / (6 r))`` [parameters].
    """
    return np.sqrt(flops / (FLOPS_PER_PARAM_TOKEN * tokens_per_param))
