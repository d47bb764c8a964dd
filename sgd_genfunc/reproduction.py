"""Old name of `sgd_genfunc.claims` (the preregistered checks R1-R6), kept so that earlier imports keep working."""

from sgd_genfunc.claims import *  # noqa: F403
from sgd_genfunc.claims import ALL, Reproduction, Rule, run  # noqa: F401
