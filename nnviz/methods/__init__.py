"""Every visualization method, one module per family, each citing its paper first:

- :mod:`~nnviz.methods.attribution` — saliency, deconvnet, guided backprop, top units,
  SmoothGrad, gradient × input, integrated gradients, trace;
- :mod:`~nnviz.methods.cam` — Grad-CAM and guided Grad-CAM;
- :mod:`~nnviz.methods.lrp` — layer-wise relevance propagation;
- :mod:`~nnviz.methods.maximization` — activation maximization, filters, class models;
- :mod:`~nnviz.methods.deepdream` — DeepDream;
- :mod:`~nnviz.methods.inversion` — inversion of representations;
- :mod:`~nnviz.methods.style` — Gatys style transfer (``GatysLoss``, ``transfer``);
- :mod:`~nnviz.methods.optimize` — the loop, priors and :class:`Result` the optimization
  methods share.
"""
from .attribution import (
                          deconvnet,
                          default_target,
                          gradient,
                          gradient_x_input,
                          guided_backprop,
                          integrated_gradients,
                          saliency,
                          smoothgrad,
                          strongest_units,
                          top_units,
                          trace,
)
from .cam import gradcam, guided_gradcam
from .deepdream import dream
from .inversion import invert
from .lrp import lrp
from .maximization import class_model, filters, maximize
from .optimize import Result
from .style import GatysLoss, transfer

__all__ = ["saliency", "default_target", "deconvnet", "guided_backprop", "top_units", "smoothgrad",
           "gradient_x_input", "integrated_gradients", "gradcam", "guided_gradcam", "trace",
           "gradient", "strongest_units", "lrp", "maximize", "filters", "class_model", "dream",
           "invert", "GatysLoss", "transfer", "Result"]
