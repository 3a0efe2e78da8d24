"""``scalefit recommend`` and ``hparams``: optimal learning rate and batch size."""

from __future__ import annotations

import argparse
import re

from scalefit.cli.common import (
    add_input_options,
    input_load_options,
    print_input_notes,
    result_exit_code,
    staged_output_dir,
    write_json,
)

#: ``hparams --out`` writes one landscape PNG per swept group up to this many; beyond, one grid figure.
MAX_LANDSCAPE_FILES = 8


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
                        help="bootstrap resamples over groups for the intervals (default 1000; 0: none)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")


def _load_sweep(args: argparse.Namespace):
    from scalefit.hyperparams import load_sweep

    sweep = load_sweep(args.runs, smooth_last=args.smooth_last, **input_load_options(args))
    print_input_notes(args, sweep)
    return sweep


def _fit_hparam_laws_from_args(args: argparse.Namespace):
    from scalefit.hyperparams import fit_hparams

    return fit_hparams(
        _load_sweep(args), group_by=args.group_by, tolerance=args.tolerance,
        divergence_factor=args.divergence_factor or None, fit_on=args.fit_on, n_bootstrap=args.bootstrap,
        level=args.level, seed=args.seed, source=str(args.runs),
    )


def _add_recommend(subparsers) -> None:
    parser = subparsers.add_parser(
        "recommend",
        help="peak learning rate and batch size for a planned run, with intervals",
        description="Recommend the peak LR and batch size for a run of N non-embedding parameters on D "
                    "tokens, from laws fitted on your own LR x batch-size sweep (--runs) or from a "
                    "published preset (--preset steplaw, the default; --preset deepseek). With --runs, the "
                    "preset is shown beside the refit. Prints the setup the numbers assume and how many "
                    "decades the target lies beyond the fitted N, D.",
        epilog="examples:\n"
               "  scalefit recommend --preset steplaw --params 7e9 --tokens 1.4e12\n"
               "  scalefit recommend --runs sweep.parquet --params 1e9 --tokens 2e10 --seq-len 4096 "
               "--json rec.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--params", type=float, required=True, metavar="N",
                        help="non-embedding parameters of the planned model")
    parser.add_argument("--tokens", type=float, required=True, metavar="D", help="training tokens")
    parser.add_argument("--runs", metavar="RUNS",
                        help="runs table (parquet or CSV) or Step Law grid CSV to fit the laws on")
    parser.add_argument("--preset", metavar="NAME",
                        help="published laws: steplaw (default) or deepseek; beside the refit with --runs")
    parser.add_argument("--flops", type=float, metavar="C",
                        help="training FLOPs for the compute forms (default 6*N*D)")
    parser.add_argument("--seq-len", type=int, metavar="T",
                        help="sequence length, to give the batch size in sequences too")
    parser.add_argument("--bs-law", choices=("auto", "D", "N_D"), default="auto",
                        help="batch-size law: B*(D) as Step Law, B*(N, D), or auto (default): B*(N, D) when "
                             "its N exponent's interval excludes 0, else B*(D)")
    parser.add_argument("--json", metavar="FILE", help="also write the recommendation as JSON")
    _add_hparam_fit_options(parser)
    add_input_options(parser)
    parser.set_defaults(run=_run_recommend)


def _run_recommend(args: argparse.Namespace) -> int:
    from scalefit.hyperparams import recommend, side_by_side

    options = {"flops": args.flops, "seq_len": args.seq_len, "level": args.level, "bs_law": args.bs_law}
    preset = args.preset or "steplaw"
    if args.runs:
        advice = recommend(args.params, args.tokens, _fit_hparam_laws_from_args(args), **options)
        beside = recommend(args.params, args.tokens, preset, **{**options, "bs_law": "auto"})
        print(advice.summary().as_text())
        print()
        print(side_by_side([advice, beside], notes_of_first=False).as_text())
    else:
        advice, beside = recommend(args.params, args.tokens, preset, **options), None
        print(advice.summary().as_text())
    if args.json:
        record = advice.to_dict()
        if beside is not None:
            record["compared_with"] = [beside.to_dict()]
        write_json(args.json, record)
    return result_exit_code(advice)


def _add_hparams(subparsers) -> None:
    parser = subparsers.add_parser(
        "hparams",
        help="fit optimal LR and batch-size laws from an LR x batch-size sweep",
        description="Locate the optimal LR (and batch size) of every swept (N, D) group of a sweep (3 or more "
                    "values tried), its plateau and an interpolated optimum, then fit lr*(N, D) = c N^a D^b, "
                    "B*(D) = c D^g, B*(N, D) = c N^h D^g and the compute forms lr*(C), B*(C) with bootstrap "
                    "intervals over groups. Exit 1 when a law is suspect (few optima) or unidentified.",
        epilog="examples:\n"
               "  scalefit hparams sweep.parquet --out hparams/\n"
               "  scalefit hparams data/dense_lr_bs_loss.csv --fit-on plateau --json laws.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", metavar="RUNS", help="runs table (parquet or CSV) or Step Law grid CSV")
    parser.add_argument("--out", metavar="DIR",
                        help="write hparams.json, groups.csv, plateau.csv, excluded.csv, summary.txt and plots")
    parser.add_argument("--json", metavar="FILE", help="write the laws and the per-group table as JSON")
    _add_hparam_fit_options(parser)
    add_input_options(parser)
    parser.set_defaults(run=_run_hparams)


def _run_hparams(args: argparse.Namespace) -> int:
    laws = _fit_hparam_laws_from_args(args)
    summary = laws.optima.summary().as_text() + "\n\n" + laws.summary().as_text()
    print(summary)
    with staged_output_dir(args.out) as out:
        if out is not None:
            laws.save(out / "hparams.json")
            (out / "summary.txt").write_text(summary + "\n")
            laws.optima.groups.to_csv(out / "groups.csv", index=False)
            laws.optima.plateau.to_csv(out / "plateau.csv", index=False)
            laws.optima.excluded.to_csv(out / "excluded.csv", index=False)
            _write_plots(laws, out)
    if args.json:
        laws.save(args.json)
    return result_exit_code(laws)


def _write_plots(laws, out) -> None:
    """Landscapes of the swept groups only (one PNG each up to MAX_LANDSCAPE_FILES, else one grid) and every
    identified law against each of its variables."""
    from scalefit.plots import plot_lr_landscapes, save_and_close

    optima = laws.optima
    swept = [position for position, is_swept in enumerate(optima.groups["swept"]) if is_swept]
    (out / "landscapes").mkdir()
    if len(swept) <= MAX_LANDSCAPE_FILES:
        for position in swept:
            slug = re.sub(r"[^A-Za-z0-9.+-]+", "_", optima.groups["group"].iloc[position])
            save_and_close(optima.plot(position), out / "landscapes" / f"{position:02d}_{slug}.png")
    elif swept:
        save_and_close(plot_lr_landscapes(optima, swept), out / "landscapes" / "swept_groups.png")
    for name, law in laws.usable.items():
        for variable in law.variables:
            save_and_close(law.plot(against=variable), out / f"{name}_against_{variable}.png")


SUBCOMMANDS = [_add_recommend, _add_hparams]
