"""Former name of :mod:`hp_scaling.maxlr` (the max-LR search library), kept so that old imports keep working.

New code imports ``hp_scaling.maxlr``; the script is ``hp_scaling/lr_sweep.py``.
"""

from hp_scaling.maxlr import *  # noqa: F403
from hp_scaling.maxlr import __all__  # noqa: F401
