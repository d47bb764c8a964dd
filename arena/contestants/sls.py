"""line_search (self ruleset): SLS, the stochastic Armijo line search on the SGD direction
at the class defaults (README.md §4)."""

from __future__ import annotations

from arena.contestants import _line_search
from line_search.sls import SLS

NAME = "sls"
RULESET = "self"
SEARCH_SPACE: dict = {}

init = _line_search.make_init(SLS)
step = _line_search.step
