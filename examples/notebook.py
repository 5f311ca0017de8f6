# %% [markdown]
# # classviz from Python
#
# Run classviz from a notebook, read its `summary.jsonl` with pandas, show the
# images in a grid, and compare two presets. This file is a notebook in
# Jupytext's percent format (open it in Jupyter with jupytext, or paste the
# cells), and a script: `.venv/bin/python3 examples/notebook.py` runs it whole,
# as CI does. It needs the project built (`make`); `CLASSVIZ` names another
# binary, `NOTEBOOK_CLASSES` and `NOTEBOOK_ITERS` make it quicker.

# %%
import json
import os
import subprocess
from pathlib import Path

import pandas as pd
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent if "__file__" in globals() else Path.cwd()
CLASSVIZ = os.environ.get("CLASSVIZ", str(ROOT / "target" / "release" / "classviz"))
CLASSES = os.environ.get("NOTEBOOK_CLASSES", "1,100,130,963")
ITERS = os.environ.get("NOTEBOOK_ITERS")
OUT = Path(os.environ.get("NOTEBOOK_OUT", ROOT / "demo" / "notebook"))


def classviz(*args):
    """Run classviz; its JSON lines, one record per image."""
    done = subprocess.run([CLASSVIZ, *args, "--json", "--quiet"], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip())
    return [json.loads(line) for line in done.stdout.splitlines()]


# %% [markdown]
# ## Two presets, the same classes
#
# Each preset writes into its own folder; a rerun skips the images already
# made with the same settings.

# %%
presets = ["simonyan", "natural"]
for preset in presets:
    steps = ["--iters", ITERS] if ITERS else []
    rows = classviz("--class", CLASSES, "--preset", preset, "--out", str(OUT / preset), *steps)
    print(f"{preset}: {len(rows)} images")

# %% [markdown]
# ## The summaries as one table
#
# Every image adds a line to its folder's `summary.jsonl`: the `--json` keys
# and the run's model, η, λ, seed, device and batch.

# %%
runs = pd.concat(
    [pd.read_json(OUT / preset / "summary.jsonl", lines=True).assign(preset=preset) for preset in presets],
    ignore_index=True,
)
runs["top1"] = [row[0]["class"] == c for row, c in zip(runs["top5"], runs["class"])]
table = runs.pivot_table(index=["class", "name"], columns="preset", values="prob")
print(table.round(3))
print(runs.groupby("preset")[["prob", "seconds"]].mean().round(3))

# %% [markdown]
# ## The images in a grid: a row per class, a column per preset

# %%
def grid(paths, columns, side=160):
    sheet = Image.new("RGB", (side * columns, side * ((len(paths) + columns - 1) // columns)), "white")
    for k, path in enumerate(paths):
        tile = Image.open(path).convert("RGB").resize((side, side))
        sheet.paste(tile, ((k % columns) * side, (k // columns) * side))
    return sheet


ordered = runs.sort_values(["class", "preset"])
sheet = grid(list(ordered["path"]), columns=len(presets))
sheet.save(OUT / "presets.png")
print(f"wrote {OUT / 'presets.png'} ({len(ordered)} tiles)")
try:
    from IPython.display import display  # in a notebook, show it

    display(sheet)
except ImportError:
    pass

# %% [markdown]
# ## A second opinion
#
# A network that did not make the images (EfficientNet-Lite1) says whether it
# sees the class too: `classviz score`.

# %%
lite1 = ROOT / "weights" / "efficientnet_lite1.pt"
for preset in presets:
    images = sorted(str(p) for p in (OUT / preset).glob("*.png"))
    done = subprocess.run([CLASSVIZ, "score", "--model", str(lite1), "--json", *images],
                          capture_output=True, text=True, check=True)
    verdict = json.loads(done.stdout)
    print(f"{preset}: Lite1 top-1 {verdict['top1']}/{verdict['total']}, mean p {verdict['mean_prob']:.3f}")
