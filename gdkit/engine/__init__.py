"""The sweep engine: plan -> lane semantics -> back end -> `SweepResult`.

Nothing here knows of files or configs. The public entry points are re-exported by `gdkit`
(`gdkit.sweep`, `gdkit.Checkpoint`, `gdkit.use_all_cpu_cores`).
"""
