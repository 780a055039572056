"""nnviz: the classic visualizations of convolutional networks, every gradient by hand."""
from .models import Net, vgg16, vgg19

__version__ = "0.2.0"
__all__ = ["Net", "vgg16", "vgg19", "__version__"]
