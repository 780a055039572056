"""Stand-in for ``cupy.cuda``: devices, streams and the memory pool (host-side bookkeeping;
work runs synchronously, so ``synchronize`` has nothing to wait for)."""
from . import memory, runtime  # noqa: F401
from .memory import MemoryPool, PinnedMemoryPool  # noqa: F401


class Device:
    """``cupy.cuda.Device(device=None)``: the current device (0) or the one numbered."""

    def __init__(self, device=None):
        n = runtime.getDeviceCount()
        self.id = 0 if device is None else int(device)
        if not 0 <= self.id < n:
            raise runtime.CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")

    def __repr__(self):
        return f"<CUDA Device {self.id}>"

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    __hash__ = object.__hash__

    def synchronize(self):
        pass

    def use(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class Stream:
    """``cupy.cuda.Stream``: work on the stand-in is synchronous, so a stream only records
    that it is current."""

    null = None

    def __init__(self, null=False, non_blocking=False, ptds=False, priority=None):
        self.ptds, self.priority = ptds, priority
        self.is_non_blocking = non_blocking

    @property
    def done(self):
        return True

    def synchronize(self):
        pass

    def use(self):
        global _current
        _current = self
        return self

    def __enter__(self):
        self._prev = get_current_stream()
        return self.use()

    def __exit__(self, *exc):
        self._prev.use()
        return False


Stream.null = Stream(null=True)
_current = Stream.null


def get_current_stream(device_id=-1):
    return _current


def is_available():
    return runtime.getDeviceCount() > 0


def get_device_id():
    return 0
