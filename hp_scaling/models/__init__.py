"""Models of hp_scaling: DAG MLP/CNN and the NAS-Bench-201 TinyNetwork."""

from hp_scaling.models.cnn_dags import DagCNN
from hp_scaling.models.factory import ARCHS, build_model
from hp_scaling.models.mlp_dags import DagMLP
from hp_scaling.models.tiny_network import TinyNetwork

__all__ = ["ARCHS", "DagCNN", "DagMLP", "TinyNetwork", "build_model"]
