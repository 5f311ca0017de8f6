#!/usr/bin/env bash
# The gallery in a real browser. Builds a 1000-class, two-column gallery (hard
# links of one class image, a summary.jsonl and a second network's score file),
# loads it from file:// in headless Chromium three times, and reads the page's
# own #selftest, which drives search, every sort order and the full-size viewer
# through the DOM. Fails unless all of them work and the page loads in under
# 2 s (median). Writes a screenshot. `make check-gallery`; .ci/run runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [[ -z $CHROMIUM ]]; then
  echo "check_gallery: no Chromium found; install Debian's chromium package" >&2
  exit 1
fi
PYTHON=${PYTHON:-.venv/bin/python3}
LIMIT_MS=2000
work=$(pwd)/target/gallery-check
rm -rf "$work"
mkdir -p "$work/simonyan" "$work/natural"

"$PYTHON" - "$work" <<'PY'
import json, os, re, sys
work = sys.argv[1]
names = open("weights/imagenet_classes.txt").read().split("\n")[:1000]
# A real class image, linked 2000 times (one per row and column).
image = "results/100_black_swan.png"
scores = []
for column in ("simonyan", "natural"):
    lines = []
    for index, name in enumerate(names):
        slug = re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")
        path = f"{work}/{column}/{index}_{slug}.png"
        os.link(image, path)
        prob = ((index * 7919) % 1000) / 1000
        lines.append(json.dumps({"class": index, "name": name, "path": path, "logit": 10 + prob, "prob": prob,
                                 "top5": [{"class": index, "name": name, "prob": prob}], "iters": 150,
                                 "seconds": 1.0, "stalled": False, "model": "weights/efficientnet_lite0.pt",
                                 "lr": 1.0, "l2": 1e-4, "seed": 0, "device": "cpu", "batch": 4}))
        if column == "natural":
            top1 = prob < 0.5
            scores.append({"image": path, "class": index, "name": name, "prob": 1 - prob, "top1": top1,
                           "top5": top1, "predicted": [{"class": index, "name": name, "prob": 1 - prob}]})
    open(f"{work}/{column}/summary.jsonl", "w").write("\n".join(lines) + "\n")
json.dump({"model": "weights/efficientnet_lite1.pt", "images": scores, "total": len(scores),
           "top1": sum(s["top1"] for s in scores), "top5": sum(s["top5"] for s in scores),
           "mean_prob": sum(s["prob"] for s in scores) / max(len(scores), 1)}, open(f"{work}/scores.json", "w"))
PY
target/release/classviz gallery "$work/simonyan" "$work/natural" --scores "$work/scores.json" --title "classviz gallery check"

flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
       --disable-component-update --disable-sync --hide-scrollbars)
page="file://$work/simonyan/index.html"
# --dump-dom reads the DOM once the load event has been handled, and the page's
# self-test runs inside that handler, so the times it reports are real ones (no
# virtual time). Chromium's own messages go to a log per run (named when a run
# fails); a run that hangs is stopped after two minutes.
for run in 1 2 3; do
  timeout 120 "$CHROMIUM" "${flags[@]}" --user-data-dir="$work/profile$run" \
    --dump-dom "$page#selftest" 2>"$work/chromium$run.log" > "$work/dom$run.html" || true
done
timeout 120 "$CHROMIUM" "${flags[@]}" --user-data-dir="$work/profile-shot" --window-size=1280,900 \
  --virtual-time-budget=5000 --screenshot="$work/gallery.png" "$page" 2>"$work/chromium-shot.log" || true

"$PYTHON" - "$work" "$LIMIT_MS" <<'PY'
import html, json, re, statistics, sys
work, limit = sys.argv[1], int(sys.argv[2])
results = []
for run in (1, 2, 3):
    dom = open(f"{work}/dom{run}.html").read()
    found = re.search(r'<pre id="selftest">([^<]*)</pre>', dom)
    if not found:
        rows = len(re.findall(r'class="row"', dom))
        sys.exit(f"check_gallery: run {run}: the page's self-test left no result ({len(dom)} bytes of DOM, "
                 f"{rows} rows drawn; Chromium's log: {work}/chromium{run}.log)")
    results.append(json.loads(html.unescape(found.group(1))))
problems = []
for r in results:
    if r["rows"] != 1000 or r["cleared"] != 1000:
        problems.append(f"rows {r['rows']}, after clearing the search {r['cleared']}")
    if not (r["search"]["shown"] >= 1 and r["search"]["all_match"]):
        problems.append(f"search {r['search']}")
    if not all(r["sort"].values()):
        problems.append(f"sort {r['sort']}")
    if not (r["viewer_open"] and r["viewer_closed"]):
        problems.append("the full-size viewer")
load = statistics.median(r["load_ms"] for r in results)
ready = statistics.median(r["dom_content_loaded_ms"] for r in results)
drawn = statistics.median(r["all_rows_ms"] for r in results)
if load >= limit:
    problems.append(f"load {load} ms >= {limit} ms")
sorts = len(results[0]["sort"])
print(f"check_gallery: 1000 rows x 2 columns; load event {load:.0f} ms, DOMContentLoaded {ready:.0f} ms, "
      f"all rows drawn {drawn:.0f} ms "
      f"(median of 3, headless Chromium, file://); search, {sorts} sort orders, viewer: "
      + ("ok" if not problems else "FAILED") + f"; screenshot {work}/gallery.png")
if problems:
    sys.exit("check_gallery: " + "; ".join(sorted(set(problems))))
PY
