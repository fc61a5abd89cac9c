"""`tj.nn`: modules, layers, losses, `functional` and `init`, with PyTorch's names and semantics.

Everything computes with Tensor ops only (so models trace and compile); parameter names and
state dict keys are PyTorch's.
"""
from . import functional, init  # noqa: F401
from .container import ModuleDict, ModuleList, Sequential
from .conv import AvgPool2d, Conv2d, MaxPool2d
from .layers import (ELU, GELU, BatchNorm1d, BatchNorm2d, Dropout, Embedding, Flatten,
                     Identity, LayerNorm, LeakyReLU, Linear, LogSoftmax, Mish, ReLU, ReLU6,
                     Sigmoid, SiLU, Softmax, Softmin, Softplus, Tanh, Unflatten)
from .loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss,
                   SmoothL1Loss)
from .module import Module
from .parameter import Parameter
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell

__all__ = [
    "functional", "init", "Module", "Parameter", "Sequential", "ModuleList", "ModuleDict",
    "Linear", "Identity", "Flatten", "Unflatten", "Conv2d", "MaxPool2d", "AvgPool2d", "ReLU",
    "ReLU6", "LeakyReLU", "ELU", "GELU", "SiLU", "Mish", "Softplus", "Tanh", "Sigmoid",
    "Softmax", "LogSoftmax", "Softmin", "LayerNorm", "BatchNorm1d", "BatchNorm2d", "Embedding",
    "Dropout", "RNNBase", "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "MSELoss",
    "L1Loss", "SmoothL1Loss", "NLLLoss", "CrossEntropyLoss", "BCELoss", "BCEWithLogitsLoss",
]
