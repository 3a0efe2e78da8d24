"""The ``scalefit`` command line.

Each subcommand is one ``_add_<name>`` function (its parser) and one ``_run_<name>`` function (its work).
Errors the user can fix (``ScalefitInputError``) print one readable message and exit with code 2; output
folders are written to a temporary sibling and renamed into place, so a failed command writes nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from scalefit.errors import ScalefitInputError

EXIT_INPUT_ERROR = 2


def _check_out(out: str | os.PathLike | None) -> None:
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise ScalefitInputError(f"--out {out} is a file, not a folder; name a folder (it is replaced whole)")


@contextlib.contextmanager
def staged_output_dir(out: str | os.PathLike | None) -> Iterator[Path | None]:
    """Yield a temporary folder whose contents replace ``out`` only if the block succeeds."""
    if out is None:
        yield None
        return
    out = Path(out)
    _check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)


# --- subcommands ------------------------------------------------------------------------------------
# (each subcommand: _add_<name>(subparsers) registering set_defaults(run=_run_<name>))

SUBCOMMANDS: list = []


def write_json(path: str | os.PathLike, payload: dict) -> None:
    """Write strict JSON (non-finite numbers as null) next to its destination, then rename: a reader never
    sees half a file."""
    import json

    from scalefit.study import json_safe

    payload = json_safe(payload)
    destination = Path(path)
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = destination.with_name(f".{destination.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")
    os.replace(tmp, destination)


def _floats(text: str) -> list[float]:
    """``"1e6,2e6"`` or ``"1e6"`` → floats; argparse turns a ValueError into a usage error (exit 2)."""
    return [float(v) for v in text.split(",") if v.strip()]


# --- fit / predict / allocate: the joint law and compute-optimal allocation (scalefit.study) -----------


def _add_fit(subparsers) -> None:
    parser = subparsers.add_parser(
        "fit",
        help="fit a scaling law to a runs table, with bootstrap intervals, a backtest and allocation",
        description="Fit L(N, D) = E + A/N^alpha + B/D^beta (or a power law, or Kaplan's law) to a runs table "
                    "by multi-start robust regression (Huber on log L), with bootstrap intervals, a backtest "
                    "on the largest held-out size(s) and, for the joint law, compute-optimal allocation.",
        epilog="examples:\n"
               "  scalefit fit data/runs.parquet --out out/fit\n"
               "  scalefit fit runs.csv --map 'Model Size=params' --map Tokens=tokens --law power --x flops\n"
               "  scalefit fit data/runs.parquet --fix alpha=0.34 --bootstrap 200 --json fit.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", metavar="RUNS", help="runs table (parquet or CSV)")
    parser.add_argument("--law", choices=("chinchilla", "power", "kaplan"), default="chinchilla")
    parser.add_argument("--x", choices=("params", "tokens", "flops"), default="params",
                        help="the power law's variable (default params)")
    parser.add_argument("--map", action="append", default=[], metavar="OLD=NEW",
                        help="rename a column of the file to a runs-table column (repeatable)")
    parser.add_argument("--points", choices=("tuned", "final", "all"), default="tuned",
                        help="tuned: best lr/batch setting per (N, D), seeds averaged (default); final: every "
                             "run's last point; all: every evaluation (runs resampled together)")
    parser.add_argument("--loss", choices=("huber", "mse_log", "mse"), default="huber")
    parser.add_argument("--delta", type=float, default=1e-3, help="Huber threshold on log L (default 1e-3)")
    parser.add_argument("--fix", action="append", default=[], metavar="NAME=VALUE",
                        help="hold a parameter at a value, e.g. alpha=0.34 (repeatable)")
    parser.add_argument("--tie", metavar="A,B", help="fit two parameters as one, e.g. alpha,beta")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help="bootstrap refits for the intervals (default 1000; 0: none)")
    parser.add_argument("--holdout-largest", type=int, default=1, metavar="K",
                        help="backtest: refit without the K largest sizes and predict them (default 1; 0: off)")
    parser.add_argument("--flops-convention", choices=("6ND", "6ND+attn"),
                        help="recount FLOPs under this convention (default: as the table says, else 6ND)")
    parser.add_argument("--budgets", type=_floats, metavar="C1,C2,...",
                        help="compute budgets [FLOP] for the allocation table (default: the data's range "
                             "and 3 decades beyond)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", metavar="DIR", help="write fit.json, report.md and PNG plots here")
    parser.add_argument("--json", metavar="FILE", help="write fit.json here too")
    parser.set_defaults(run=_run_fit)


def _parse_fix(items: list[str]) -> dict[str, float]:
    fixed = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            fixed[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise ScalefitInputError(f"--fix {item!r}: write NAME=VALUE, e.g. --fix alpha=0.34")
    return fixed


def _parse_tie(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    names = tuple(t.strip() for t in text.split(","))
    if len(names) < 2 or not all(names):
        raise ScalefitInputError(f"--tie {text!r}: name two or more parameters, e.g. --tie alpha,beta")
    return names


def _run_fit(args: argparse.Namespace) -> int:
    import math

    from scalefit.runs import parse_column_map
    from scalefit.study import fit_runs

    if args.budgets is not None and not (args.budgets and all(math.isfinite(c) and c > 0 for c in args.budgets)):
        raise ScalefitInputError("--budgets must be one or more finite positive FLOP budgets, e.g. 1e18,1e20")
    study = fit_runs(
        args.runs, law=args.law, x=args.x, points=args.points, holdout_largest=args.holdout_largest,
        budgets=args.budgets, columns=parse_column_map(args.map) or None, flops_convention=args.flops_convention,
        loss=args.loss, delta=args.delta, fix=_parse_fix(args.fix) or None, tie=_parse_tie(args.tie),
        bootstrap=args.bootstrap, seed=args.seed,
    )
    print(study.summary())
    document = study.to_dict()
    with staged_output_dir(args.out) as out:
        if out is not None:
            from scalefit.report import write_fit_outputs

            write_fit_outputs(study, out)
        if args.json:  # inside the block: if it fails, the output folder is not put in place either
            write_json(args.json, document)
    return 0 if study.result.success else 1


def _add_predict(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="predicted loss of planned runs from a fit.json, with intervals",
        description="Predict the loss at (N, D) from a saved fit, with the confidence interval of the mean "
                    "and the prediction interval of a single run (bootstrap draws stored in fit.json).",
        epilog="example:\n  scalefit predict --fit out/fit/fit.json --params 1e6,3e6 --tokens 2e7",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--fit", required=True, metavar="FIT_JSON", help="fit.json written by scalefit fit")
    parser.add_argument("--params", type=_floats, metavar="N[,N...]", help="non-embedding parameters")
    parser.add_argument("--tokens", type=_floats, metavar="D[,D...]", help="training tokens")
    parser.add_argument("--flops", type=_floats, metavar="C[,C...]", help="training FLOPs (power law in flops)")
    parser.add_argument("--json", metavar="FILE", help="also write the predictions as JSON")
    parser.set_defaults(run=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from scalefit.study import load_fit

    result = load_fit(args.fit)
    given = {k: getattr(args, k) for k in ("params", "tokens", "flops") if getattr(args, k)}
    missing = [k for k in result.law.inputs if k not in given]
    if missing:
        raise ScalefitInputError(f"the {result.law.name} law in {args.fit} needs --{' --'.join(missing)}")
    try:
        frame = pd.DataFrame(dict(zip(given, np.broadcast_arrays(*map(np.asarray, given.values())))))
    except ValueError:
        raise ScalefitInputError("give one value or equally many values to each of --params, --tokens, --flops")
    if not (np.isfinite(frame) & (frame > 0)).all(axis=None):
        raise ScalefitInputError("--params, --tokens and --flops must be finite and positive")
    if len(result.draws) and result.draws["converged"].any():
        confidence = result.predict(frame, interval="confidence", level=result.level)
        prediction = result.predict(frame, interval="prediction", level=result.level)
        heading = (f"{100 * result.level:.0f}% intervals of the mean (mean_lo, mean_hi) and of one run "
                   "(run_lo, run_hi)")
    else:  # a fit made with --bootstrap 0: the point prediction only
        confidence = prediction = result.predict(frame, interval=None).assign(lo=np.nan, hi=np.nan)
        heading = "no intervals: the fit has no bootstrap draws (refit with --bootstrap N for them)"
    table = frame.assign(loss=confidence["mean"], mean_lo=confidence["lo"], mean_hi=confidence["hi"],
                         run_lo=prediction["lo"], run_hi=prediction["hi"])
    print(f"{result.law!r} from {args.fit}; {heading}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.json:
        write_json(args.json, {"fit": str(args.fit), "level": result.level,
                               "predictions": table.to_dict(orient="records")})
    return 0


def _add_allocate(subparsers) -> None:
    parser = subparsers.add_parser(
        "allocate",
        help="compute-optimal model size and tokens for FLOP budgets, from a joint-law fit.json",
        description="N_opt(C) and D_opt(C) under C = 6ND from a fitted Chinchilla law (closed form, Hoffmann "
                    "et al. 2022 eq. 4), with percentile intervals over the fit's bootstrap draws.",
        epilog="example:\n  scalefit allocate --fit out/fit/fit.json --flops 1e15,1e16",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--fit", required=True, metavar="FIT_JSON", help="fit.json written by scalefit fit")
    parser.add_argument("--flops", type=_floats, required=True, metavar="C[,C...]", help="budgets [FLOP]")
    parser.add_argument("--json", metavar="FILE", help="also write the allocation as JSON")
    parser.set_defaults(run=_run_allocate)


def _run_allocate(args: argparse.Namespace) -> int:
    import math

    from scalefit.allocation import joint_law_allocation
    from scalefit.study import load_fit

    if not args.flops or not all(math.isfinite(c) and c > 0 for c in args.flops):
        raise ScalefitInputError("--flops must be one or more finite positive budgets, e.g. --flops 1e18,1e20")
    allocation = joint_law_allocation(load_fit(args.fit), args.flops)
    print(allocation.summary())
    if args.json:
        write_json(args.json, allocation.to_dict())  # intervals are NaN (null) without bootstrap draws
    return 0


SUBCOMMANDS += [_add_fit, _add_predict, _add_allocate]


# --- recommend / hparams: optimal learning rate and batch size (scalefit.hyperparams) ------------------


def _add_hparam_fit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fit-on", choices=("optima", "plateau"), default="optima",
                        help="fit the laws on each group's interpolated optimum (default) or on every "
                             "plateau run (Step Law's choice)")
    parser.add_argument("--group-by", choices=("params_tokens", "flops"), default="params_tokens",
                        help="group runs by (N, D) pair (default) or by training FLOPs")
    parser.add_argument("--tolerance", type=float, default=0.0025,
                        help="plateau: runs within this relative distance of the group's best loss "
                             "(default 0.0025, as Step Law)")
    parser.add_argument("--divergence-factor", type=float, default=1.5,
                        help="runs above this multiple of the group's best loss count as diverged "
                             "(default 1.5; 0 disables)")
    parser.add_argument("--smooth-last", type=int, default=1, metavar="K",
                        help="final loss = mean of each run's last K evaluation points (default 1)")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="B",
                        help="bootstrap resamples over groups for the intervals (default 1000; 0: OLS)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--level", type=float, default=0.9, help="interval level (default 0.9)")


def _fit_hparam_laws_from_args(args: argparse.Namespace):
    from scalefit.hyperparams import fit_hparams, load_sweep

    sweep = load_sweep(args.runs, smooth_last=args.smooth_last)
    return fit_hparams(
        sweep, group_by=args.group_by, tolerance=args.tolerance,
        divergence_factor=args.divergence_factor or None, fit_on=args.fit_on, n_bootstrap=args.bootstrap,
        level=args.level, seed=args.seed, source=str(args.runs),
    )


def _add_recommend(subparsers) -> None:
    parser = subparsers.add_parser(
        "recommend",
        help="peak learning rate and batch size for a planned run, with intervals",
        description="Recommend the peak LR and batch size for a run of N non-embedding parameters on D "
                    "tokens, from laws fitted on your own LR x batch-size sweep (--runs) or from a "
                    "published preset (--preset steplaw, the default; --preset deepseek).",
        epilog="examples:\n"
               "  scalefit recommend --preset steplaw --params 7e9 --tokens 1.4e12\n"
               "  scalefit recommend --runs sweep.parquet --params 1e9 --tokens 2e10 --seq-len 4096 "
               "--json rec.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--params", type=float, required=True, metavar="N",
                        help="non-embedding parameters of the planned model")
    parser.add_argument("--tokens", type=float, required=True, metavar="D", help="training tokens")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--runs", metavar="RUNS",
                        help="runs table (parquet or CSV) or Step Law grid CSV to fit the laws on")
    source.add_argument("--preset", metavar="NAME", help="published laws: steplaw (default) or deepseek")
    parser.add_argument("--flops", type=float, metavar="C",
                        help="training FLOPs for the compute forms (default 6*N*D)")
    parser.add_argument("--seq-len", type=int, metavar="T",
                        help="sequence length, to give the batch size in sequences too")
    parser.add_argument("--bs-law", choices=("auto", "D", "N_D"), default="auto",
                        help="batch-size law: B*(D) as Step Law, B*(N, D), or auto (default): B*(N, D) when "
                             "its N exponent's interval excludes 0, else B*(D)")
    parser.add_argument("--json", metavar="FILE", help="also write the recommendation as JSON")
    _add_hparam_fit_options(parser)
    parser.set_defaults(run=_run_recommend)


def _run_recommend(args: argparse.Namespace) -> int:
    from scalefit.hyperparams import recommend

    laws = _fit_hparam_laws_from_args(args) if args.runs else (args.preset or "steplaw")
    advice = recommend(args.params, args.tokens, laws, flops=args.flops, seq_len=args.seq_len,
                       level=args.level, bs_law=args.bs_law)
    print(advice.summary())
    if args.json:
        write_json(args.json, advice.to_dict())
    return 0


def _add_hparams(subparsers) -> None:
    parser = subparsers.add_parser(
        "hparams",
        help="fit optimal LR and batch-size laws from an LR x batch-size sweep",
        description="Locate the optimal LR (and batch size) of every (N, D) group of a sweep, its plateau "
                    "and an interpolated optimum, then fit lr*(N, D) = c N^a D^b, B*(D) = c D^g, "
                    "B*(N, D) = c N^h D^g and the compute forms lr*(C), B*(C) with bootstrap intervals.",
        epilog="examples:\n"
               "  scalefit hparams sweep.parquet --out hparams/\n"
               "  scalefit hparams data/dense_lr_bs_loss.csv --fit-on plateau --json laws.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", metavar="RUNS", help="runs table (parquet or CSV) or Step Law grid CSV")
    parser.add_argument("--out", metavar="DIR",
                        help="write laws.json, groups.csv, plateau.csv, excluded.csv, summary.txt and plots")
    parser.add_argument("--json", metavar="FILE", help="write the laws and the per-group table as JSON")
    _add_hparam_fit_options(parser)
    parser.set_defaults(run=_run_hparams)


def _run_hparams(args: argparse.Namespace) -> int:
    import re

    laws = _fit_hparam_laws_from_args(args)
    summary = laws.optima.summary() + "\n\n" + laws.summary()
    print(summary)
    with staged_output_dir(args.out) as out:
        if out is not None:
            from scalefit.plots import save_and_close

            write_json(str(out / "laws.json"), laws.to_dict())
            (out / "summary.txt").write_text(summary + "\n")
            laws.optima.groups.to_csv(out / "groups.csv", index=False)
            laws.optima.plateau.to_csv(out / "plateau.csv", index=False)
            laws.optima.excluded.to_csv(out / "excluded.csv", index=False)
            (out / "landscapes").mkdir()
            for position, label in enumerate(laws.optima.groups["group"]):
                slug = re.sub(r"[^A-Za-z0-9.+-]+", "_", label)
                save_and_close(laws.optima.plot(position), out / "landscapes" / f"{position:02d}_{slug}.png")
            for name, law in laws.laws.items():
                for variable in law.variables:
                    save_and_close(law.plot(against=variable), out / f"{name}_against_{variable}.png")
    if args.json:
        write_json(args.json, laws.to_dict())
    return 0


SUBCOMMANDS += [_add_recommend, _add_hparams]


# --- rl: RL post-training scaling (scalefit.rl) -------------------------------------------------------


def _add_rl(subparsers) -> None:
    parser = subparsers.add_parser(
        "rl",
        help="fit the RL post-training scaling law log L = -k(N) log X + E(N) and backtest it",
        description="Fit Tan et al. (2025)'s law of RL post-training, log L = -k(N) log X + E(N) with "
                    "k(N) = K_max / (1 + N0/N), to the test error L = 1 - pass@1 of RL runs of several model "
                    "sizes, with block-bootstrap intervals; optionally backtest it: early:F fits the first "
                    "fraction F of every curve and predicts the rest, holdout-largest:K fits all but the K "
                    "largest sizes and predicts them (slope-only: intercept refitted on the target's first "
                    "points, as the paper; full: intercept extrapolated too).",
        epilog="examples:\n"
               "  scalefit rl data/rl_runs.parquet --out rl/\n"
               "  scalefit rl data/rl_runs.parquet --x data --protocol holdout-largest:1 --json rl.json\n"
               "  scalefit rl runs.csv --metric accuracy --loss huber --protocol early:0.5",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", metavar="RUNS", help="RL runs table (parquet or CSV), one row per evaluation")
    parser.add_argument("--x", choices=("compute", "data"), default="compute",
                        help="X: RL compute (column flops, default) or data (column samples)")
    parser.add_argument("--metric", default="pass_at_1", metavar="COLUMN",
                        help="success-rate column, L = 1 - metric (default pass_at_1)")
    parser.add_argument("--metric-is-error", action="store_true", help="the metric column is already L")
    parser.add_argument("--loss", choices=("mse", "huber"), default="mse",
                        help="squared error on L (default, as the paper) or Huber on log L")
    parser.add_argument("--protocol", metavar="P", help="early:F or holdout-largest:K (default: fit all)")
    parser.add_argument("--variant", choices=("both", "slope-only", "full"), default="both",
                        help="holdout-largest: which prediction(s) to make (default both)")
    parser.add_argument("--anchor", type=float, default=0.1, metavar="F",
                        help="slope-only: refit the target's intercept on X <= F X_max (default 0.1)")
    parser.add_argument("--bootstrap", type=int, default=200, metavar="B",
                        help="block-bootstrap replicates for the intervals (default 200; 0: none)")
    parser.add_argument("--clip", default="auto", metavar="EPS",
                        help="move L = 0 or 1 to EPS or 1 - EPS: auto (half a held-out problem, default), "
                             "a number, or none to stop with an error")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--out", metavar="DIR", help="write result.json, summary.txt, points.csv and plots")
    parser.add_argument("--json", metavar="FILE", help="write the result as JSON")
    parser.set_defaults(run=_run_rl)


def _run_rl(args: argparse.Namespace) -> int:
    import json

    from scalefit.rl import fit_rl, load_rl_runs

    if args.clip in ("auto", "none"):
        clip = None if args.clip == "none" else "auto"
    else:
        try:
            clip = float(args.clip)
        except ValueError:
            raise ScalefitInputError(f"--clip must be auto, none or a number, not {args.clip!r}") from None
    result = fit_rl(load_rl_runs(args.runs), x=args.x, metric=args.metric,
                    metric_is_error=args.metric_is_error, loss=args.loss, protocol=args.protocol,
                    variant=args.variant, anchor=args.anchor, bootstrap=args.bootstrap, clip=clip, seed=args.seed)
    summary = result.summary()
    print(summary)
    payload = json.dumps({"source": str(args.runs), **result.to_dict()}, indent=2, allow_nan=False) + "\n"
    with staged_output_dir(args.out) as out:
        if out is not None:
            from scalefit.plots import save_and_close

            (out / "result.json").write_text(payload)
            (out / "summary.txt").write_text(summary + "\n")
            result.points.to_csv(out / "points.csv", index=False)
            save_and_close(result.plot_curves(), out / "curves.png")
            save_and_close(result.plot_efficiency(), out / "efficiency.png")
    if args.json:
        destination = Path(args.json)
        destination.parent.mkdir(parents=True, exist_ok=True)
        tmp = destination.with_name(f".{destination.name}.tmp")
        tmp.write_text(payload)
        os.replace(tmp, destination)
    return 0


SUBCOMMANDS += [_add_rl]


# --- report: every analysis the table supports, as HTML, markdown, JSON and PNGs (scalefit.report) ------


def _parse_target(text: str) -> tuple[float, float | None]:
    """``"1e7"`` or ``"1e7:2e8"`` → (N, D or None); a bad one is a usage error (exit 2)."""
    import math

    size, _, tokens = text.partition(":")
    try:
        target = (float(size), float(tokens) if tokens.strip() else None)
    except ValueError:
        target = (math.nan, None)
    if not all(v is None or (math.isfinite(v) and v > 0) for v in target):
        raise argparse.ArgumentTypeError(f"{text!r} is not N or N:D with N, D positive numbers, e.g. 1e7 or "
                                         "1e7:2e8")
    return target


def _add_report(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="run every analysis a runs table supports and write report.html, report.md, results.json, PNGs",
        description="Fit the joint law (with bootstrap intervals and a backtest), the compute-optimal "
                    "frontier (Approaches 1-3), extrapolations to planned sizes, LR and batch-size laws "
                    "(when the table holds LR sweeps in 3+ (N, D) groups) and, with --rl, the RL "
                    "post-training law; write them as one self-contained HTML page (images embedded), "
                    "markdown, JSON and PNG plots. A section the data cannot support is left out, and the "
                    "report says why.",
        epilog="examples:\n"
               "  scalefit report data/runs.parquet --out out/report\n"
               "  scalefit report data/runs.parquet --rl data/rl_runs.parquet --target 1e6 --target 1e7:2e8",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", metavar="RUNS", help="runs table (parquet or CSV)")
    parser.add_argument("--out", metavar="DIR", default="out/report",
                        help="folder to write (replaced whole; default out/report)")
    parser.add_argument("--rl", metavar="RL_RUNS", help="RL runs table for the RL section")
    parser.add_argument("--target", type=_parse_target, action="append", metavar="N[:D]",
                        help="a planned run for the extrapolation and recommendation tables (repeatable; "
                             "D default: compute-optimal for N; default targets: the next 3 powers of ten "
                             "of N)")
    parser.add_argument("--budgets", type=_floats, metavar="C1,C2,...",
                        help="compute budgets [FLOP] for the allocation table (default: the data's range and "
                             "3 decades beyond)")
    parser.add_argument("--map", action="append", default=[], metavar="OLD=NEW",
                        help="rename a column of the file to a runs-table column (repeatable)")
    parser.add_argument("--flops-convention", choices=("6ND", "6ND+attn"),
                        help="recount FLOPs under this convention (default: as the table says, else 6ND)")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help="bootstrap refits of the joint law (default 1000)")
    parser.add_argument("--hparam-bootstrap", type=int, default=1000, metavar="N",
                        help="bootstrap resamples of the LR/batch-size laws (default 1000)")
    parser.add_argument("--rl-bootstrap", type=int, default=200, metavar="N",
                        help="block-bootstrap replicates of the RL law (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every bootstrap (default 0)")
    parser.set_defaults(run=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    import math

    from scalefit.report import SECTION_TITLES, build_report
    from scalefit.runs import parse_column_map

    budgets = args.budgets
    if budgets is not None and not (budgets and all(math.isfinite(c) and c > 0 for c in budgets)):
        raise ScalefitInputError("--budgets must be one or more finite positive FLOP budgets, e.g. 1e18,1e20")
    if min(args.bootstrap, args.hparam_bootstrap, args.rl_bootstrap) < 0:
        raise ScalefitInputError("bootstrap counts must be 0 or more")
    report = build_report(
        args.runs, rl_runs=args.rl, targets=args.target, budgets=args.budgets,
        columns=parse_column_map(args.map) or None, flops_convention=args.flops_convention,
        bootstrap=args.bootstrap, hparam_bootstrap=args.hparam_bootstrap, rl_bootstrap=args.rl_bootstrap,
        seed=args.seed, progress=not args.quiet and sys.stderr.isatty(),
    )
    with staged_output_dir(args.out) as out:
        paths = report.write(out)
    print(f"scalefit report: {len(report.sections)} sections from {report.source}: "
          + ", ".join(SECTION_TITLES[s.key] for s in report.sections))
    for key, why in report.absent.items():
        print(f"scalefit report: warning: no {SECTION_TITLES[key]} section: {why}", file=sys.stderr)
    print(f"wrote {Path(args.out) / 'report.html'} (self-contained), report.md, results.json and "
          f"{sum(name.endswith('.png') for name in paths)} PNG plots in {args.out}")
    return 0


SUBCOMMANDS += [_add_report]

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scalefit",
        description="Fit scaling laws from a runs table and plan training runs.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _check_out(getattr(args, "out", None))  # before any work: fail fast
        return int(args.run(args) or 0)
    except ScalefitInputError as err:
        print(f"scalefit {args.command}: error: {err}", file=sys.stderr)
        return EXIT_INPUT_ERROR


if __name__ == "__main__":
    sys.exit(main())
