"""What every ``scalefit`` command shares: exit codes, safe output paths, staged output folders, parsers."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from scalefit.errors import ScalefitInputError
from scalefit.io import atomic_write_text, write_json

__all__ = [
    "EXIT_FAILED", "EXIT_INPUT_ERROR", "EXIT_OK", "EXIT_SUSPECT", "OUTPUT_MARKER", "FailedResultError",
    "atomic_write_text", "check_json_path", "check_out", "check_outputs", "check_saved_result", "floats",
    "input_error_message", "pipe_safe_stdout", "result_exit_code", "staged_output_dir", "write_json",
    "write_result_outputs",
]

EXIT_OK = 0
EXIT_SUSPECT = 1  # fitted, but the numbers are flagged (suspect or failed)
EXIT_FAILED = 1  # scalefit itself failed (an internal error): no numbers to trust
EXIT_INPUT_ERROR = 2

OUTPUT_MARKER = ".scalefit-output"  # written into every --out folder: only such a folder is ever replaced

# Options naming files a command reads, and files (not folders) it writes.
INPUT_OPTIONS = ("runs", "fit", "rl", "check", "columns", "run_info")
FILE_OUTPUT_OPTIONS = ("json", "sweep")


def result_exit_code(result) -> int:
    """0 when ``result`` can be trusted, 1 when it is suspect or failed.

    Reads the result protocol's ``status`` ("ok" | "suspect" | "failed") when there is one, else a
    scipy-style ``success`` flag (on the result, or on its ``fit``/``result``).
    """
    status = getattr(result, "status", None)
    if isinstance(status, str):
        return EXIT_OK if status == "ok" else EXIT_SUSPECT
    for holder in (result, getattr(result, "fit", None), getattr(result, "result", None)):
        success = getattr(holder, "success", None)
        if isinstance(success, bool | int):
            return EXIT_OK if success else EXIT_SUSPECT
    return EXIT_OK


class FailedResultError(Exception):
    """A saved result whose numbers must not be shown (a fit that failed): one line on stderr, exit 1."""


def check_saved_result(result, source: str | os.PathLike, command: str) -> int:
    """Refuse a loaded result whose fit failed, warn (one line) about a suspect one; return the exit code.

    A failed fit's numbers are not shown (:class:`FailedResultError`); a suspect one's are, flagged, exit 1.
    """
    status = getattr(result, "status", "ok")
    reasons = "; ".join(getattr(result, "reasons", ()) or ()) or "no reason recorded"
    if status == "failed":
        raise FailedResultError(f"{source} records a failed fit ({reasons}); its numbers are not shown: refit "
                                "(scalefit fit --json) with more or better points, or other --fix/--tie options")
    if status != "ok":
        print(f"scalefit {command}: warning: {source} is {status}: {reasons}", file=sys.stderr)
    return result_exit_code(result)


def _inputs(args: argparse.Namespace) -> list[Path]:
    found = []
    for name in INPUT_OPTIONS:
        value = getattr(args, name, None)
        if isinstance(value, str | os.PathLike) and str(value):
            found.append(Path(value).resolve())
    return found


def _contains(folder: Path, path: Path) -> bool:
    return path == folder or folder in path.parents


def check_out(out: str | os.PathLike | None, inputs: Iterable[str | os.PathLike] = ()) -> None:
    """Refuse an ``--out`` folder that replacing would destroy something scalefit did not write.

    ``--out DIR`` is written whole and replaces DIR, so DIR must be new, empty, or a folder scalefit wrote
    before (it holds ``.scalefit-output``); never a file, the working directory or a folder above it, the
    root or home folder, or a folder holding one of the command's ``inputs``.
    """
    if out is None:
        return
    if not str(out).strip():
        raise ScalefitInputError("--out is empty; name a new folder to write, e.g. --out out/fit")
    path = Path(out)
    target = path.resolve()
    if path.exists() and not path.is_dir():
        raise ScalefitInputError(f"--out {out} is a file, not a folder; name a new folder to write")
    cwd = Path.cwd().resolve()
    if _contains(target, cwd) or target in (Path(target.anchor), Path.home().resolve()):
        raise ScalefitInputError(f"--out {out} is the working directory, a folder above it, or your home or root "
                                 "folder, which --out would replace whole; name a new folder, e.g. --out out/fit")
    for source in map(Path, inputs):
        if _contains(target, source.resolve()):
            raise ScalefitInputError(f"--out {out} holds the input {source}, which --out would delete; name a "
                                     "new folder, e.g. --out out/fit")
    if path.is_dir() and not (path / OUTPUT_MARKER).exists() and any(path.iterdir()):
        raise ScalefitInputError(f"--out {out} is a folder with files scalefit did not write (it has no "
                                 f"{OUTPUT_MARKER}); --out replaces its folder whole, so name a new or empty folder "
                                 f"(an older scalefit's output: delete it, or add an empty {OUTPUT_MARKER} file)")


def check_json_path(option: str, path: str | os.PathLike | None, inputs: Iterable[str | os.PathLike] = ()) -> None:
    """Refuse a file output (``--json``, ``--sweep``) that is a folder or one of the command's inputs."""
    if path is None:
        return
    if not str(path).strip():
        raise ScalefitInputError(f"--{option} is empty; name a file to write, e.g. --{option} result.json")
    target = Path(path)
    if target.is_dir() or str(path).endswith(("/", os.sep)):
        raise ScalefitInputError(f"--{option} {path} is a folder; name a file to write, e.g. {Path(path) / 'out.json'}")
    resolved = target.resolve()
    for source in map(Path, inputs):
        if resolved == source.resolve():
            raise ScalefitInputError(f"--{option} {path} is the command's input, which it would overwrite; name "
                                     "another file")
    if target.parent.exists() and not target.parent.is_dir():
        raise ScalefitInputError(f"--{option} {path}: {target.parent} is a file, not a folder")


def check_outputs(args: argparse.Namespace) -> None:
    """Every output option of a parsed command line, checked against its inputs before any work."""
    inputs = _inputs(args)
    out = getattr(args, "out", None)
    check_out(out, inputs)
    for option in FILE_OUTPUT_OPTIONS:
        value = getattr(args, option, None)
        check_json_path(option, value, inputs)
        if out is not None and value is not None and _contains(Path(out).resolve(), Path(value).resolve()):
            raise ScalefitInputError(f"--{option} {value} lies inside --out {out}, which is written whole; "
                                     f"write it elsewhere (the folder has its own copy)")


@contextlib.contextmanager
def staged_output_dir(out: str | os.PathLike | None) -> Iterator[Path | None]:
    """Yield a temporary folder whose contents replace ``out`` only if the block succeeds.

    The folder gets the ``.scalefit-output`` marker; an existing ``out`` is replaced only if it is empty or
    carries the marker (:func:`check_out`), so nothing scalefit did not write is ever deleted.
    """
    if out is None:
        yield None
        return
    out = Path(out)
    check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        (tmp / OUTPUT_MARKER).write_text("written by scalefit; --out may replace this folder whole\n")
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_result_outputs(out_dir: str | os.PathLike | None, result, *, tables: Mapping[str, object] | None = None,
                         figures: Mapping[str, object] | None = None) -> Path | None:
    """Write a result's ``--out`` folder whole: ``result.json``, ``summary.txt``, tables and figures.

    ``result`` follows the result protocol (:mod:`scalefit.results`): ``result.json`` is ``result.save``,
    ``summary.txt`` is ``result.summary().as_text()``. ``tables`` maps a name to a DataFrame written as
    ``<name>.csv``; ``figures`` maps a name to a matplotlib Figure, or to a callable returning one (drawn only
    here), saved as ``<name>.png``. Everything is written into a staged folder that replaces ``out_dir`` only
    when all of it succeeded (:func:`staged_output_dir`), so nothing is ever half-written. Returns
    ``out_dir`` as a Path, or None (and writes nothing) when ``out_dir`` is None.
    """
    if out_dir is None:
        return None
    with staged_output_dir(out_dir) as staged:
        result.save(staged / "result.json")
        atomic_write_text(staged / "summary.txt", result.summary().as_text() + "\n")
        for name, table in (tables or {}).items():
            table.to_csv(staged / f"{name}.csv")
        if figures:
            from scalefit.plots import save_and_close

            for name, figure in figures.items():
                save_and_close(figure() if callable(figure) else figure, staged / f"{name}.png")
    return Path(out_dir)


_READ_ERROR_MODULES = ("pandas.errors", "pyarrow", "json.decoder")


def input_error_message(err: BaseException, args: argparse.Namespace | None = None) -> str | None:
    """The one-line message for an error the user can fix (bad input), or None for an internal error.

    Besides :class:`ScalefitInputError`: a file that is missing, a folder, unreadable, not text, or not
    parseable by pandas/pyarrow/json (a zero-byte or truncated table, random bytes); the message names the
    command's input files (from ``args``).
    """
    if isinstance(err, ScalefitInputError):
        return str(err)
    if isinstance(err, FileNotFoundError | IsADirectoryError | NotADirectoryError | PermissionError):
        return f"{err.filename or ''}: {err.strerror or err}".lstrip(": ")
    files = " or ".join(str(getattr(args, name)) for name in INPUT_OPTIONS if getattr(args, name, None))
    files = files or "the input"
    if isinstance(err, UnicodeDecodeError):
        return (f"cannot read {files} as text ({err.reason} at byte {err.start}); give a parquet or UTF-8 "
                "CSV file")
    if any(cls.__module__.startswith(_READ_ERROR_MODULES) for cls in type(err).__mro__):
        text = " ".join(str(err).split())[:200]
        return (f"cannot read {files} ({type(err).__name__}: {text}); is it empty, truncated or not a "
                "table? give a complete parquet or CSV file")
    return None


class _PipeSafe:
    """Wraps stdout so that a closed pipe (``| head``) silences the rest of the output instead of raising."""

    def __init__(self, stream):
        self._stream = stream
        self._closed = False

    def write(self, text):
        if not self._closed:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._silence()
        return len(text)

    def flush(self):
        if not self._closed:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._silence()

    def _silence(self):
        self._closed = True
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())  # so the interpreter's final flush does not fail either
            os.close(devnull)

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextlib.contextmanager
def pipe_safe_stdout() -> Iterator[None]:
    """While the block runs, a reader closing the pipe on stdout stops the output, not the work."""
    if sys.stdout is not sys.__stdout__ or sys.stdout is None:  # captured (tests): nothing to protect
        yield
        return
    original = sys.stdout
    sys.stdout = _PipeSafe(original)
    try:
        yield
    finally:
        with contextlib.suppress(BrokenPipeError, OSError):
            sys.stdout.flush()
        sys.stdout = original


def floats(text: str) -> list[float]:
    """``"1e6,2e6"`` or ``"1e6"`` → floats; argparse turns a ValueError into a usage error (exit 2)."""
    return [float(v) for v in text.split(",") if v.strip()]



# --- the input layer: every command that reads a runs table takes these options ---------------------------

INPUT_FORMATS = ("auto", "runs", "wandb", "mlflow")  # scalefit.readers.FORMATS (not imported: pandas is slow)


def add_input_options(parser: argparse.ArgumentParser, *, flops: bool = True) -> None:
    """Add the options that say how to read the user's table: ``--columns``, ``--map``, ``--status-map``,
    ``--format``, ``--run-info`` and (with ``flops``) ``--flops-convention``. :func:`load_input` reads them."""
    group = parser.add_argument_group("reading your own runs (W&B, MLflow, any CSV; docs/bring-your-own-runs.md)")
    group.add_argument("--columns", metavar="COLS_TOML",
                       help="mapping file: [columns] renames, [status] recoding, format, run_info, "
                            "flops_convention; --map and --status-map add to it")
    group.add_argument("--map", action="append", default=[], metavar="OLD=NEW",
                       help="rename a column of the file to a runs-table column, e.g. Name=run_id (repeatable)")
    group.add_argument("--status-map", action="append", default=[], metavar="VALUE=STATUS[,...]",
                       help="recode the status column's values, e.g. finished=ok,crashed=diverged")
    group.add_argument("--format", choices=INPUT_FORMATS, default=None,
                       help="auto (default: told from the columns), runs, wandb (runs or history export) or "
                            "mlflow (long-form metric history)")
    group.add_argument("--run-info", metavar="FILE",
                       help="per-run table joined on the run id: MLflow search_runs export (params.*, status) "
                            "or W&B runs export (config columns)")
    if flops:
        group.add_argument("--flops-convention", choices=("6ND", "6ND+attn"),
                           help="recount FLOPs under this convention (default: as the table says, else 6ND)")


def input_spec(args: argparse.Namespace):
    """The mapping file (``--columns``) with the command line's options on top, as a ``readers.InputSpec``."""
    from scalefit.readers import InputSpec, parse_value_map, read_mapping_file
    from scalefit.runs import parse_column_map

    spec = read_mapping_file(args.columns) if getattr(args, "columns", None) else InputSpec()
    given = parse_column_map(getattr(args, "map", []))
    columns = {old: new for old, new in spec.columns.items() if new not in given.values() and old not in given}
    run_info = getattr(args, "run_info", None)
    return InputSpec(
        columns={**columns, **given},
        status_map={**spec.status_map, **parse_value_map(getattr(args, "status_map", []))},
        format=getattr(args, "format", None) or spec.format,
        flops_convention=getattr(args, "flops_convention", None) or spec.flops_convention,
        run_info=Path(run_info) if run_info else spec.run_info,
    )


def input_load_options(args: argparse.Namespace, *, flops: bool = True) -> dict:
    """The keyword arguments of :func:`scalefit.runs.load_runs` that the input options give."""
    spec = input_spec(args)
    options = {"columns": spec.columns or None, "status_map": spec.status_map or None, "format": spec.format,
               "run_info": spec.run_info}
    return {**options, "flops_convention": spec.flops_convention} if flops else options


def print_input_notes(args: argparse.Namespace, table) -> None:
    """Print the table's notes (rows dropped for want of a loss, ...) to stderr, one line each."""
    for note in table.attrs.get("notes", []):
        print(f"scalefit {getattr(args, 'command', '')}: note: {note}", file=sys.stderr)


def load_input(args: argparse.Namespace, path: str | os.PathLike | None = None, *, keep: str = "all",
               validate: bool = True):
    """Read the command's runs table (``path``, default ``args.runs``) as the input options say.

    ``keep="final"``: only each run's last row (see :func:`scalefit.runs.load_runs`). ``validate=False``
    (the RL table, whose columns differ): renamed and recoded, not checked against the runs-table schema.
    Notes (rows dropped for want of a loss) are printed to stderr, one line each.
    """
    from scalefit.runs import load_runs, read_table

    path = args.runs if path is None else path
    if validate:
        table = load_runs(path, keep=keep, **input_load_options(args))
    else:
        table = read_table(path, **input_load_options(args, flops=False))
    print_input_notes(args, table)
    return table
