"""``scalefit fit``, ``predict`` and ``allocate``: the loss law and compute-optimal allocation."""

from __future__ import annotations

import argparse

from scalefit.cli.common import (
    add_input_options,
    check_saved_result,
    floats,
    load_input,
    result_exit_code,
    staged_output_dir,
    write_json,
)
from scalefit.errors import ScalefitInputError


def _level(text: str) -> float:
    """``--level``: a coverage in (0, 1)."""
    from scalefit.results import check_level

    try:
        return check_level(float(text))
    except (ValueError, ScalefitInputError):
        raise argparse.ArgumentTypeError(f"must be a coverage between 0 and 1, e.g. 0.9, not {text!r}") from None


def _window(text: str) -> int | str:
    """``--isoflop-window``: a number of sizes (3 or more) or ``all``."""
    if text.strip().lower() == "all":
        return "all"
    try:
        window = int(text)
    except ValueError:
        window = 0
    if window < 3:
        raise argparse.ArgumentTypeError(f"must be a number of sizes, 3 or more, or 'all'; not {text!r}")
    return window


def _add_fit(subparsers) -> None:
    parser = subparsers.add_parser(
        "fit",
        help="fit a scaling law to a runs table, with bootstrap intervals, a backtest and allocation",
        description="Fit L(N, D) = E + A/N^alpha + B/D^beta (or a power law, or Kaplan's law) to a runs table "
                    "by multi-start robust regression (Huber on log L), with bootstrap intervals, a backtest "
                    "on the largest held-out size(s) and, for the joint law, compute-optimal allocation.",
        epilog="examples:\n"
               "  scalefit fit data/runs.parquet --out out/fit\n"
               "  scalefit fit data/runs.parquet --law power --x flops --points frontier   # Henighan's L(C)\n"
               "  scalefit fit runs.csv --map 'Model Size=params' --map Tokens=tokens\n"
               "  scalefit fit ladders.csv --family c4            # one family of a table that holds several\n"
               "  scalefit fit wandb_export.csv --columns cols.toml\n"
               "  scalefit fit data/runs.parquet --fix alpha=0.34 --bootstrap 200 --json fit.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", metavar="RUNS", help="runs table (parquet or CSV)")
    parser.add_argument("--law", choices=("auto", "chinchilla", "power", "kaplan"), default="auto",
                        help="auto (default): choose among the free joint law, alpha=beta, E fixed (with --fix "
                             "E=...) and Kaplan's law by an expanding-window backtest (docs/trust.md); "
                             "chinchilla: the free joint law")
    parser.add_argument("--x", choices=("params", "tokens", "flops"), default="params",
                        help="the power law's variable (default params)")
    parser.add_argument("--points", choices=("tuned", "final", "all", "frontier"), default="tuned",
                        help="tuned: best lr/batch setting per (N, D), seeds averaged (default); final: every "
                             "run's last point; all: every evaluation (runs resampled together); frontier: "
                             "the loss-compute envelope of every evaluation (with --law power --x flops)")
    parser.add_argument("--family", metavar="NAME",
                        help="fit the runs of this family only (required when the family column holds several)")
    parser.add_argument("--isoflop-window", type=_window, metavar="K|all",
                        help="approach 2: fit each IsoFLOP parabola to the K sizes nearest its lowest loss "
                             "(default 7, chosen on Epoch's Chinchilla points, docs/allocation.md; all: every "
                             "size); the summary shows the exponent under other windows too")
    parser.add_argument("--loss", choices=("huber", "mse_log", "mse"), default="huber")
    parser.add_argument("--delta", type=float, default=1e-3, help="Huber threshold on log L (default 1e-3)")
    parser.add_argument("--fix", action="append", default=[], metavar="NAME=VALUE",
                        help="hold a parameter at a value, e.g. alpha=0.34 (repeatable)")
    parser.add_argument("--tie", metavar="A,B", help="fit two parameters as one, e.g. alpha,beta")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help="bootstrap refits for the intervals (default 1000; 0: none)")
    parser.add_argument("--bootstrap-scheme", choices=("auto", "residual", "bayesian", "multinomial"),
                        default="auto",
                        help="residual: the fit plus smoothed residuals (calibrated for the near-L1 Huber fit); "
                             "bayesian: Exp(1) weights per run or point; multinomial: resampling with "
                             "replacement (Epoch's); auto (default): residual for one point per run whose "
                             "residuals show no misfit or uneven noise, else bayesian")
    parser.add_argument("--holdout-largest", type=int, default=1, metavar="K",
                        help="backtest: refit without the K largest sizes and predict them (default 1; 0: off)")
    parser.add_argument("--budgets", type=floats, metavar="C1,C2,...",
                        help="compute budgets [FLOP] for the allocation table (default: the data's range "
                             "and 3 decades beyond)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--level", type=_level, default=0.95, help="coverage of every interval (default 0.95)")
    parser.add_argument("--out", metavar="DIR", help="write fit.json, report.md and PNG plots here")
    parser.add_argument("--json", metavar="FILE", help="write fit.json here too")
    add_input_options(parser)
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

    from scalefit.study import fit_runs

    if args.budgets is not None and not (args.budgets and all(math.isfinite(c) and c > 0 for c in args.budgets)):
        raise ScalefitInputError("--budgets must be one or more finite positive FLOP budgets, e.g. 1e18,1e20")
    study = fit_runs(
        load_input(args, keep="all" if args.points in ("all", "frontier") else "final"),  # final: loads fast
        law=args.law, x=args.x, points=args.points, holdout_largest=args.holdout_largest, budgets=args.budgets,
        loss=args.loss, delta=args.delta, fix=_parse_fix(args.fix) or None, tie=_parse_tie(args.tie),
        bootstrap=args.bootstrap, bootstrap_scheme=args.bootstrap_scheme, seed=args.seed, level=args.level,
        family=args.family, **({} if args.isoflop_window is None
           else {"isoflop_window": None if args.isoflop_window == "all" else args.isoflop_window}),
    )
    print(study.summary())
    document = study.to_dict()
    with staged_output_dir(args.out) as out:
        if out is not None:
            from scalefit.report import write_fit_outputs

            write_fit_outputs(study, out)
        if args.json:  # inside the block: if it fails, the output folder is not put in place either
            write_json(args.json, document)
    return result_exit_code(study.result)


def _add_predict(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="predicted loss of planned runs from a fit.json, with intervals",
        description="Predict the loss at (N, D) from a saved fit, with intervals of the mean, of a single "
                    "run and for planning (which also carries the extrapolation error the fit's rollout "
                    "measured), and the distance beyond the fitted data in decades (a warning past one).",
        epilog="example:\n  scalefit predict --fit out/fit/fit.json --params 1e6,3e6 --tokens 2e7",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--fit", required=True, metavar="FIT_JSON", help="fit.json written by scalefit fit")
    parser.add_argument("--params", type=floats, metavar="N[,N...]", help="non-embedding parameters")
    parser.add_argument("--tokens", type=floats, metavar="D[,D...]", help="training tokens")
    parser.add_argument("--flops", type=floats, metavar="C[,C...]", help="training FLOPs (power law in flops)")
    parser.add_argument("--level", type=_level, help="coverage of the intervals (default: the fit's, 0.95)")
    parser.add_argument("--json", metavar="FILE", help="also write the predictions as JSON")
    parser.set_defaults(run=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    import sys

    import numpy as np
    import pandas as pd

    from scalefit.fitting.extrapolation import extrapolation_distance, extrapolation_warning
    from scalefit.study import load_fit

    result = load_fit(args.fit)
    code = check_saved_result(result, args.fit, "predict")  # a failed fit's numbers are not shown
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
    level = result.level if args.level is None else args.level
    band = result.predict(frame, level=level)
    distance = extrapolation_distance(result, frame)
    table = frame.assign(loss=band["mean"], mean_lo=band["mean_lo"], mean_hi=band["mean_hi"],
                         run_lo=band["obs_lo"], run_hi=band["obs_hi"], plan_lo=band["plan_lo"],
                         plan_hi=band["plan_hi"]).join(distance)
    if not len(result.usable_draws):
        heading = ("no intervals: " + (f"they are not identified ({result.interval_issue})" if result.interval_issue
                                       else "the fit has no bootstrap draws (refit with --bootstrap N for them)"))
    else:
        heading = (f"{100 * level:g} % intervals of the mean (mean_lo, mean_hi), of one run (run_lo, run_hi) and "
                   "for planning (plan_lo, plan_hi: also the extrapolation error a rollout measured"
                   + ("" if result.extrapolation_error else "; none was measured") + ")")
    print(f"{result.law!r} from {args.fit}; {heading}; decades = distance beyond the fitted data")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    warning = extrapolation_warning(distance)
    if warning:
        print(warning, file=sys.stderr)
    if args.json:
        write_json(args.json, {"fit": str(args.fit), "level": level, "status": result.status,
                               "reasons": list(result.reasons), "predictions": table.to_dict(orient="records")})
    return code


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
    parser.add_argument("--flops", type=floats, required=True, metavar="C[,C...]", help="budgets [FLOP]")
    parser.add_argument("--level", type=_level, help="coverage of the intervals (default: the fit's, 0.95)")
    parser.add_argument("--json", metavar="FILE", help="also write the allocation as JSON")
    parser.set_defaults(run=_run_allocate)


def _run_allocate(args: argparse.Namespace) -> int:
    import math
    import sys

    from scalefit.allocation import joint_law_allocation
    from scalefit.fitting.extrapolation import extrapolation_warning
    from scalefit.study import load_fit

    if not args.flops or not all(math.isfinite(c) and c > 0 for c in args.flops):
        raise ScalefitInputError("--flops must be one or more finite positive budgets, e.g. --flops 1e18,1e20")
    result = load_fit(args.fit)
    code = check_saved_result(result, args.fit, "allocate")  # a failed fit's numbers are not shown
    allocation = joint_law_allocation(result, args.flops, level=args.level)
    print(allocation.summary())
    warning = extrapolation_warning(allocation.table, "the compute-optimal allocation")
    if warning:
        print(warning, file=sys.stderr)
    if args.json:
        write_json(args.json, allocation.to_dict())  # intervals are NaN (null) without bootstrap draws
    return code


SUBCOMMANDS = [_add_fit, _add_predict, _add_allocate]
