"""nnviz: the classic visualizations of convolutional networks, every gradient by hand."""
from .models import Net, vgg16, vgg19

__version__ = "0.2.0"
__all__ = ["Net", "vgg16", "vgg19", "compare", "__version__"]


def __getattr__(name):
    # nnviz.compare (nnviz.methods.compare.compare), imported on first use
    if name == "compare":
        from .methods.compare import compare
        return compare
    raise AttributeError(f"module 'nnviz' has no attribute {name!r}")
