"""RL post-training runner: a verifiable task, a supervised stage, GRPO, and a resumable sweep.

Modules: :mod:`runners.rl.task` (multi-digit addition with an exact-match reward), :mod:`runners.rl.sft`
(the supervised stage that makes pass@1 start above 0), :mod:`runners.rl.grpo` (one RL run, one row per
evaluation) and :mod:`runners.rl.sweep` (a TOML grid of runs, resumable, compacted into one table).
"""
