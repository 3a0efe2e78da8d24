"""What the language-model runner (:mod:`runners.train`) and the RL runner (:mod:`runners.rl`) share.

Modules:

:mod:`.files`
    The files of a sweep folder: parts and checkpoints saved atomically with shared-readable modes, damaged
    ones detected and moved to ``quarantine/`` (never deleted), stale temporary files removed.
:mod:`.locks`
    ``flock`` locks: one per run (two workers never train the same run) and one for the sweep folder's own
    bookkeeping.
:mod:`.executors`
    One way to run ``fn(item)`` for many items on an engine: a local process pool whose workers die with
    the sweep, submitit (SLURM job arrays, or its local/debug executors) and Ray, with GPU/CPU/memory/time
    requests.
:mod:`.sweeping`
    The sweep driver both runners use: claim a run, tidy its files, train it unless done; tally what each
    worker did; compact the parts into one table.
"""
