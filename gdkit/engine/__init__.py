"""The sweep engine: plan -> lane semantics -> back end -> `SweepResult`.

  sweep.py       `gdkit.sweep` (and `gdkit.sweep.plan`): arguments in, `SweepResult` out
  plan.py        what a sweep will run: lanes, programs, lane chunks, memory, which back end
  resolve.py     optimizer names, dtypes and batch sizes resolved and checked
  lanes.py       the grid, starts and seeds as lanes; chunks of steps and their records
  programs.py    the lane programs every back end shares: init, a chunk of steps with the
                 per-lane bookkeeping (status, tol, divergence), replay, full trajectories
  backends.py    the back-end interface and how a plan picks one (`sweep(engine=...)`)
  xla_cpu.py     XLA on CPU: cache-sized lane tiles, one device per core
  xla_gpu.py     XLA on GPU: a device's lanes as one program, chunks of steps on the device
  runner.py      what the back ends share: lanes sharded over devices, chunks, compile cache
  checkpoint.py  snapshots of a running sweep
  devices.py, distributed.py   one CPU device per core; JAX's multi-process runtime

Nothing here knows of files or configs. The public entry points are re-exported by `gdkit`
(`gdkit.sweep`, `gdkit.Checkpoint`, `gdkit.use_all_cpu_cores`).
"""
