"""Test helper: the PyTorch twin of an nnviz ``Net``. There is one implementation, in
``tools/torch_twin.py`` (tools must not import tests); this module loads it and re-exports it,
so that tests can write ``from torch_twin import twin``.

    t = twin(net, dtype=torch.float64)
    acts = t.forward(x, until="conv5_3", rule={"relu5_3": "guided"})   # name -> tensor
"""
import importlib.util
import os
import sys

_NAME = "nnviz_tools_torch_twin"
if _NAME not in sys.modules:
    _path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "tools", "torch_twin.py")
    _spec = importlib.util.spec_from_file_location(_NAME, _path)
    _module = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = _module
    _spec.loader.exec_module(_module)
_twin = sys.modules[_NAME]

RULES = _twin.RULES
RELU_FUNCTIONS = _twin.RELU_FUNCTIONS
BackpropReLU, DeconvnetReLU, GuidedReLU = _twin.BackpropReLU, _twin.DeconvnetReLU, _twin.GuidedReLU
TorchTwin = _twin.TorchTwin
relu_rule = _twin.relu_rule
fixed_switches = _twin.fixed_switches
twin = _twin.twin

__all__ = ["RULES", "RELU_FUNCTIONS", "BackpropReLU", "DeconvnetReLU", "GuidedReLU", "TorchTwin",
           "relu_rule", "fixed_switches", "twin"]
