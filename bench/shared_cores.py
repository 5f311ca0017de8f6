#!/usr/bin/env python3
"""classviz on shared cores: the paper's preset at its default threads, on a quiet
machine and beside one busy process (`yes > /dev/null`, started first), on both CPU
engines, interleaved; and the same at --threads 1 and 2 on the compiled engine, to
show that --threads reaches its kernels.

    .venv/bin/python3 bench/shared_cores.py [--classes 1,100] [--iters 60] [--repeats 3]

Prints a table of medians: quiet seconds, busy seconds, and busy/quiet. Run it on an
otherwise quiet machine (nothing else on the cores).
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import CLASSVIZ, LITE0, timed


def busy():
    """One process that keeps a core busy until it is stopped."""
    return subprocess.Popen(["yes"], stdout=subprocess.DEVNULL)


def run(binary, model, engine, threads, classes, iters, out):
    command = [binary, "--model", str(model), "--engine", engine, "--class", classes, "--iters", str(iters),
               "--out", str(out), "--force", "--quiet"]
    if threads:
        command += ["--threads", str(threads)]
    seconds, _ = timed(command)
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", default="1,100")
    parser.add_argument("--iters", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default=str(LITE0), help="(an older build needs the models it exported)")
    parser.add_argument("--cases", default="torchscript,compiled,compiled:1,compiled:2",
                        help="ENGINE[:THREADS],… (default threads where none is given)")
    parser.add_argument("--before", metavar="BINARY", help="also an older build, interleaved, on the same cases")
    parser.add_argument("--before-model", help="the model for --before (an older build needs the models it exported)")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="classviz-shared-"))
    cases = [(c.split(":")[0], int(c.split(":")[1]) if ":" in c else None) for c in args.cases.split(",")]
    builds = [("this build", CLASSVIZ, args.model)]
    if args.before:
        builds.append(("before", args.before, args.before_model or args.model))
    times = {(build, engine, threads, load): [] for build, *_ in builds for engine, threads in cases
             for load in ("quiet", "busy")}
    for repeat in range(args.repeats):
        for engine, threads in cases:
            for load in ("quiet", "busy"):
                for build, binary, model in builds:
                    other = busy() if load == "busy" else None
                    time.sleep(0.5 if other else 0)
                    try:
                        seconds = run(binary, model, engine, threads, args.classes, args.iters, out)
                    finally:
                        if other:
                            other.terminate()
                            other.wait()
                    times[(build, engine, threads, load)].append(seconds)
                    print(f"{build}: {engine}, threads {threads or 'default'}, {load}: {seconds:.2f} s "
                          f"(run {repeat + 1})", file=sys.stderr, flush=True)
    classes = len(args.classes.split(","))
    print(f"\nThe paper's preset, {classes} classes x {args.iters} steps, Lite0, median of {args.repeats}, "
          "interleaved\n")
    print("| build | engine | --threads | quiet s | beside one busy process s | busy / quiet |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for engine, threads in cases:
        for build, *_ in builds:
            quiet = statistics.median(times[(build, engine, threads, "quiet")])
            loaded = statistics.median(times[(build, engine, threads, "busy")])
            print(f"| {build} | {engine} | {threads or 'default'} | {quiet:.2f} | {loaded:.2f} | {loaded / quiet:.2f}x |")


if __name__ == "__main__":
    main()
