"""Stand-in for ``cupy.cuda.runtime``: the device count is ``CUPY_STANDIN_DEVICES`` (default 1),
of which ``CUDA_VISIBLE_DEVICES`` (when set) shows its listed entries, as the CUDA runtime does."""
import os as _os


class CUDARuntimeError(RuntimeError):
    pass


def getDeviceCount():
    n = int(_os.environ.get("CUPY_STANDIN_DEVICES", "1"))
    visible = _os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return n
    count = 0
    for entry in visible.split(","):
        entry = entry.strip()
        if not entry.isdigit() or int(entry) >= n:
            break          # the runtime stops at the first invalid entry
        count += 1
    return count


def deviceSynchronize():
    pass
