"""sgd_genfunc: mini-batch SGD dynamics via generating functions (Velikanov, Kuznedelev, Yarotsky, arXiv 2206.11124).

Subpackages: `sgd_genfunc.theory` (E2-E10), `sgd_genfunc.training` (sampled regimes); modules `problems`, `ntk`,
`schedules`. Import from those modules; this file only names them.
"""

__all__ = ["theory", "training", "problems", "ntk", "schedules"]
