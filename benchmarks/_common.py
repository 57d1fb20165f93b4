"""Shared benchmark helpers: machine description, timing, saving printed tables.

Threads: the benchmarks default to one torch thread. On the shared 2-core machine these results
were measured on, two OpenMP threads spin-wait for each other whenever another process holds a
core (the Hessian test suite took 248 s with two threads and 13 s with one at load ~4.5).
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

RESULTS = Path(__file__).resolve().parent / "results"
_LOAD_START = os.getloadavg()


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, torch.get_num_threads()="
            f"{torch.get_num_threads()}, load average (1/5/15 min) at start "
            f"{' '.join(f'{x:.2f}' for x in _LOAD_START)}, at end {load()}")


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def median(xs):
    return statistics.median(xs)


def save(name: str, df: pd.DataFrame, header: str, command: str) -> str:
    """Write ``results/<name>.csv`` and ``results/<name>.md`` (the printed text) and print it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    df.to_csv(RESULTS / f"{name}.csv", index=False)
    text = (f"# {name}\n\nCommand: `{command}`\n\nMachine: {machine()}\n\n{header}\n\n```\n"
            f"{df.to_string(index=False)}\n```\n")
    (RESULTS / f"{name}.md").write_text(text)
    print(text, flush=True)
    return text
