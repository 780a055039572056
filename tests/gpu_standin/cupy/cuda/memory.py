"""Stand-in for ``cupy.cuda.memory``: the pool's used bytes are those of the live device
arrays that own their memory (the stand-in keeps no blocks for reuse, so ``free_bytes`` is 0)."""


class MemoryPool:
    def __init__(self, allocator=None):
        self._limit = 0

    def used_bytes(self):
        from .._array import live_bytes
        return live_bytes()

    def free_bytes(self):
        return 0

    def total_bytes(self):
        return self.used_bytes()

    def n_free_blocks(self):
        return 0

    def free_all_blocks(self, stream=None):
        pass

    def free_all_free(self):
        pass

    def set_limit(self, size=None, fraction=None):
        self._limit = size or 0

    def get_limit(self):
        return self._limit


class PinnedMemoryPool:
    def __init__(self, allocator=None):
        pass

    def free_all_blocks(self):
        pass

    def n_free_blocks(self):
        return 0


_POOL = MemoryPool()
_PINNED_POOL = PinnedMemoryPool()
