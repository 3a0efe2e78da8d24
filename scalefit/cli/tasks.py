"""``scalefit tasks``: predict downstream accuracy of a large run from a ladder of small ones."""

from __future__ import annotations

import argparse

from scalefit.cli.common import EXIT_OK, EXIT_SUSPECT, floats, write_json, write_result_outputs
from scalefit.errors import ScalefitInputError


def _chance(items: list[str] | None) -> dict[str, float]:
    out = {}
    for item in items or ():
        name, _, value = item.partition("=")
        try:
            out[name] = float(value)
        except ValueError:
            raise ScalefitInputError(f"--chance {item!r}: give TASK=P, e.g. arc_easy=0.25") from None
        if not (name and 0.0 <= out[name] < 1.0):
            raise ScalefitInputError(f"--chance {item!r}: give TASK=P with a chance accuracy 0 <= P < 1")
    return out


def _add_tasks(subparsers) -> None:
    parser = subparsers.add_parser(
        "tasks",
        help="predict each task's accuracy at a target (N, D) from small runs (loss law → sigmoid)",
        description="The two-step method of Bhagia et al. (2024, arXiv:2412.04403): fit a loss law from (N, D) "
                    "to an intermediate (the task's bits per byte, the general loss, or a log-perplexity), fit a "
                    "sigmoid from it to the accuracy on every checkpoint, chain them with a bootstrap over runs, "
                    "and say per task whether the ladder can predict it (checkpoint noise, a backtest on the "
                    "largest size, the interval's width). The runs table holds task/<name>/acc, "
                    "task/<name>/bpb and task/<name>/n_choices columns, or a long form with task, metric, value.",
        epilog="examples:\n"
               "  scalefit tasks runs.parquet --predict-params 1e9 --predict-tokens 2e10\n"
               "  scalefit tasks evals.csv --intermediate ppl --intermediate-task lambada_openai \\\n"
               "      --predict-params 2.5e9,6.4e9 --predict-tokens 3e11 --task arc_easy --task piqa --json t.json\n"
               "  scalefit tasks pythia_evals.csv.gz --map model=run_id --map params_nonembed=params \\\n"
               "      --where variant=standard --where num_fewshot=0 --max-params 1.5e9 --intermediate ppl \\\n"
               "      --task lambada_openai --task arc_easy --chance arc_easy=0.25 --chance lambada_openai=0 \\\n"
               "      --predict-params 2.5e9 --predict-tokens 3e11",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", metavar="RUNS", help="runs table with task columns (parquet or CSV; wide or long)")
    parser.add_argument("--map", action="append", metavar="OLD=NEW", default=[],
                        help="rename a column of the file, e.g. --map model=run_id (repeat)")
    parser.add_argument("--where", action="append", metavar="COLUMN=VALUE", default=[],
                        help="keep only rows with this value, e.g. --where num_fewshot=0 (repeat)")
    parser.add_argument("--max-params", type=float, metavar="N",
                        help="fit only runs of at most N parameters (the ladder; larger runs held out)")
    parser.add_argument("--task", action="append", metavar="NAME", help="a task to analyse (repeat; default all)")
    parser.add_argument("--predict-params", type=floats, required=True, metavar="N",
                        help="target non-embedding parameters (comma-separated for several targets)")
    parser.add_argument("--predict-tokens", type=floats, required=True, metavar="D",
                        help="target training tokens (one for all targets, or one per target)")
    parser.add_argument("--intermediate", choices=("bpb", "loss", "ppl"), default="bpb",
                        help="step 1's target: the task's bits per byte (default), the general loss column, or "
                             "log of a task's perplexity (task/<name>/ppl)")
    parser.add_argument("--intermediate-task", metavar="NAME", help="with --intermediate ppl: whose perplexity")
    parser.add_argument("--step1-law", choices=("chinchilla", "power-flops"), default="chinchilla",
                        help="step 1: Chinchilla's L(N, D) (default) or a power law in C = 6ND")
    parser.add_argument("--chance", action="append", metavar="TASK=P",
                        help="chance accuracy of a task, overriding the table (repeat)")
    parser.add_argument("--fit-floor", action="store_true", help="fit the sigmoid's floor instead of fixing it at chance")
    parser.add_argument("--level", type=float, default=0.95, help="interval coverage (default 0.95)")
    parser.add_argument("--bootstrap", type=int, default=200, metavar="B",
                        help="bootstrap draws over runs (default 200)")
    parser.add_argument("--max-width", type=float, default=10.0, metavar="POINTS",
                        help="not predictable when the interval is wider than this many points (default 10)")
    parser.add_argument("--max-backtest-error", type=float, default=5.0, metavar="POINTS",
                        help="not predictable when the backtest misses the largest size by more (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--out", metavar="DIR", help="write result.json, summary.txt, predictions.csv and plots")
    parser.add_argument("--json", metavar="FILE", help="write the result as JSON (docs/tasks-json.md)")
    parser.set_defaults(run=_run_tasks)


def _run_tasks(args: argparse.Namespace) -> int:
    from scalefit.results import check_level
    from scalefit.runs import parse_column_map
    from scalefit.tasks import Thresholds, fit_task_scaling, load_task_table, targets_frame

    level = check_level(args.level)
    if args.bootstrap < 0:
        raise ScalefitInputError(f"--bootstrap must be >= 0, not {args.bootstrap}")
    if not (args.max_width > 0 and args.max_backtest_error > 0):
        raise ScalefitInputError("--max-width and --max-backtest-error must be positive numbers of points")
    where = {}
    for item in args.where:
        name, sep, value = item.partition("=")
        if not (sep and name and value):
            raise ScalefitInputError(f"--where {item!r}: give COLUMN=VALUE, e.g. --where num_fewshot=0")
        where[name] = value
    table = load_task_table(args.runs, parse_column_map(args.map), where, args.max_params)
    result = fit_task_scaling(
        table, targets_frame(args.predict_params, args.predict_tokens), args.task,
        intermediate=args.intermediate, intermediate_task=args.intermediate_task, chance=_chance(args.chance),
        fit_floor=args.fit_floor, step1=args.step1_law, bootstrap=args.bootstrap, seed=args.seed, level=level,
        thresholds=Thresholds(max_width=args.max_width / 100, max_backtest_error=args.max_backtest_error / 100),
        source=str(args.runs),
    )
    summary = result.summary().as_text()
    print(summary)
    document = {"source": str(args.runs), **result.to_dict()}
    figures = {f"task_{task.replace('/', '_')}": (lambda task=task: result.plot_steps(task))
               for task in result.tasks.index[result.tasks["x_lo"].notna()]}
    write_result_outputs(args.out, result, tables={"predictions": result.prediction()}, figures=figures)
    if args.json:
        write_json(args.json, document)
    return EXIT_OK if result.ok else EXIT_SUSPECT


SUBCOMMANDS = [_add_tasks]
