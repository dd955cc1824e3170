"""Peak resident memory of a block, for benchmarks that run each variant in its own process.

`with PeakRSS() as mem: ...` then `mem.peak` (bytes): the kernel's high-water mark (VmHWM), reset
at entry through /proc/self/clear_refs where the kernel allows it, else the resident size at the
end; `mem.start` is the resident size at entry. Imported by the bench scripts run as
`python bench/NAME.py` (their folder is on sys.path).
"""

from __future__ import annotations

from pathlib import Path

import psutil


class PeakRSS:
    def __enter__(self):
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass
        self.start = psutil.Process().memory_info().rss
        return self

    def __exit__(self, *exc):
        hwm = next((int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
                    if line.startswith("VmHWM:")), None)
        self.peak = hwm if hwm is not None else max(self.start, psutil.Process().memory_info().rss)
