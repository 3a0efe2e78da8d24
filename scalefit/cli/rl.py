"""``scalefit rl``: RL post-training scaling."""

from __future__ import annotations

import argparse

from scalefit.cli.common import add_input_options, load_input, result_exit_code, staged_output_dir, write_json
from scalefit.errors import ScalefitInputError


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
    add_input_options(parser, flops=False)
    parser.set_defaults(run=_run_rl)


def _run_rl(args: argparse.Namespace) -> int:
    from scalefit.rl import fit_rl

    if args.clip in ("auto", "none"):
        clip = None if args.clip == "none" else "auto"
    else:
        try:
            clip = float(args.clip)
        except ValueError:
            raise ScalefitInputError(f"--clip must be auto, none or a number, not {args.clip!r}") from None
    result = fit_rl(load_input(args, validate=False), x=args.x, metric=args.metric,
                    metric_is_error=args.metric_is_error, loss=args.loss, protocol=args.protocol,
                    variant=args.variant, anchor=args.anchor, bootstrap=args.bootstrap, clip=clip, seed=args.seed)
    summary = result.summary()
    print(summary)
    document = {"source": str(args.runs), **result.to_dict()}
    with staged_output_dir(args.out) as out:
        if out is not None:
            from scalefit.plots import save_and_close

            write_json(out / "result.json", document)
            (out / "summary.txt").write_text(summary + "\n")
            result.points.to_csv(out / "points.csv", index=False)
            save_and_close(result.plot_curves(), out / "curves.png")
            save_and_close(result.plot_efficiency(), out / "efficiency.png")
    if args.json:
        write_json(args.json, document)
    return result_exit_code(result)  # 1 when the fit is suspect, as every command


SUBCOMMANDS = [_add_rl]
