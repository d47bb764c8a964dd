"""line_search (self ruleset): SaLSa, the smoothed Armijo line search with the Adam step and its speed-up
at the class defaults (README.md §4)."""

from __future__ import annotations

from arena.contestants import _line_search
from line_search.sls import SaLSa

NAME = "salsa"
RULESET = "self"
SEARCH_SPACE: dict = {}

init = _line_search.make_init(SaLSa)
step = _line_search.step
