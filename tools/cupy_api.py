"""Write the public namespace of the real CuPy package, with signatures, to
``tests/gpu_standin/cupy_api.json``: the list that the tests' CuPy stand-in
(``tests/gpu_standin/``) is checked against, so that it exposes only names CuPy has, with
CuPy's signatures.

CuPy imports without a GPU (it loads CUDA lazily), but needs its wheel and ``cuda-pathfinder``;
nothing else of CUDA is needed to read its namespace. How the file in tests/ was made::

    d=$(mktemp -d) && cd "$d"
    pip download --no-deps cupy-cuda13x            # cupy_cuda13x-14.2.0 (the [gpu] extra)
    unzip -q cupy_cuda13x-*.whl -d site
    pip install --no-deps --target site cuda-pathfinder
    PYTHONPATH="$d/site" python /path/to/nnviz/tools/cupy_api.py

Signatures come from ``inspect.signature`` where CuPy's functions are Python, else from the
first line of the docstring that Cython embeds (``name(args) -> ret``); annotations are
dropped, ``self`` is dropped from methods. Run it again on a newer CuPy and commit the diff.
"""
import inspect
import json
import os
import re
import sys


def _clean(sig):
    """``(a, b=1, *, c=None)`` without annotations, from an inspect.Signature."""
    params = [p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()]
    return str(sig.replace(parameters=params, return_annotation=inspect.Signature.empty))


def _from_doc(obj):
    doc = (getattr(obj, "__doc__", None) or "").strip().split("\n")[0]
    m = re.match(r"^[\w.]+(\(.*\))(\s*->.*)?$", doc)
    if not m:
        return None
    s = m.group(1).replace("\\*", "*")
    s = re.sub(r"^\(self,\s*", "(", s)
    s = re.sub(r"^\(self\)", "()", s)
    return s


def signature(obj, method=False):
    try:
        s = _clean(inspect.signature(obj))
        if method:
            s = re.sub(r"^\(self,\s*", "(", s)
            s = re.sub(r"^\(self\)", "()", s)
        return s
    except (TypeError, ValueError):
        return _from_doc(obj)


def kind(obj):
    import cupy
    import numpy
    if inspect.ismodule(obj):
        return "module"
    if isinstance(obj, cupy.ufunc):
        return "ufunc"
    if isinstance(obj, type):
        return "numpy type" if obj.__module__.startswith("numpy") else "class"
    if callable(obj):
        return "function"
    if isinstance(obj, (numpy.generic, int, float, complex, type(None), str, tuple)):
        return "constant"
    return type(obj).__name__


def names(obj, dunder=False, method=False):
    out = {}
    for n in sorted(dir(obj)):
        if n.startswith("_") and not (dunder and n.startswith("__") and n.endswith("__")):
            continue
        try:
            v = getattr(obj, n)
        except Exception as e:            # a lazy submodule that needs CUDA
            out[n] = {"kind": "unavailable", "signature": None, "error": type(e).__name__}
            continue
        k = kind(v)
        if method and not callable(v):
            k = "attribute"
        out[n] = {"kind": k, "signature": signature(v, method) if callable(v) and k != "numpy type"
                  and not isinstance(v, type) else None}
        if isinstance(v, type) and k == "class":
            init = signature(v)
            out[n]["signature"] = init
    return out


def main():
    import cupy
    import cupyx
    api = {
        "made_by": "tools/cupy_api.py (see its docstring)",
        "cupy_version": cupy.__version__,
        "cupy": names(cupy),
        "cupy.ndarray": names(cupy.ndarray, dunder=True, method=True),
        "cupy.ufunc": names(cupy.add, method=True),
        "cupy.ElementwiseKernel": names(cupy.ElementwiseKernel, dunder=False, method=True),
        "cupyx": names(cupyx),
        "cupy.cuda": names(cupy.cuda),
        "cupy.cuda.runtime": names(cupy.cuda.runtime),
        "cupy.cuda.Stream": names(cupy.cuda.Stream, method=True),
        "cupy.cuda.Device": names(cupy.cuda.Device, method=True),
        "cupy.cuda.MemoryPool": names(cupy.cuda.MemoryPool, method=True),
    }
    api["cupy.ElementwiseKernel"]["__call__"] = {"kind": "function", "signature": _from_doc(
        cupy.ElementwiseKernel.__call__)}
    out = os.path.join(os.path.dirname(__file__), "..", "tests", "gpu_standin", "cupy_api.json")
    with open(out, "w") as f:
        json.dump(api, f, indent=0, sort_keys=True)
        f.write("\n")
    print(f"{out}: CuPy {cupy.__version__}, {len(api['cupy'])} names in cupy, "
          f"{len(api['cupy.ndarray'])} on cupy.ndarray", file=sys.stderr)


if __name__ == "__main__":
    main()
