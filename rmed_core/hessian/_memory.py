"""Memory that can still be allocated on a device: what sizes chunks of products and what refuses
a batch too large for memory (:func:`._guards.check_memory`)."""
from __future__ import annotations

import os

import torch

__all__ = ["free_bytes"]


def free_bytes(device: torch.device) -> int:
    """Bytes that can still be allocated on ``device``. CUDA: free device memory plus what torch's
    caching allocator holds unused (it hands that out first); CPU: the kernel's ``MemAvailable``
    (free pages plus caches it can drop), or the free pages where ``/proc/meminfo`` is absent."""
    if device.type == "cuda":
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(torch.cuda.mem_get_info(device)[0]) + max(0, int(cached))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 4 * 2**30
