"""How long ``scalefit --help``, ``--version`` and ``predict`` take from a cold process (issue #11 targets:
``--help`` under 1.5 s, ``predict`` under 2 s).

    .venv/bin/python benchmarks/cli_startup.py [--repeat 7]

Each command runs ``--repeat`` times as a fresh process (the console script next to this interpreter, else
``python -m scalefit.cli``); the script prints the median and best wall time and the median CPU time
(user + system) of each. Wall time depends on what else the machine runs; CPU time much less, so both are
shown, with the load average. ``predict`` reads a fit.json made here once from ``data/runs.parquet``
(``scalefit fit --bootstrap 200``; not timed). hyperfine, when installed, is used for the wall times instead.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGETS = {"help": 1.5, "predict": 2.0}


def scalefit_command() -> list[str]:
    script = Path(sys.executable).with_name("scalefit")
    return [str(script)] if script.exists() else [sys.executable, "-m", "scalefit.cli"]


def time_once(argv: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def hyperfine(argv: list[str], cwd: Path, repeat: int) -> tuple[float, float]:
    """(median, best) wall seconds measured by hyperfine."""
    with tempfile.NamedTemporaryFile(suffix=".json") as report:
        subprocess.run(["hyperfine", "--warmup", "1", "--runs", str(repeat), "--export-json", report.name,
                        "--style", "none", " ".join(argv)], cwd=cwd, check=True, stdout=subprocess.DEVNULL)
        times = json.loads(Path(report.name).read_text())["results"][0]["times"]
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    base = scalefit_command()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        subprocess.run([*base, "fit", str(REPO / "data" / "runs.parquet"), "--bootstrap", "200", "--json",
                        "fit.json"], cwd=work, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        commands = {
            "help": [*base, "--help"],
            "version": [*base, "--version"],
            "predict": [*base, "predict", "--fit", "fit.json", "--params", "1e7", "--tokens", "2e8"],
        }
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; {args.repeat} runs each; "
              f"{' '.join(base)}")
        for name, argv in commands.items():
            time_once(argv, work)  # warm the file cache
            runs = [time_once(argv, work) for _ in range(args.repeat)]
            walls, cpus = [w for w, _ in runs], [c for _, c in runs]
            median, best = (hyperfine(argv, work, args.repeat) if shutil.which("hyperfine")
                            else (statistics.median(walls), min(walls)))
            target = f"  (target < {TARGETS[name]:g} s)" if name in TARGETS else ""
            print(f"scalefit {name:8s} wall median {median:5.2f} s, best {best:5.2f} s; CPU median "
                  f"{statistics.median(cpus):5.2f} s{target}")


if __name__ == "__main__":
    main()
