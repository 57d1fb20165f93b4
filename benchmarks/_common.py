"""Shared benchmark helpers: machine description, timing, saving printed tables."""
from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"threads={torch.get_num_threads()}, load average at start {load:.1f}")


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def median(xs):
    return statistics.median(xs)


def save(name: str, df: pd.DataFrame, header: str, command: str) -> str:
    RESULTS.mkdir(parents=True, exist_ok=True)
    df.to_csv(RESULTS / f"{name}.csv", index=False)
    text = f"# {name}\n\nCommand: `{command}`\n\nMachine: {machine()}\n\n{header}\n\n```\n{df.to_string(index=False)}\n```\n"
    (RESULTS / f"{name}.md").write_text(text)
    print(text)
    return text
