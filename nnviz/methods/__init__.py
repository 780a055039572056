"""The visualization methods that explain a network's response (attribution); see
:mod:`nnviz.methods.attribution` for the papers and equations. The optimization methods
(activation maximization) live in :mod:`nnviz.optimize`."""
from .attribution import (deconvnet, gradcam, gradient, gradient_x_input,
                          guided_backprop, guided_gradcam, integrated_gradients, receptive_field,
                          saliency, score, smoothgrad, strongest_units, top_units, trace)

__all__ = ["saliency", "deconvnet", "guided_backprop", "top_units", "smoothgrad",
           "gradient_x_input", "integrated_gradients", "gradcam", "guided_gradcam", "trace",
           "gradient", "score", "receptive_field", "strongest_units"]
