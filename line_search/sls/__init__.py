"""Armijo line search optimizers: SLS, AdamSLS, KenSLS (ACDSA 2024) and SaLSa (IJCNN 2024) on one base."""

from line_search.sls.adam_sls import AdamSLS
from line_search.sls.base import ArmijoLineSearch
from line_search.sls.ken_sls import KenSLS
from line_search.sls.salsa import SaLSA, SaLSa
from line_search.sls.sls import SLS
from line_search.sls.utils import preserve_running_stats

__all__ = ["ArmijoLineSearch", "SLS", "AdamSLS", "KenSLS", "SaLSa", "SaLSA", "preserve_running_stats"]
