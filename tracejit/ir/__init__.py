"""The graph IR: Graph/Node/TensorType, text form, verifier, passes. Never imports tensor."""
from .graph import Graph, Node, TensorType, infer_type, print_graph

__all__ = ["Graph", "Node", "TensorType", "infer_type", "print_graph"]
