"""``scalefit plan``: can these runs identify the law (``--check``), and which runs to train next."""

from __future__ import annotations

import argparse
import math

from scalefit.cli.common import add_input_options, atomic_write_text, load_input, write_json
from scalefit.errors import ScalefitInputError


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def _add_plan(subparsers) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="check whether runs can identify a law, and design the runs that best predict a target",
        description="--check RUNS: fit the law and say, per parameter, whether the design identifies it (Fisher "
                    "information of the design and the bootstrap's spread). --target-params N --target-tokens D "
                    "--budget C: propose runs (sizes, token budgets) that minimise the expected planning "
                    "interval of the loss at the target within C FLOPs (greedy Bayesian c-optimal design, "
                    "docs/planning.md), from the fit of --runs or, without runs, from a published law with wide "
                    "spread; write the sweep for runners/ with --sweep.",
        epilog="examples:\n"
               "  scalefit plan --check data/runs.parquet\n"
               "  scalefit plan --runs data/runs.parquet --target-params 3e6 --target-tokens 6e7 --budget 1e15 "
               "--sweep plan.toml\n"
               "  scalefit plan --target-params 7e9 --target-tokens 1.4e11 --budget 6e19",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--check", metavar="RUNS", help="runs table to check (parquet or CSV)")
    parser.add_argument("--runs", metavar="RUNS", help="existing runs to design from (parquet or CSV)")
    parser.add_argument("--target-params", type=_positive, metavar="N", help="parameters of the run to predict")
    parser.add_argument("--target-tokens", type=_positive, metavar="D", help="tokens of the run to predict")
    parser.add_argument("--budget", type=_positive, metavar="C", help="FLOPs (6ND) for the new runs")
    parser.add_argument("--kappa", type=float, metavar="K",
                        help="extrapolation error of log L per decade beyond the data (default 0.015)")
    parser.add_argument("--max-runs", type=int, default=12, metavar="K", help="at most K new runs (default 12)")
    parser.add_argument("--refits", type=int, default=16, metavar="R",
                        help="simulated refits per shortlisted design that measure its parameter variance "
                             "(default 16; 0: the linearised Huber sandwich covariance only, fast)")
    parser.add_argument("--points", choices=("tuned", "final", "all"), default="tuned",
                        help="which points of the table to fit (as scalefit fit; default tuned)")
    parser.add_argument("--bootstrap", type=int, default=400, metavar="B", help="bootstrap refits (default 400)")
    parser.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sweep", metavar="TOML", help="write a sweep config for runners/ training the plan")
    parser.add_argument("--json", metavar="FILE", help="write the check or the plan as JSON")
    add_input_options(parser)
    parser.set_defaults(run=_run_plan)


def _fit(path: str, args: argparse.Namespace):
    from scalefit.study import fit_runs

    keep = "all" if args.points == "all" else "final"
    return fit_runs(load_input(args, path, keep=keep), points=args.points, bootstrap=args.bootstrap, seed=args.seed, holdout_largest=0)


def _run_plan(args: argparse.Namespace) -> int:
    from scalefit.results import check_level

    level = check_level(args.level)
    designing = any(v is not None for v in (args.target_params, args.target_tokens, args.budget))
    if args.check and designing:
        raise ScalefitInputError("give either --check RUNS or a target (--target-params, --target-tokens, --budget)")
    if args.check:
        from scalefit.plan import check_identifiability

        study = _fit(args.check, args)
        result = check_identifiability(study.result.law, study.points, result=study.result, level=level)
        print(result.summary())
        if args.json:
            write_json(args.json, result.to_dict())
        return result.exit_code
    if not designing:
        raise ScalefitInputError("nothing to do: give --check RUNS, or --target-params N --target-tokens D "
                                 "--budget C to design runs")
    missing = [f"--{k.replace('_', '-')}" for k in ("target_params", "target_tokens", "budget")
               if getattr(args, k) is None]
    if missing:
        raise ScalefitInputError(f"a design needs {', '.join(missing)} too")
    if args.max_runs < 1:
        raise ScalefitInputError(f"--max-runs must be 1 or more, not {args.max_runs}")
    if args.refits < 0:
        raise ScalefitInputError(f"--refits must be 0 or more, not {args.refits}")
    from scalefit.plan import cost_table, design_runs, sweep_toml

    result = _fit(args.runs, args).result if args.runs else None
    options = {} if args.kappa is None else {"kappa": args.kappa}
    plan = design_runs(args.target_params, args.target_tokens, args.budget, result=result,
                       max_runs=args.max_runs, refits=args.refits, level=level, seed=args.seed, **options)
    print(plan.summary())
    costs = cost_table(plan.runs)
    if len(costs):
        print(f"\ncost on the runners: {costs['cpu_hours'].sum():.3g} CPU-core hours (measured CPU throughput) "
              f"or {costs['gpu_hours'].sum():.3g} GPU hours (H100 bf16 peak at 40 % MFU, assumed)")
    with_sweep = None
    if args.sweep:
        with_sweep = sweep_toml(plan.runs)
    if args.json:
        write_json(args.json, {**plan.to_dict(), "costs": costs.to_dict(orient="records")})
    if with_sweep is not None:
        atomic_write_text(args.sweep, with_sweep)
        print(f"wrote {args.sweep}: python -m runners.sweep {args.sweep} --workers 2 --threads 1")
    return plan.exit_code


SUBCOMMANDS = [_add_plan]
