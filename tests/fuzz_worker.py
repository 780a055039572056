"""Reads weight files named on stdin with one reader and prints a JSON line per file, so that
a crash of the process (a signal) is caught by the test that started it, which knows the last
file begun. ``python fuzz_worker.py restricted|torch|hdf5``."""
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def digest(sd):
    """{key: [dtype, shape, sha256 of the bytes]} of a dict of arrays (or its type name)."""
    import numpy
    if not isinstance(sd, dict):
        return type(sd).__name__
    out = {}
    for k, v in sd.items():
        if hasattr(v, "detach"):                       # a torch tensor, as the oracle returns it
            import torch
            v = (v.float() if v.dtype == torch.bfloat16 else v).numpy()
        if isinstance(v, numpy.ndarray):
            a = numpy.ascontiguousarray(v)
            out[str(k)] = [a.dtype.newbyteorder("=").str, list(a.shape),
                           hashlib.sha256(a.astype(a.dtype.newbyteorder("=")).tobytes()).hexdigest()]
        else:
            out[str(k)] = type(v).__name__
    return out


def main(reader):
    from nnviz import weights
    from nnviz.errors import InputError
    net = None
    if reader == "hdf5":
        import nnviz
        net = nnviz.vgg16(seed=0, include_top=False)
    for line in sys.stdin:
        path = line.strip()
        if not path:
            continue
        print(json.dumps({"start": path}), flush=True)
        row = {"path": path}
        try:
            if reader == "torch":
                import torch
                row["digest"] = digest(torch.load(path, weights_only=True, map_location="cpu"))
            elif reader == "restricted":
                row["digest"] = digest(weights.read_state_dict(path, loader="restricted"))
            else:
                for step, args in ((weights.read, (path,)), (weights.describe, (path,)),
                                   (weights.load_into, (net, path))):
                    try:
                        step(*args)
                    except InputError:
                        pass
            row["ok"] = True
        except InputError as e:
            row.update(ok=False, error=str(e))
        except Exception as e:                       # the oracle refusing: any exception
            if reader != "torch":
                row.update(ok=False, error=f"{type(e).__name__}: {e}", unexpected=True)
            else:
                row.update(ok=False, error=type(e).__name__)
        print(json.dumps(row), flush=True)
    print(json.dumps({"done": True}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
