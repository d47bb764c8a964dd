"""Multi-tangent forward gradients in true forward mode (Flügel et al., arXiv 2410.17764)."""

from forward_grad.forward_gradient.aggregation import (
    AGGREGATIONS,
    aggregate,
    canonical_aggregation,
    frog_directions,
    frog_from_directions,
    frog_gram,
    frog_solve,
    scaling_factor,
)
from forward_grad.forward_gradient.estimator import ForwardGradient, StepResult, model_blocks
from forward_grad.forward_gradient.jvp import multi_jvp
from forward_grad.forward_gradient.tangents import parse_sampler, sample_tangents
from forward_grad.forward_gradient.theory import (
    expected_chi,
    frog_expected_cos,
    frog_expected_cos2,
    mean_expected_sq_norm_ratio,
    sphere_expected_final,
    sphere_optimal_lr,
    sphere_rate,
)

__all__ = [
    "AGGREGATIONS",
    "ForwardGradient",
    "StepResult",
    "aggregate",
    "canonical_aggregation",
    "expected_chi",
    "frog_directions",
    "frog_expected_cos",
    "frog_expected_cos2",
    "frog_from_directions",
    "frog_gram",
    "frog_solve",
    "mean_expected_sq_norm_ratio",
    "model_blocks",
    "multi_jvp",
    "parse_sampler",
    "sample_tangents",
    "scaling_factor",
    "sphere_expected_final",
    "sphere_optimal_lr",
    "sphere_rate",
]
