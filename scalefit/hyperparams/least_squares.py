"""Ordinary least squares and its covariances in numpy (the numbers of statsmodels' OLS, to 1e-10).

Used where a closed form is all that is needed: the quadratic around a group's best cell, and the covariance
of an LR/BS law's coefficients when it is fitted without a bootstrap (``n_bootstrap=0``).
"""

from __future__ import annotations

import numpy as np


def ols(design: np.ndarray, response: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients and their covariance ``s² (XᵀX)⁺`` with ``s² = RSS / (n − p)``."""
    coef, *_ = np.linalg.lstsq(design, response, rcond=None)
    return coef, ols_cov(design, response - design @ coef)


def ols_cov(design: np.ndarray, residuals: np.ndarray) -> np.ndarray:
    """Classical covariance ``s² (XᵀX)⁺`` of least-squares coefficients from their residuals."""
    dof = len(residuals) - design.shape[1]
    scale = float(residuals @ residuals) / dof if dof > 0 else np.nan
    return scale * np.linalg.pinv(design.T @ design)


def cluster_cov(design: np.ndarray, residuals: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Cluster-robust (sandwich) covariance, points of a group correlated, with statsmodels' small-sample
    correction ``G/(G−1) · (n−1)/(n−p)`` (Cameron & Miller 2015, eq. 11)."""
    bread = np.linalg.pinv(design.T @ design)
    labels, codes = np.unique(groups, return_inverse=True)
    scores = np.zeros((len(labels), design.shape[1]))
    np.add.at(scores, codes, design * residuals[:, None])
    n, p, g = len(residuals), design.shape[1], len(labels)
    correction = g / (g - 1) * (n - 1) / (n - p) if g > 1 and n > p else np.nan
    return correction * bread @ (scores.T @ scores) @ bread
