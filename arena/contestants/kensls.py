"""line_search (self ruleset): KenSLS, the Armijo line search on the Adam momentum direction
at the class defaults (README.md §4)."""

from __future__ import annotations

from arena.contestants import _line_search
from line_search.sls import KenSLS

NAME = "kensls"
RULESET = "self"
SEARCH_SPACE: dict = {}

init = _line_search.make_init(KenSLS)
step = _line_search.step
