"""`tj.nn`: modules, layers, losses, `functional` and `init`, with PyTorch's names and semantics.

Everything computes with Tensor ops only (so models trace and compile); parameter names and
state dict keys are PyTorch's.
"""
from . import functional, init, utils
from .container import ModuleDict, ModuleList, Sequential
from .conv import AvgPool2d, Conv2d, MaxPool2d
from .layers import (
                     ELU,
                     GELU,
                     BatchNorm1d,
                     BatchNorm2d,
                     Dropout,
                     Embedding,
                     Flatten,
                     Identity,
                     LayerNorm,
                     LeakyReLU,
                     Linear,
                     LogSoftmax,
                     Mish,
                     ReLU,
                     ReLU6,
                     Sigmoid,
                     SiLU,
                     Softmax,
                     Softmin,
                     Softplus,
                     Tanh,
                     Unflatten,
)
from .loss import (
                     BCELoss,
                     BCEWithLogitsLoss,
                     CrossEntropyLoss,
                     L1Loss,
                     MSELoss,
                     NLLLoss,
                     SmoothL1Loss,
)
from .module import Module
from .parameter import Parameter
from .parameter_containers import ParameterDict, ParameterList
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell

__all__ = [
                     "ELU",
                     "GELU",
                     "GRU",
                     "LSTM",
                     "RNN",
                     "AvgPool2d",
                     "BCELoss",
                     "BCEWithLogitsLoss",
                     "BatchNorm1d",
                     "BatchNorm2d",
                     "Conv2d",
                     "CrossEntropyLoss",
                     "Dropout",
                     "Embedding",
                     "Flatten",
                     "GRUCell",
                     "Identity",
                     "L1Loss",
                     "LSTMCell",
                     "LayerNorm",
                     "LeakyReLU",
                     "Linear",
                     "LogSoftmax",
                     "MSELoss",
                     "MaxPool2d",
                     "Mish",
                     "Module",
                     "ModuleDict",
                     "ModuleList",
                     "NLLLoss",
                     "Parameter",
                     "ParameterDict",
                     "ParameterList",
                     "RNNBase",
                     "RNNCell",
                     "ReLU",
                     "ReLU6",
                     "Sequential",
                     "SiLU",
                     "Sigmoid",
                     "SmoothL1Loss",
                     "Softmax",
                     "Softmin",
                     "Softplus",
                     "Tanh",
                     "Unflatten",
                     "functional",
                     "init",
                     "utils",
]
