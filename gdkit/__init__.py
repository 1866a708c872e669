"""gdkit: how does each optimizer behave on this objective, across every learning rate, start
point and seed? One compiled JAX program answers it.

  >>> import gdkit
  >>> r = gdkit.sweep("rosenbrock", "adam", grid={"learning_rate": [1e-2, 1e-1]},
  ...                 steps=2000, tol=1e-6, progress=False)
  >>> r.best()["learning_rate"]
  0.1

The public names load on first use (PEP 562), so `import gdkit` and the command line's
parser, `gdkit list` and config checks start without importing JAX.
"""

import importlib

__version__ = "0.1.0"

# Public name -> (module, attribute in it; None: the module itself).
_PUBLIC = {
    "Checkpoint": ("gdkit.engine.checkpoint", "Checkpoint"),
    "GradCheck": ("gdkit.gradcheck", "GradCheck"),
    "SweepResult": ("gdkit.result", "SweepResult"),
    "check_grad": ("gdkit.gradcheck", "check_grad"),
    "clear_compilation_cache": ("gdkit._cache", "clear_compilation_cache"),
    "disable_compilation_cache": ("gdkit._cache", "disable_compilation_cache"),
    "enable_compilation_cache": ("gdkit._cache", "enable_compilation_cache"),
    "enable_x64": ("gdkit._precision", "enable_x64"),
    "objectives": ("gdkit.objectives", None),
    "optimizers": ("gdkit.optimizers", None),
    "starts": ("gdkit.starts", None),
    "sweep": ("gdkit.engine.sweep", "sweep"),
    "use_all_cpu_cores": ("gdkit.engine.devices", "use_all_cpu_cores"),
}

__all__ = ["__version__", *sorted(_PUBLIC)]


def __getattr__(name: str):
    try:
        module, attr = _PUBLIC[name]
    except KeyError:
        raise AttributeError(f"module 'gdkit' has no attribute {name!r}") from None
    value = importlib.import_module(module)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
