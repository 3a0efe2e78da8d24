"""``scalefit rl``: RL post-training scaling."""

from __future__ import annotations

import argparse

from scalefit.cli.common import add_input_options, load_input, result_exit_code, write_result_outputs
from scalefit.errors import ScalefitInputError


def _add_rl(subparsers) -> None:
    parser = subparsers.add_parser(
        "rl",
        help="fit the RL post-training scaling law log L = -k(N) log X + E(N) and backtest it",
        description="Fit Tan et al. (2025)'s law of RL post-training, log L = -k(N) log X + E(N) with "
                    "k(N) = K_max / (1 + N0/N), to the test error L = 1 - pass@1 of RL runs of several model "
                    "sizes, with segment-bootstrap intervals at --level; optionally backtest it: early:F fits the first "
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
                        help="segment-bootstrap replicates for the intervals (default 200; 0: none)")
    parser.add_argument("--level", type=float, default=0.95, help="coverage of every interval (default 0.95)")
    parser.add_argument("--clip", default="auto", metavar="EPS",
                        help="move L = 0 or 1 to EPS or 1 - EPS: auto (half a held-out problem, default), "
                             "a number, or none to stop with an error")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--out", metavar="DIR",
                        help="write result.json (docs/rl-json.md), summary.txt, points.csv, per_size.csv, "
                             "predictions.csv, backtest.csv (with --protocol) and plots")
    parser.add_argument("--json", metavar="FILE", help="write the result as JSON (docs/rl-json.md)")
    add_input_options(parser, flops=False)
    parser.set_defaults(run=_run_rl)


def _run_rl(args: argparse.Namespace) -> int:
    from scalefit.results import check_level
    from scalefit.rl import fit_rl

    level = check_level(args.level)
    if args.clip in ("auto", "none"):
        clip = None if args.clip == "none" else "auto"
    else:
        try:
            clip = float(args.clip)
        except ValueError:
            raise ScalefitInputError(f"--clip must be auto, none or a number, not {args.clip!r}") from None
    result = fit_rl(load_input(args, validate=False), x=args.x, metric=args.metric,
                    metric_is_error=args.metric_is_error, loss=args.loss, protocol=args.protocol,
                    variant=args.variant, anchor=args.anchor, bootstrap=args.bootstrap, clip=clip, seed=args.seed,
                    level=level, source=str(args.runs))
    print(result.summary().as_text())
    tables = {"points": result.points.set_index("run_id"), "per_size": result.per_size,
              "predictions": result.prediction()}
    if result.protocol is not None:
        tables["backtest"] = result.backtest_table()
    write_result_outputs(args.out, result, tables=tables,
                         figures={"curves": result.plot_curves, "efficiency": result.plot_efficiency})
    if args.json:
        result.save(args.json)
    return result_exit_code(result)  # 0 ok, 1 suspect or failed, as every command


SUBCOMMANDS = [_add_rl]
