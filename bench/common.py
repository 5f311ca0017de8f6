"""What the benchmarks share: the project's paths, running classviz and the Python
references (timed, failing in one line with the command's own last line), reading
their JSON, and medians. Each benchmark prints ratios against Python measured in the
same run; this module only runs things."""

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLASSVIZ = os.environ.get("CLASSVIZ_BIN", str(ROOT / "target" / "release" / "classviz"))
PYTHON = sys.executable
WEIGHTS = ROOT / "weights"
# The model every benchmark optimises, and the two networks that judge its images.
LITE0 = WEIGHTS / "efficientnet_lite0.pt"
LITE1 = WEIGHTS / "efficientnet_lite1.pt"
LITE2 = WEIGHTS / "efficientnet_lite2.pt"

# glibc's malloc, told to keep freed memory: the same thresholds classviz sets
# for itself at start (crates/classviz-engine/src/allocator.rs), for the references.
KEEP_FREED_MEMORY = {"MALLOC_MMAP_THRESHOLD_": "1073741824", "MALLOC_TRIM_THRESHOLD_": "2147483647"}


def run(command, env=None, timeout=None):
    """Run `command`; its stdout. A failure ends the benchmark with one line."""
    environment = dict(os.environ, **(env or {}))
    try:
        done = subprocess.run([str(c) for c in command], capture_output=True, text=True, env=environment,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        sys.exit(f"{Path(sys.argv[0]).name}: {Path(str(command[0])).name} timed out after {timeout} s")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        sys.exit(f"{Path(sys.argv[0]).name}: {' '.join(map(str, command[:3]))} … failed: {last}")
    return done.stdout


def attempt(command, timeout=None):
    """Run `command` and say how it went, for checks that record failures:
    (succeeded, the last line it printed on stderr if it failed, seconds, its stderr)."""
    started = time.perf_counter()
    try:
        done = subprocess.run([str(c) for c in command], capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout} s", time.perf_counter() - started, ""
    lines = [l.strip() for l in done.stderr.splitlines() if l.strip() and "Warning" not in l and not l.startswith(" ")]
    why = "" if done.returncode == 0 else (lines[-1][:200] if lines else f"exit {done.returncode}")
    return done.returncode == 0, why, time.perf_counter() - started, done.stderr


def timed(command, env=None):
    """(seconds, stdout) of one run of `command`."""
    started = time.perf_counter()
    out = run(command, env)
    return time.perf_counter() - started, out


def classviz(args, env=None):
    """classviz with `args`; the JSON records it printed."""
    return json_lines(run([CLASSVIZ, *args], env))


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def top1(rows):
    """How many class images their own model puts top-1."""
    return sum(row["top5"][0]["class"] == row["class"] for row in rows)


def class_images(folder):
    """The class images of a folder: those its summary.jsonl names (so class 643,
    "mask", whose file name ends like a saliency mask's, counts), else what
    `classviz_records::layout` calls images (not the extras beside them, the
    contact sheet or saliency files)."""
    summary = Path(folder) / "summary.jsonl"
    if summary.is_file():
        named = {Path(json.loads(line)["path"]).name for line in summary.read_text().splitlines() if line.strip()}
        return sorted(str(Path(folder) / name) for name in named if (Path(folder) / name).is_file())
    extras = ("_alpha", "_canvas", "_overlay", "_saliency", "_saliency16", "_mask", "_methods")
    return sorted(str(p) for p in Path(folder).glob("*.png") if p.name != "grid.png" and not p.stem.endswith(extras))


def score(model, images):
    """`classviz score --json` of `images` with `model`."""
    return json.loads(run([CLASSVIZ, "score", "--model", model, "--json", *images]))


def parse_classes(text):
    """Class indices as the benchmarks take them: `all`, ranges `0-99` and
    indices, comma-separated (classviz's own --class also takes names)."""
    classes = []
    for item in text.split(","):
        item = item.strip()
        if item == "all":
            classes.extend(range(1000))
        elif "-" in item:
            first, last = item.split("-")
            classes.extend(range(int(first), int(last) + 1))
        else:
            classes.append(int(item))
    return classes


def median(values):
    return statistics.median(values)
