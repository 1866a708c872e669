"""gdkit: how does each optimizer behave on this objective, across every learning rate, start
point and seed? One compiled JAX program answers it.

  >>> import gdkit
  >>> r = gdkit.sweep("rosenbrock", "adam", grid={"learning_rate": [1e-2, 1e-1]},
  ...                 steps=2000, tol=1e-6, progress=False)
  >>> r.best()["learning_rate"]
  0.1
"""

from gdkit import objectives, optimizers, starts
from gdkit._precision import enable_x64
from gdkit.engine.checkpoint import Checkpoint
from gdkit.engine.devices import use_all_cpu_cores
from gdkit.engine.sweep import sweep
from gdkit.gradcheck import GradCheck, check_grad
from gdkit.result import SweepResult

__version__ = "0.1.0"

__all__ = [
    "Checkpoint",
    "GradCheck",
    "SweepResult",
    "__version__",
    "check_grad",
    "enable_x64",
    "objectives",
    "optimizers",
    "starts",
    "sweep",
    "use_all_cpu_cores",
]
