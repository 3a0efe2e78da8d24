"""Sweeps that survive kills and each other, on every executor (runners/common, runners/sweep.py).

Tiny runs (n10k, 8 sequences of 32 bytes per step, 16 evaluation windows, a few dozen steps on the pydoc
corpus) keep each test to a few seconds. Rows are compared with those of an uninterrupted in-process run,
exactly, except the columns that measure time.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from runners import data as data_module
from runners import train as train_module
from runners.common.executors import ExecutorOptions, run_all
from runners.common.files import checkpoint_path, part_path
from runners.common.locks import claim
from runners.common.sweeping import Tally
from runners.sweep import compact, expand, main, sweep
from runners.train import train

REPO = Path(__file__).resolve().parents[1]
TIMING = getattr(train_module, "TIMING_COLUMNS", ("wall_time",))
STEP_TOKENS = 8 * 32


def write_spec(folder: Path, out: Path, steps: int, lrs: list[float]) -> Path:
    """A sweep spec of len(lrs) tiny n10k runs of ``steps`` steps, checkpointed every 10 steps."""
    spec = folder / "tiny.toml"
    spec.write_text(f'[sweep]\nname = "tiny"\nout = "{out}"\n\n[defaults]\nseq_len = 32\nbatch_size = {STEP_TOKENS}\n'
                    'corpus = "pydoc"\neval_windows = 16\ncheckpoint_every = 10\n\n'
                    f'[[grid]]\nsize = ["n10k"]\ntokens = [{steps * STEP_TOKENS}]\nlr = {lrs!r}\n')
    return spec


def untimed(rows: pd.DataFrame) -> pd.DataFrame:
    drop = [c for c in (*TIMING, "device") if c in rows.columns]
    return rows.drop(columns=drop).sort_values(["run_id", "step"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def corpus_cache(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("corpus-cache")
    data_module.prepare_corpus("pydoc", cache)
    return cache


@pytest.fixture
def in_process_cache(corpus_cache, monkeypatch) -> Path:
    """Runs trained in this process read the private corpus cache."""
    monkeypatch.setattr(data_module, "DEFAULT_CACHE", corpus_cache)
    return corpus_cache


def reference_rows(spec: Path, folder: Path, cache: Path) -> pd.DataFrame:
    """The rows of every run of ``spec`` trained uninterrupted in this process."""
    import tomllib

    runs = expand(tomllib.loads(spec.read_text()))
    return pd.concat([pd.read_parquet(train(r, folder, threads=1, corpus_cache=cache)) for r in runs])


def env_for(cache: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "SCALEFIT_DATA_CACHE": str(cache), "OMP_NUM_THREADS": "1", **extra}


DEBUG = ExecutorOptions(executor="submitit", cluster="debug")  # in-process: fast, no worker start-up


# --- kill and resume ----------------------------------------------------------------------------------------


def test_killed_sweep_leaves_no_orphan_and_its_relaunch_ends_with_exact_rows(corpus_cache, tmp_path):
    """SIGKILL the sweep (the parent) once a checkpoint exists: its pool workers die with it; stale temporary
    files are removed on relaunch; the relaunch resumes and ends with the rows of uninterrupted runs."""
    psutil = pytest.importorskip("psutil")
    out = tmp_path / "sweep"
    spec = write_spec(tmp_path, out, steps=100, lrs=[5e-3])
    args = [sys.executable, "-m", "runners.sweep", str(spec), "--workers", "1", "--quiet"]
    proc = subprocess.Popen(args, cwd=REPO, env=env_for(corpus_cache), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not list((out / "checkpoints").glob("*.pt")):
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.01)
        workers = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    _, alive = psutil.wait_procs(workers, timeout=15)
    assert workers and not alive, f"pool workers outlived the killed sweep: {alive}"
    resumed = [p.stem for p in (out / "checkpoints").glob("*.pt")]
    assert resumed and not any(part_path(out, run_id).exists() for run_id in resumed)
    # What a writer killed mid-write leaves behind.
    stale = [out / "parts" / f".{resumed[0]}.parquet.k1ll3d_x.tmp", out / "checkpoints" / f".{resumed[0]}.pt.tmp"]
    for temp in stale:
        temp.parent.mkdir(exist_ok=True)
        temp.write_bytes(b"half a file")

    relaunch = subprocess.run(args, cwd=REPO, env=env_for(corpus_cache), capture_output=True, text=True,
                              timeout=300, check=False)
    assert relaunch.returncode == 0, relaunch.stderr[-3000:]
    assert "removed 2 temporary file(s) left by killed writers" in relaunch.stderr
    assert not any(t.exists() for t in stale)
    assert not list((out / "checkpoints").glob("*"))
    rows = compact(out, tmp_path / "runs.parquet")
    expected = reference_rows(spec, tmp_path / "reference", corpus_cache)
    pd.testing.assert_frame_equal(untimed(rows), untimed(expected), check_exact=True)


# --- two sweeps on one folder --------------------------------------------------------------------------------


def summary_counts(stderr: str) -> dict[str, int]:
    line = next(x for x in stderr.splitlines() if x.startswith("sweep: "))
    counts = {}
    for piece in line.removeprefix("sweep: ").split(" (")[0].split(", "):
        number, _, word = piece.partition(" ")
        counts[word] = int(number)
    return counts


def test_two_sweeps_on_one_folder_train_every_run_exactly_once(corpus_cache, tmp_path):
    out = tmp_path / "shared"
    spec = write_spec(tmp_path, out, steps=40, lrs=[3e-3, 5e-3, 1e-2, 2e-2])
    # submitit's debug executor trains in the sweep's own process: two processes in all, no pool start-up.
    args = [sys.executable, "-m", "runners.sweep", str(spec), "--executor", "submitit", "--cluster", "debug",
            "--quiet"]
    procs = [subprocess.Popen(args, cwd=REPO, env=env_for(corpus_cache), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    for proc, (_, stderr) in zip(procs, results):
        assert proc.returncode == 0, stderr[-3000:]
        assert "FAILED" not in stderr and "Traceback" not in stderr
    counts = [summary_counts(stderr) for _, stderr in results]
    assert sum(c.get("trained", 0) for c in counts) == 4, counts  # no run trained twice, none missed
    for c in counts:  # every run either trained here, already there, or finished/held by the other sweep
        assert sum(c.values()) == 4, c
    rows = compact(out, tmp_path / "runs.parquet")
    assert rows["run_id"].nunique() == 4


def test_a_run_held_by_another_worker_is_skipped_not_trained(in_process_cache, tmp_path, capsys):
    out = tmp_path / "sweep"
    spec = write_spec(tmp_path, out, steps=40, lrs=[5e-3, 1e-2])
    held, free = expand(__import__("tomllib").loads(spec.read_text()))
    with claim(out, held.run_id) as got:  # another worker is training it
        assert got
        assert sweep(spec, options=DEBUG, progress=False) == []
    assert part_path(out, free.run_id).exists() and not part_path(out, held.run_id).exists()
    assert "1 held by another sweep" in capsys.readouterr().err
    assert sweep(spec, options=DEBUG, progress=False) == []  # once it is free, a relaunch trains it
    assert part_path(out, held.run_id).exists()


# --- damaged files -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("damage", "where"), [(b"", "checkpoint"), (os.urandom(3000), "checkpoint"),
                                               (b"", "part"), (b"PAR1 not really parquet", "part")],
                         ids=["zero-byte-checkpoint", "garbage-checkpoint", "zero-byte-part", "garbage-part"])
def test_damaged_file_is_quarantined_and_its_run_trained_again(damage, where, in_process_cache, tmp_path, capsys):
    out = tmp_path / "sweep"
    spec = write_spec(tmp_path, out, steps=40, lrs=[5e-3])
    (run,) = expand(__import__("tomllib").loads(spec.read_text()))
    damaged = checkpoint_path(out, run.run_id) if where == "checkpoint" else part_path(out, run.run_id)
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(damage)

    assert sweep(spec, options=DEBUG, progress=False) == []
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("quarantined")]
    assert len(lines) == 1 and run.run_id in lines[0] and f"training {run.run_id}" in lines[0], err
    kept = list((out / "quarantine" / damaged.parent.name).iterdir())
    assert len(kept) == 1 and kept[0].read_bytes() == damage  # moved aside, not deleted
    rows = pd.read_parquet(part_path(out, run.run_id))
    expected = reference_rows(spec, tmp_path / "reference", in_process_cache)
    pd.testing.assert_frame_equal(untimed(rows), untimed(expected), check_exact=True)


@pytest.mark.parametrize("damage", [b"", os.urandom(500)], ids=["zero-byte", "garbage"])
def test_compact_leaves_out_and_quarantines_a_damaged_part(damage, in_process_cache, tmp_path, capsys):
    out = tmp_path / "sweep"
    spec = write_spec(tmp_path, out, steps=40, lrs=[5e-3])
    assert sweep(spec, options=DEBUG, progress=False) == []
    bad = out / "parts" / "gpt-byte-broken.parquet"
    bad.write_bytes(damage)
    assert main([str(spec), "--executor", "submitit", "--cluster", "debug", "--quiet", "--compact",
                 str(tmp_path / "runs.parquet")]) == 0
    err = capsys.readouterr().err
    assert "quarantined parts/gpt-byte-broken.parquet" in err and "Traceback" not in err
    assert not bad.exists() and len(list((out / "quarantine" / "parts").iterdir())) == 1
    assert pd.read_parquet(tmp_path / "runs.parquet")["run_id"].nunique() == 1


# --- file modes ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_files_and_folders_are_readable_by_the_group_as_the_umask_allows(umask, in_process_cache, tmp_path):
    out = tmp_path / "sweep"
    spec = write_spec(tmp_path, out, steps=20, lrs=[5e-3])
    previous = os.umask(umask)
    try:
        assert sweep(spec, options=DEBUG, progress=False) == []
        compact(out, out / "runs.parquet")
    finally:
        os.umask(previous)
    files = [p for p in out.rglob("*") if p.is_file() and p.parent.name != "submitit"]
    folders = [out, *(p for p in out.rglob("*") if p.is_dir() and p.name != "submitit")]
    assert any(p.suffix == ".parquet" for p in files) and any(p.suffix == ".lock" for p in files)
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {oct(0o666 & ~umask)}
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in folders} == {oct(0o777 & ~umask)}


# --- executors -----------------------------------------------------------------------------------------------


def test_relaunch_after_killing_a_submitit_sweep_waits_for_its_jobs_instead_of_resubmitting(corpus_cache,
                                                                                           tmp_path):
    """submitit's local jobs outlive the killed sweep, like SLURM jobs: the relaunch finds them running from
    the job record and waits for them; nothing is submitted twice."""
    pytest.importorskip("submitit")
    out = tmp_path / "sweep"
    spec = write_spec(tmp_path, out, steps=300, lrs=[5e-3])
    args = [sys.executable, "-m", "runners.sweep", str(spec), "--executor", "submitit", "--cluster", "local",
            "--quiet"]
    record = out / "submitit" / "jobs.json"
    proc = subprocess.Popen(args, cwd=REPO, env=env_for(corpus_cache), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not record.exists():
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the jobs were not submitted within 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    submitted = json.loads(record.read_text())
    assert all(entry["cluster"] == "local" and entry["job_id"].isdigit() for entry in submitted.values())
    relaunch = subprocess.run(args, cwd=REPO, env=env_for(corpus_cache), capture_output=True, text=True,
                              timeout=300, check=False)
    assert relaunch.returncode == 0, relaunch.stderr[-3000:]
    assert json.loads(record.read_text()) == submitted  # the same job, not submitted again
    assert summary_counts(relaunch.stderr).get("trained") == 1  # it waited for the job still running
    assert len(list((out / "submitit").glob("*_submitted.pkl"))) == 1
    rows = compact(out, tmp_path / "runs.parquet")
    assert rows["run_id"].nunique() == 1 and rows["step"].iloc[-1] == 300


FAKE_SBATCH = """#!/bin/sh
n=$(($(cat "$FAKE_SLURM/count" 2>/dev/null || echo 0) + 1))
echo $n > "$FAKE_SLURM/count"
cp "$1" "$FAKE_SLURM/sbatch-$n.sh"
echo "Submitted batch job $((4000 + n))"
"""
# sacct: every task of every array asked about is in the state written to $FAKE_SLURM/state.
FAKE_SACCT = """#!/bin/sh
echo "JobID|State|NodeList"
while [ $# -gt 0 ]; do
  if [ "$1" = "-j" ]; then for t in 0 1 2 3; do echo "$2_$t|$(cat "$FAKE_SLURM/state")|node1"; done; shift; fi
  shift
done
"""


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch) -> Path:
    """A fake ``sbatch``/``sacct``/``srun`` on PATH, answering from (and recording into) the folder returned."""
    pytest.importorskip("submitit")
    fake = tmp_path / "fake-slurm"
    (fake / "bin").mkdir(parents=True)
    for name, text in (("sbatch", FAKE_SBATCH), ("sacct", FAKE_SACCT), ("srun", "#!/bin/sh\nexit 1\n")):
        (fake / "bin" / name).write_text(text)
        (fake / "bin" / name).chmod(0o755)
    (fake / "state").write_text("PENDING")
    monkeypatch.setenv("PATH", f"{fake / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM", str(fake))
    return fake


def test_slurm_job_array_requests_resources_and_a_relaunch_never_submits_a_queued_run_twice(fake_slurm, tmp_path,
                                                                                          capsys):
    """The real submitit SLURM path writes the job array's sbatch file; a relaunch asks sacct and resubmits
    only when the recorded jobs are no longer pending or running."""
    import submitit

    fake = fake_slurm
    out = tmp_path / "sweep"
    spec = write_spec(tmp_path, out, steps=40, lrs=[5e-3, 1e-2])
    command = [str(spec), "--executor", "submitit", "--cluster", "slurm", "--device", "cuda", "--no-wait",
               "--partition", "gpu", "--account", "proj42", "--qos", "high", "--cpus-per-task", "8",
               "--mem-gb", "32", "--time-min", "90", "--array-parallelism", "1",
               "--slurm-extra", "constraint=a100", "--slurm-extra=--mail-type=END", "--quiet"]

    assert main(command) == 0
    sbatch = (fake / "sbatch-1.sh").read_text()
    for option in ("--array=0-1%1", "--gpus-per-node=1", "--cpus-per-task=8", "--mem=32GB", "--time=90",
                   "--partition=gpu", "--account=proj42", "--qos=high", "--constraint=a100", "--mail-type=END"):
        assert f"#SBATCH {option}\n" in sbatch, option
    record = json.loads((out / "submitit" / "jobs.json").read_text())
    assert sorted(e["job_id"] for e in record.values()) == ["4001_0", "4001_1"]
    assert "2 queued on the cluster" in capsys.readouterr().err

    for state in ("PENDING", "RUNNING"):  # still queued or running: nothing is submitted again
        (fake / "state").write_text(state)
        submitit.SlurmJob.watcher.clear()
        assert main(command) == 0
        assert (fake / "count").read_text().strip() == "1"
        assert "still queued or running from an earlier launch: job 4001_" in capsys.readouterr().err

    (fake / "state").write_text("CANCELLED by 1000")  # gone: a relaunch submits them again, once
    submitit.SlurmJob.watcher.clear()
    assert main(command) == 0
    assert (fake / "count").read_text().strip() == "2"
    record = json.loads((out / "submitit" / "jobs.json").read_text())
    assert sorted(e["job_id"] for e in record.values()) == ["4002_0", "4002_1"]


def test_ray_tasks_request_gpus_and_cpus(tmp_path):
    ray = pytest.importorskip("ray", reason="ray is an optional extra (pip install scalefit[ray])")
    options = ExecutorOptions(executor="ray", cpus_per_task=1, gpus_per_node=0)
    assert options.ray_resources() == {"num_gpus": 0, "num_cpus": 1}
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        results = dict(run_all(_square, [1, 2, 3], options=options))
    finally:
        ray.shutdown()
    assert results == {1: 1, 2: 4, 3: 9}


def _square(x: int) -> int:
    return x * x


def test_executor_options_map_to_slurm_and_ray_requests():
    options = ExecutorOptions(executor="submitit", cluster="slurm", gpus_per_node=2, cpus_per_task=16,
                              mem_gb=64, timeout_min=30, account="a", qos="q", partition="p",
                              slurm_extra={"constraint": "h100"}, array_parallelism=4)
    assert options.submitit_parameters() == {
        "timeout_min": 30, "gpus_per_node": 2, "cpus_per_task": 16, "mem_gb": 64, "slurm_partition": "p",
        "slurm_account": "a", "slurm_qos": "q", "slurm_additional_parameters": {"constraint": "h100"},
        "slurm_array_parallelism": 4}
    assert options.ray_resources() == {"num_gpus": 2, "num_cpus": 16, "memory": 64 * 2**30}
    with pytest.raises(ValueError, match="unknown executor"):
        ExecutorOptions(executor="kubernetes")


def test_bad_slurm_extra_and_missing_spec_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "x.toml"), "--slurm-extra", "constraint"])
    assert exit_info.value.code == 2 and "is not KEY=VALUE" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.toml")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "missing.toml" in err


def docs_commands(marker: str) -> list[list[str]]:
    """The shell commands of docs/sweeps.md that contain ``marker``, split into words."""
    import shlex

    text = (REPO / "docs" / "sweeps.md").read_text().replace("\\\n", " ")
    return [shlex.split(line) for line in text.splitlines() if marker in line and "python -m " in line]


@pytest.mark.parametrize("command", docs_commands("--cluster slurm"), ids=lambda c: c[2])
def test_the_slurm_commands_of_the_docs_submit_one_gpu_job_array(command, fake_slurm, tmp_path, capsys):
    """Every SLURM sweep command in docs/sweeps.md, as written (into a scratch folder), submits one job array
    that asks for a GPU per run, against the fake sbatch."""
    from runners.rl import sweep as rl_sweep

    module = command[command.index("-m") + 1]
    main_of = {"runners.sweep": main, "runners.rl.sweep": rl_sweep.main}[module]
    args = command[command.index(module) + 1:]
    assert "--no-wait" in args, "the docs' SLURM commands return once the array is queued"
    assert main_of([*args, "--out", str(tmp_path / "sweep")]) == 0
    sbatch = (fake_slurm / "sbatch-1.sh").read_text()
    assert "#SBATCH --array=0-" in sbatch and "#SBATCH --gpus-per-node=1\n" in sbatch
    assert (fake_slurm / "count").read_text().strip() == "1"
    assert "queued on the cluster" in capsys.readouterr().err


def test_an_engine_that_cannot_be_used_here_is_a_one_line_error(tmp_path, capsys):
    import importlib.util
    import shutil

    spec = write_spec(tmp_path, tmp_path / "sweep", steps=20, lrs=[5e-3])
    if shutil.which("srun") is None and importlib.util.find_spec("submitit"):
        assert main([str(spec), "--executor", "submitit", "--cluster", "slurm", "--quiet"]) == 2
        assert "error: submitit cannot use the slurm cluster here" in capsys.readouterr().err
    if importlib.util.find_spec("ray") is None:
        assert main([str(spec), "--executor", "ray", "--quiet"]) == 2
        assert "error: ray is not installed: pip install 'scalefit[runners,ray]'" in capsys.readouterr().err
    assert not list((tmp_path / "sweep").glob("parts/*"))


def test_a_failed_run_is_one_line_naming_the_run_and_the_error():
    class Run:
        run_id = "gpt-byte-n10k-x"

    job_failure = RuntimeError("Job (task=0) failed during processing with trace:\n----\nTraceback (most recent "
                               "call last):\n  File x\nValueError: unknown corpus 'nope'\n")
    tally = Tally()
    assert tally.add(Run(), job_failure) == ["FAILED gpt-byte-n10k-x: RuntimeError: ValueError: unknown corpus 'nope'"]
    assert [err for _, err in tally.failures] == [job_failure] and "1 failed" in tally.summary(already=0)
