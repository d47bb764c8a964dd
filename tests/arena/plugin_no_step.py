"""A broken contestant file: it has init but no step."""

NAME = "plugin_no_step"
RULESET = "self"


def init(model, workload, hparams, budget):
    return None
