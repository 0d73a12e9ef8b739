"""Sample the bridge with py-spy (``pip install py-spy``; optional) and summarize the samples.

``python -m bench <scenario> --py-spy DIR`` records ``DIR/<run>.txt`` (py-spy's raw collapsed
stacks) for every measured bridge; ``python -m bench pyspy FILE`` prints the functions holding
most samples, inclusive (anywhere on the stack) and exclusive (the leaf)."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path


def start(pid: int, output: Path) -> subprocess.Popen[bytes] | None:
    """py-spy recording ``pid`` until it exits (None when py-spy is not installed)."""
    binary = shutil.which("py-spy")
    if binary is None:
        return None
    output.parent.mkdir(parents=True, exist_ok=True)
    command = [binary, "record", "-p", str(pid), "-r", "100", "-f", "raw", "-o", str(output)]
    return subprocess.Popen(
        [*command, "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _name(frame: str) -> str:
    """``function (path/file.py:line)`` -> ``function (file.py)``."""
    function, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{function} ({'/'.join(path.split('/')[-2:])})" if path else function


def summarize(raw: Path, top: int = 30) -> str:
    """The text summary of one raw py-spy file."""
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        names = [_name(frame) for frame in stack.split(";")]
        leaf[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    lines = [f"{total} samples (100 Hz, every thread)", "", "inclusive:"]
    lines += [f"{100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    lines += ["", "exclusive (leaf):"]
    lines += [f"{100 * n / total:5.1f}%  {name}" for name, n in leaf.most_common(top)]
    return "\n".join(lines)
