"""Searching the candidate grid for a design: greedy passes, then a batch exchange on each pass's result.

Both steps minimise the linearised criterion ``V(X)`` of :class:`scalefit.plan.design.DesignCriterion` under
the compute budget:

- **greedy** (:func:`greedy_pass`): start from the existing runs and add, one at a time, the affordable
  candidate with the largest reduction of ``V`` per ``cost^γ``, until the budget is spent, no candidate reduces
  ``V`` by more than ``min_gain`` of itself, or ``max_runs`` runs are chosen;
- **exchange** (:func:`exchange`): Fedorov's exchange algorithm for a design of fixed size (Fedorov 1972,
  *Theory of Optimal Experiments*, §2.6; Atkinson, Donev & Tobias 2007, *Optimum Experimental Designs, with
  SAS*, §12.5): among all swaps of one proposed run for one other affordable candidate, make the one that
  lowers ``V`` most, and repeat while a swap lowers it. Greedy selection cannot take back an early run that
  later ones make redundant; the exchange can.

A search result is a :class:`Candidate`: the chosen grid indices, the design (existing runs first), its
information, its compute and its linearised ``V``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Stop exchanging when the best swap lowers ``V`` by less than this share of it.
EXCHANGE_TOLERANCE = 1e-4
#: At most this many swaps per exchange (each swap scans every proposed run × every candidate).
MAX_SWAPS = 30


@dataclass(frozen=True)
class Candidate:
    """One searched design: grid indices of its proposed runs, the full design, information, compute, ``V``."""

    chosen: tuple[int, ...]
    design: np.ndarray  # (points, 2): existing runs, then the chosen grid points
    information: np.ndarray  # (draws, params, params)
    spent: float
    variance: float
    search: str


@dataclass(frozen=True)
class SearchSpace:
    """The candidate grid and what the search needs about it, shared by every pass."""

    criterion: object  # scalefit.plan.design.DesignCriterion (not imported: design imports this module)
    existing: np.ndarray  # (points, 2)
    existing_information: np.ndarray  # (draws, params, params)
    grid: np.ndarray  # (candidates, 2)
    cost: np.ndarray  # (candidates,) FLOPs
    candidate_information: np.ndarray  # (candidates, draws, params, params)
    budget: float

    def variance(self, information: np.ndarray, design: np.ndarray) -> float:
        return sum(self.criterion.parts(information, self.criterion.distance(design)).values())

    def candidate(self, chosen: list[int] | tuple[int, ...], search: str) -> Candidate:
        chosen = tuple(int(c) for c in chosen)
        design = np.vstack([self.existing, self.grid[list(chosen)]]) if chosen else self.existing
        information = self.existing_information + self.candidate_information[list(chosen)].sum(axis=0)
        return Candidate(chosen, design, information, float(self.cost[list(chosen)].sum()),
                         self.variance(information, design), search)

    def parameter_parts(self, information: np.ndarray) -> np.ndarray:
        """The parameter part of ``V`` for a stack of informations (..., draws, params, params)."""
        criterion = self.criterion
        precision = information + np.diag(criterion.prior_precision)
        gradient = np.broadcast_to(criterion.gradient, precision.shape[:-1])[..., None]
        solved = np.linalg.solve(precision, gradient)[..., 0]
        return np.mean(np.einsum("...si,...si->...s", gradient[..., 0], solved), axis=-1)


def greedy_pass(space: SearchSpace, max_runs: int, min_gain: float, gamma: float) -> Candidate:
    """Add the affordable candidate with the largest ``ΔV / cost^γ`` until nothing helps (module docstring)."""
    chosen: list[int] = []
    spent, design, info = 0.0, space.existing, space.existing_information
    current = space.variance(info, design)
    while len(chosen) < max_runs:
        best, best_score, best_value = None, 0.0, current
        for c in np.flatnonzero(space.cost <= space.budget - spent):
            if c in chosen:
                continue
            value = space.variance(info + space.candidate_information[c], np.vstack([design, space.grid[c]]))
            score = (current - value) / space.cost[c] ** gamma
            if current - value > min_gain * current and score > best_score:
                best, best_score, best_value = c, score, value
        if best is None:
            break
        chosen.append(int(best))
        info = info + space.candidate_information[best]
        design = np.vstack([design, space.grid[best]])
        spent += space.cost[best]
        current = best_value
    return space.candidate(chosen, f"greedy γ = {gamma:g}")


def exchange(space: SearchSpace, start: Candidate) -> Candidate:
    """Fedorov exchange from ``start``: make the best single swap of a proposed run for another affordable
    candidate while it lowers ``V`` by more than :data:`EXCHANGE_TOLERANCE` of it (at most :data:`MAX_SWAPS`)."""
    chosen = list(start.chosen)
    current = start
    for _ in range(MAX_SWAPS):
        best_value, best_swap = current.variance * (1 - EXCHANGE_TOLERANCE), None
        for position, leaving in enumerate(chosen):
            others = chosen[:position] + chosen[position + 1:]
            room = space.budget - space.cost[others].sum()
            entering = np.array([c for c in np.flatnonzero(space.cost <= room) if c not in chosen], dtype=int)
            if not len(entering):
                continue
            base = current.information - space.candidate_information[leaving]
            parameters = space.parameter_parts(base[None] + space.candidate_information[entering])
            kept = np.vstack([space.existing, space.grid[others]])
            for c, parameter in zip(entering, parameters):
                distance = space.criterion.distance(np.vstack([kept, space.grid[c]]))
                value = parameter + space.criterion.sigma**2 + (space.criterion.kappa * distance) ** 2
                if value < best_value:
                    best_value, best_swap = value, (position, int(c))
        if best_swap is None:
            break
        chosen[best_swap[0]] = best_swap[1]
        current = space.candidate(chosen, f"{start.search}, exchanged")
    return current


def sequential_gains(space: SearchSpace, chosen: tuple[int, ...]) -> np.ndarray:
    """Each proposed run's reduction of the linearised ``V`` when the runs are added in order."""
    values = [space.variance(space.existing_information, space.existing)]
    info, design = space.existing_information, space.existing
    for c in chosen:
        info = info + space.candidate_information[c]
        design = np.vstack([design, space.grid[c]])
        values.append(space.variance(info, design))
    return -np.diff(values)
