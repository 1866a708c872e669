"""gdkit: how does each optimizer behave on this objective, across every learning rate, start
point and seed? One compiled JAX program answers it.
"""

from gdkit import objectives
from gdkit._precision import enable_x64
from gdkit.gradcheck import GradCheck, check_grad

__version__ = "0.1.0"

__all__ = ["GradCheck", "__version__", "check_grad", "enable_x64", "objectives"]
