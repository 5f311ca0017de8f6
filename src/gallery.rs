//! A self-contained HTML page for browsing runs: one row per image stem (a
//! class, a unit, a facet), one column per folder, with each image's scores
//! from its folder's `summary.jsonl` and, when given, a second network's
//! verdict from `classviz score --json`. Inline CSS and JS, no server, no
//! network: it works from `file://`. Images are referenced by relative path,
//! or embedded as data URIs. Every name and path is HTML-escaped, and only
//! files inside the given folders are referenced.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::files;

/// The page's file name inside the first folder.
pub const GALLERY_FILE: &str = "index.html";
/// Image files larger than this are linked, never embedded.
const MAX_EMBED_BYTES: u64 = 16 * 1024 * 1024;

/// What the page is made from.
#[derive(Debug, Clone)]
pub struct GallerySpec {
    pub dirs: Vec<PathBuf>,
    /// `classviz score --json` outputs: a second network's verdicts.
    pub scores: Vec<PathBuf>,
    pub out: PathBuf,
    pub embed: bool,
    pub title: String,
}

/// One image in one folder.
#[derive(Debug, Clone, Default)]
struct Cell {
    /// The image as the page references it (relative URL or data URI).
    src: String,
    /// Extras beside it: `<stem>_alpha.png`, `<stem>.gif`.
    alpha: Option<String>,
    gif: Option<String>,
    /// From summary.jsonl.
    logit: Option<f64>,
    prob: Option<f64>,
    own_top1: Option<bool>,
    stalled: bool,
    /// From a score file: the second network, its probability, top-1.
    second: Option<(String, f64, bool)>,
}

/// A row: what the stem shows, and its cell in each folder.
#[derive(Debug, Clone, Default)]
struct Row {
    index: Option<i64>,
    name: String,
    cells: BTreeMap<usize, Cell>,
}

/// What building the page saw: images, rows, and the lines it skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GalleryReport {
    pub path: PathBuf,
    pub rows: usize,
    pub images: usize,
    pub warnings: Vec<String>,
}

/// Write the page; returns what it holds and what was skipped.
pub fn write_gallery(spec: &GallerySpec) -> Result<GalleryReport> {
    for dir in &spec.dirs {
        if !dir.is_dir() {
            bail!("gallery folder {} cannot be read: it is not a folder", dir.display());
        }
    }
    let page_dir = spec.out.parent().map(Path::to_path_buf).unwrap_or_default();
    let page_dir = if page_dir.as_os_str().is_empty() { PathBuf::from(".") } else { page_dir };
    let page_dir = std::fs::canonicalize(&page_dir)
        .with_context(|| format!("the page's folder {} does not exist", page_dir.display()))?;
    let mut warnings = Vec::new();
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let mut images = 0;
    let scores = read_scores(&spec.scores, &mut warnings)?;
    for (column, dir) in spec.dirs.iter().enumerate() {
        let root = std::fs::canonicalize(dir)
            .with_context(|| format!("gallery folder {} cannot be read", dir.display()))?;
        if !root.is_dir() {
            bail!("gallery folder {} is not a folder", dir.display());
        }
        let summary = read_summary(&root, &mut warnings)?;
        for (stem, path) in class_images(&root)? {
            let mut cell = Cell {
                src: reference(&path, &page_dir, spec.embed)?,
                alpha: extra(&root, &format!("{stem}_alpha.png"), &page_dir, spec.embed)?,
                gif: extra(&root, &format!("{stem}.gif"), &page_dir, spec.embed)?,
                ..Cell::default()
            };
            let row = rows.entry(stem.clone()).or_default();
            if let Some(line) = summary.get(&stem) {
                cell.logit = line["logit"].as_f64().or_else(|| line["score"].as_f64());
                cell.prob = line["prob"].as_f64();
                cell.own_top1 = line["top5"][0]["class"]
                    .as_i64()
                    .zip(line["class"].as_i64())
                    .map(|(a, b)| a == b);
                cell.stalled = line["stalled"].as_bool().unwrap_or(false);
                row.index = row.index.or(line["class"].as_i64());
                if row.name.is_empty() {
                    row.name = line["name"]
                        .as_str()
                        .or(line["unit"].as_str())
                        .unwrap_or_default()
                        .to_string();
                }
            }
            if let Some(verdict) = scores.get(&path) {
                cell.second = Some((verdict.0.clone(), verdict.1, verdict.2));
                row.index = row.index.or(Some(verdict.3));
                if row.name.is_empty() {
                    row.name = verdict.4.clone();
                }
            }
            if row.index.is_none() {
                row.index = leading_index(&stem);
            }
            if row.name.is_empty() {
                row.name = stem_name(&stem);
            }
            row.cells.insert(column, cell);
            images += 1;
        }
    }
    let html = render(spec, &rows);
    files::write_atomic(&spec.out, html.as_bytes())?;
    Ok(GalleryReport { path: spec.out.clone(), rows: rows.len(), images, warnings })
}

/// A second network's verdict on one image: (model, p, top-1, class, name).
type Verdict = (String, f64, bool, i64, String);

/// The class images of a folder: `<stem>.png` without the `_alpha`,
/// `_canvas`, `_methods` extras and the contact sheet, by stem, sorted; only
/// files that really are inside the folder (a link out of it is skipped).
fn class_images(root: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root).with_context(|| format!("listing {}", root.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".png") else { continue };
        if name.starts_with('.') || name == "grid.png" {
            continue;
        }
        if ["_alpha", "_canvas", "_methods", "_overlay", "_saliency", "_saliency16"]
            .iter()
            .any(|s| stem.ends_with(s))
        {
            continue;
        }
        let Ok(path) = std::fs::canonicalize(entry.path()) else { continue };
        if !path.starts_with(root) || !path.is_file() {
            continue;
        }
        found.push((stem.to_string(), path));
    }
    found.sort();
    Ok(found)
}

/// An extra file beside an image, if it is there (and inside the folder).
fn extra(root: &Path, name: &str, page_dir: &Path, embed: bool) -> Result<Option<String>> {
    let Ok(path) = std::fs::canonicalize(root.join(name)) else { return Ok(None) };
    if !path.starts_with(root) || !path.is_file() {
        return Ok(None);
    }
    reference(&path, page_dir, embed).map(Some)
}

/// How the page refers to a file: a data URI (`embed`), else its path
/// relative to the page, percent-encoded.
fn reference(path: &Path, page_dir: &Path, embed: bool) -> Result<String> {
    if embed {
        let size = std::fs::metadata(path)?.len();
        if size <= MAX_EMBED_BYTES {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let kind = if path.extension().is_some_and(|e| e == "gif") { "gif" } else { "png" };
            return Ok(format!("data:image/{kind};base64,{}", base64(&bytes)));
        }
    }
    let relative = relative_path(path, page_dir);
    Ok(relative
        .components()
        .map(|c| percent_encode(&c.as_os_str().to_string_lossy()))
        .collect::<Vec<_>>()
        .join("/"))
}

/// `path` relative to the folder `base` (both absolute).
fn relative_path(path: &Path, base: &Path) -> PathBuf {
    let path: Vec<Component> = path.components().collect();
    let base: Vec<Component> = base.components().collect();
    let common = path.iter().zip(&base).take_while(|(a, b)| a == b).count();
    let mut relative = PathBuf::new();
    for _ in common..base.len() {
        relative.push("..");
    }
    for part in &path[common..] {
        relative.push(part);
    }
    relative
}

/// A path segment for a URL: unreserved characters stay, the rest become %XX.
fn percent_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A folder's `summary.jsonl`, keyed by image stem; a malformed line is
/// skipped with a warning, a missing file is no error (images only).
fn read_summary(
    root: &Path,
    warnings: &mut Vec<String>,
) -> Result<HashMap<String, serde_json::Value>> {
    let path = root.join("summary.jsonl");
    let mut lines = HashMap::new();
    if !path.exists() {
        return Ok(lines);
    }
    let text = files::read_text(&path, "summary")?;
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = match serde_json::from_str(line) {
            Ok(value) => value,
            Err(err) => {
                warnings.push(format!(
                    "{} line {} is not JSON ({err}): skipped",
                    path.display(),
                    number + 1
                ));
                continue;
            }
        };
        let stem = value["path"]
            .as_str()
            .and_then(|p| Path::new(p).file_stem())
            .map(|s| s.to_string_lossy().into_owned());
        match stem {
            // Later lines (re-runs) replace earlier ones.
            Some(stem) => {
                lines.insert(stem, value);
            }
            None => warnings.push(format!(
                "{} line {} has no \"path\": skipped",
                path.display(),
                number + 1
            )),
        }
    }
    Ok(lines)
}

/// Verdicts of `classviz score --json` files, keyed by the image's canonical path.
fn read_scores(paths: &[PathBuf], warnings: &mut Vec<String>) -> Result<HashMap<PathBuf, Verdict>> {
    let mut verdicts = HashMap::new();
    for path in paths {
        let text = files::read_text(path, "score file")?;
        let value: serde_json::Value = serde_json::from_str(text.trim()).with_context(|| {
            format!("score file {} is not the JSON of `classviz score --json`", path.display())
        })?;
        let model = value["model"].as_str().map(|m| {
            Path::new(m).file_stem().map_or(m.to_string(), |s| s.to_string_lossy().into_owned())
        });
        let Some(images) = value["images"].as_array() else {
            bail!(
                "score file {} has no \"images\": is it from `classviz score --json`?",
                path.display()
            );
        };
        for image in images {
            let (Some(file), Some(prob), Some(top1), Some(class)) = (
                image["image"].as_str(),
                image["prob"].as_f64(),
                image["top1"].as_bool(),
                image["class"].as_i64(),
            ) else {
                warnings.push(format!(
                    "{}: an entry without image, prob, top1 and class: skipped",
                    path.display()
                ));
                continue;
            };
            // Paths in the file are as `classviz score` was given them: relative
            // to where it ran, which is most often here.
            match std::fs::canonicalize(file) {
                Ok(canonical) => {
                    let name = image["name"].as_str().unwrap_or_default().to_string();
                    verdicts.insert(
                        canonical,
                        (model.clone().unwrap_or_default(), prob, top1, class, name),
                    );
                }
                Err(_) => warnings
                    .push(format!("{}: {file} not found from here: skipped", path.display())),
            }
        }
    }
    Ok(verdicts)
}

/// `100_black_swan` → 100.
fn leading_index(stem: &str) -> Option<i64> {
    let digits: String = stem.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// `100_black_swan` → "black swan"; `_blocks.3_c5` → "blocks.3 c5".
fn stem_name(stem: &str) -> String {
    let rest = stem.trim_start_matches(|c: char| c.is_ascii_digit());
    rest.replace('_', " ").trim().to_string()
}

fn render(spec: &GallerySpec, rows: &BTreeMap<String, Row>) -> String {
    let mut ordered: Vec<(&String, &Row)> = rows.iter().collect();
    ordered.sort_by(|a, b| {
        a.1.index.unwrap_or(i64::MAX).cmp(&b.1.index.unwrap_or(i64::MAX)).then(a.0.cmp(b.0))
    });
    let columns: Vec<String> = spec.dirs.iter().map(|d| d.display().to_string()).collect();
    let data = serde_json::json!({
        "columns": columns,
        "rows": ordered.iter().map(|(stem, row)| row_json(stem, row, columns.len())).collect::<Vec<_>>(),
    });
    let title = escape(&spec.title);
    let mut options =
        String::from("<option value=\"index\">index</option><option value=\"name\">name</option>");
    for (j, column) in columns.iter().enumerate() {
        let column = escape(column);
        let _ = write!(
            options,
            "<option value=\"p{j}\">p, {column}</option><option value=\"q{j}\">second network p, {column}</option>"
        );
    }
    let mut head = String::from("<div role=\"columnheader\">image</div>");
    for column in &columns {
        let _ = write!(head, "<div role=\"columnheader\">{}</div>", escape(column));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"classviz {version}\">\n<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <header><h1>{title}</h1>\n<label>Search <input id=\"search\" type=\"search\" placeholder=\"name or index\" autocomplete=\"off\"></label>\n\
         <label>Sort <select id=\"sort\">{options}</select></label>\n<span id=\"count\" aria-live=\"polite\"></span></header>\n\
         <main id=\"gallery\" role=\"table\" aria-label=\"{title}\" style=\"--columns: {count}\">\n\
         <div class=\"row head\" role=\"row\">{head}</div>\n<div id=\"rows\" role=\"rowgroup\"></div>\n\
         <noscript><p>This page draws its rows with JavaScript; the images are the PNG files beside it.</p></noscript>\n</main>\n\
         <div id=\"viewer\" role=\"dialog\" aria-modal=\"true\" aria-label=\"full size\" hidden><figure><img id=\"big\" alt=\"\"><figcaption id=\"caption\"></figcaption></figure>\
         <p>← → previous / next · A alpha · Esc closes</p><button id=\"close\" type=\"button\">Close</button></div>\n\
         <pre id=\"selftest\" hidden></pre>\n\
         <script id=\"data\" type=\"application/json\">{json}</script>\n<script>{SCRIPT}</script>\n</body>\n</html>\n",
        version = env!("CARGO_PKG_VERSION"),
        count = columns.len(),
        json = script_safe(&data.to_string()),
    )
}

/// One row for the page's data: `{"k": stem, "i": index, "n": label, "c": [cell or null per column]}`;
/// a cell is `{"s": src, "a": alpha, "g": gif, "l": S, "p": p, "t": top-1, "x": stalled,
/// "m": second model, "q": its p, "r": its top-1}` with absent keys left out.
fn row_json(stem: &str, row: &Row, columns: usize) -> serde_json::Value {
    let label = match row.index {
        Some(index) if row.name != index.to_string() && !row.name.is_empty() => {
            format!("{index} {}", row.name)
        }
        _ if row.name.is_empty() => stem.to_string(),
        _ => row.name.clone(),
    };
    let cells: Vec<serde_json::Value> = (0..columns)
        .map(|j| match row.cells.get(&j) {
            None => serde_json::Value::Null,
            Some(cell) => {
                let mut object = serde_json::Map::new();
                object.insert("s".into(), cell.src.clone().into());
                let mut put = |key: &str, value: Option<serde_json::Value>| {
                    if let Some(value) = value {
                        object.insert(key.into(), value);
                    }
                };
                put("a", cell.alpha.clone().map(Into::into));
                put("g", cell.gif.clone().map(Into::into));
                put("l", cell.logit.map(Into::into));
                put("p", cell.prob.map(Into::into));
                put("t", cell.own_top1.map(Into::into));
                put("x", cell.stalled.then_some(true.into()));
                if let Some((model, q, top1)) = &cell.second {
                    put("m", Some(model.clone().into()));
                    put("q", Some((*q).into()));
                    put("r", Some((*top1).into()));
                }
                serde_json::Value::Object(object)
            }
        })
        .collect();
    serde_json::json!({"k": stem, "i": row.index, "n": label, "c": cells})
}

/// JSON that is safe inside `<script>`: no `<` (so no `</script>` or `<!--`)
/// and no U+2028/U+2029; the JSON parser reads the escapes back as the same text.
pub fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c").replace('\u{2028}', "\\u2028").replace('\u{2029}', "\\u2029")
}

/// Text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root { color-scheme: light dark; --ok: #1a9850; --bad: #d73027; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; }
header { position: sticky; top: 0; z-index: 2; display: flex; flex-wrap: wrap; gap: 1em; align-items: center;
  padding: .6em 1em; background: Canvas; border-bottom: 1px solid GrayText; }
h1 { font-size: 1.1em; margin: 0 1em 0 0; }
#gallery { margin: .5em; }
.row { display: grid; grid-template-columns: 12em repeat(var(--columns), 176px); gap: 0 .5em; padding: .3em 0; }
/* Rows off screen are not laid out or painted: a 1000-row page stays fast. */
#rows .row { content-visibility: auto; contain-intrinsic-size: auto 230px; }
.head { font-weight: 600; position: sticky; top: 3em; z-index: 1; background: Canvas; }
.head > div { overflow-wrap: anywhere; }
.label { font-weight: 600; overflow-wrap: anywhere; }
.row:focus { outline: 3px solid Highlight; }
figure { margin: 0; }
img { display: block; width: 160px; height: 160px; object-fit: contain; background: #8884; }
figcaption { font-size: 12px; max-width: 160px; }
.ok { color: var(--ok); } .bad { color: var(--bad); }
#viewer { position: fixed; inset: 0; z-index: 3; background: #000d; color: #fff; display: flex; flex-direction: column;
  align-items: center; justify-content: center; }
#viewer[hidden] { display: none; }
#viewer img { width: auto; height: auto; max-width: 90vw; max-height: 80vh; image-rendering: pixelated; background: none; }
#viewer figcaption { max-width: none; font-size: 14px; text-align: center; }
"#;

const SCRIPT: &str = r#"
(() => {
  const data = JSON.parse(document.getElementById('data').textContent);
  const container = document.getElementById('rows');
  const search = document.getElementById('search');
  const sort = document.getElementById('sort');
  const count = document.getElementById('count');
  const viewer = document.getElementById('viewer');
  const big = document.getElementById('big');
  const caption = document.getElementById('caption');
  const elements = new Array(data.rows.length);
  let view = data.rows.map((_, i) => i);
  let drawn = 0;
  let current = -1;
  let showAlpha = false;
  const FIRST = 40, CHUNK = 200;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  // Every name goes in as text, never as HTML.
  function rowElement(i) {
    if (elements[i]) return elements[i];
    const r = data.rows[i];
    const row = el('div', 'row');
    row.setAttribute('role', 'row');
    row.tabIndex = 0;
    row.dataset.row = i;
    const label = el('div', 'label', r.n);
    label.setAttribute('role', 'rowheader');
    row.appendChild(label);
    r.c.forEach((c, j) => {
      const cell = el('div', 'cell');
      cell.setAttribute('role', 'cell');
      if (!c) { cell.textContent = '–'; row.appendChild(cell); return; }
      const figure = el('figure');
      const link = el('a', 'open');
      link.href = c.s;
      link.dataset.column = j;
      const img = el('img');
      img.loading = 'lazy'; img.decoding = 'async'; img.src = c.s;
      img.alt = r.n + ', ' + data.columns[j];
      img.width = 160; img.height = 160;
      link.appendChild(img);
      figure.appendChild(link);
      const text = [];
      if (c.l !== undefined) text.push('S ' + c.l.toFixed(2));
      if (c.p !== undefined) text.push('p ' + c.p.toFixed(3) + (c.t === false ? ' (not top-1)' : ''));
      if (c.x) text.push('stalled');
      const fc = el('figcaption', null, text.join(' · '));
      if (c.m !== undefined) {
        fc.appendChild(el('br'));
        const mark = el('span', c.r ? 'ok' : 'bad', '●');
        mark.title = (c.r ? 'recognised by ' : 'not recognised by ') + c.m;
        fc.appendChild(mark);
        fc.appendChild(document.createTextNode(' ' + c.m + ' p ' + c.q.toFixed(3)));
      }
      for (const [key, word] of [['a', 'alpha'], ['g', 'gif']]) {
        if (c[key]) { fc.appendChild(el('br')); const a = el('a', null, word); a.href = c[key]; fc.appendChild(a); }
      }
      figure.appendChild(fc);
      cell.appendChild(figure);
      row.appendChild(cell);
    });
    return elements[i] = row;
  }
  // Append the rows of the view up to `upTo` that are not drawn yet.
  function draw(upTo) {
    const end = Math.min(upTo, view.length);
    const fragment = document.createDocumentFragment();
    for (; drawn < end; drawn++) fragment.appendChild(rowElement(view[drawn]));
    container.appendChild(fragment);
    count.textContent = view.length + ' of ' + data.rows.length + ' rows';
  }
  function drawRest() {
    if (drawn >= view.length) { window.classvizReady = true; return; }
    draw(drawn + CHUNK);
    (window.requestIdleCallback || setTimeout)(drawRest);
  }
  function redraw() {
    container.replaceChildren();
    drawn = 0;
    draw(view.length);
    window.classvizReady = true;
  }
  function matches(r, q) {
    return !q || String(r.i) === q || r.n.toLowerCase().includes(q) || r.k.toLowerCase().includes(q);
  }
  function key(i, by) {
    const r = data.rows[i];
    if (by === 'index') return r.i ?? Infinity;
    if (by === 'name') return r.n.toLowerCase();
    const c = r.c[Number(by.slice(1))];
    const v = c && (by[0] === 'p' ? c.p : c.q);
    return v === undefined || v === null ? Infinity : -v;
  }
  function update() {
    const q = search.value.trim().toLowerCase();
    const by = sort.value;
    view = data.rows.map((_, i) => i).filter(i => matches(data.rows[i], q));
    view.sort((a, b) => { const x = key(a, by), y = key(b, by); return x < y ? -1 : x > y ? 1 : a - b; });
    redraw();
  }
  const links = () => Array.from(container.querySelectorAll('a.open'));
  function open(index) {
    const all = links();
    if (!all.length) return;
    current = (index + all.length) % all.length;
    const link = all[current];
    const cell = data.rows[Number(link.closest('.row').dataset.row)].c[Number(link.dataset.column)];
    big.src = showAlpha && cell.a ? cell.a : cell.s;
    big.alt = link.querySelector('img').alt;
    caption.textContent = big.alt + (showAlpha && cell.a ? ' (alpha)' : '');
    viewer.hidden = false;
    document.getElementById('close').focus();
  }
  function close() { viewer.hidden = true; const all = links(); if (all[current]) all[current].focus(); }

  search.addEventListener('input', update);
  sort.addEventListener('change', update);
  container.addEventListener('click', event => {
    const link = event.target.closest('a.open');
    if (!link) return;
    event.preventDefault();
    open(links().indexOf(link));
  });
  container.addEventListener('keydown', event => {
    if (event.key === 'Enter' && event.target.classList.contains('row')) {
      const link = event.target.querySelector('a.open');
      if (link) open(links().indexOf(link));
    }
  });
  document.getElementById('close').addEventListener('click', close);
  viewer.addEventListener('click', event => { if (event.target === viewer) close(); });
  document.addEventListener('keydown', event => {
    if (!viewer.hidden) {
      if (event.key === 'Escape') close();
      else if (event.key === 'ArrowRight') open(current + 1);
      else if (event.key === 'ArrowLeft') open(current - 1);
      else if (event.key === 'a') { showAlpha = !showAlpha; open(current); }
      return;
    }
    if (event.key === '/' && document.activeElement !== search) { event.preventDefault(); search.focus(); }
  });
  // The first screenful now; the other rows after the load event, in chunks
  // while the browser is idle (drawing them earlier held the load event back
  // by up to 2 s for 1000 rows on two cores). Search and sort redraw the
  // whole view at once, so they never wait for the chunks.
  draw(FIRST);
  if (document.readyState === 'complete') drawRest();
  else window.addEventListener('load', () => (window.requestIdleCallback || setTimeout)(drawRest));

  // `index.html#selftest`: drive search, every sort order and the viewer
  // through the DOM, and write what happened into #selftest (headless checks).
  if (location.hash === '#selftest') {
    window.addEventListener('load', () => {
      const nav = performance.getEntriesByType('navigation')[0];
      // Headless Chromium may read the DOM as soon as the load event has been
      // handled, so the whole test runs inside the handler: rows still waiting
      // for an idle moment are drawn now.
      if (!window.classvizReady) { draw(view.length); window.classvizReady = true; }
      const result = { rows: data.rows.length, drawn: container.children.length,
        dom_content_loaded_ms: Math.round(nav.domContentLoadedEventEnd), load_ms: Math.round(nav.loadEventStart),
        all_rows_ms: Math.round(performance.now()) };
      const first = data.rows[0];
      const word = first ? (first.n.split(' ').slice(first.i === null ? 0 : 1).join(' ') || first.n).toLowerCase() : '';
      search.value = word; search.dispatchEvent(new Event('input'));
      const shown = Array.from(container.children);
      result.search = { query: word, shown: shown.length,
        all_match: shown.every(row => matches(data.rows[Number(row.dataset.row)], word)) };
      search.value = ''; search.dispatchEvent(new Event('input'));
      result.cleared = container.children.length;
      result.sort = {};
      for (const option of sort.options) {
        sort.value = option.value; sort.dispatchEvent(new Event('change'));
        const keys = Array.from(container.children).map(row => key(Number(row.dataset.row), option.value));
        result.sort[option.value] = keys.length === data.rows.length && keys.every((v, i) => i === 0 || keys[i - 1] <= v);
      }
      open(0); result.viewer_open = !viewer.hidden && big.getAttribute('src') !== null; close();
      result.viewer_closed = viewer.hidden;
      const out = document.getElementById('selftest');
      out.textContent = JSON.stringify(result);
      out.hidden = false;
    });
  }
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }

    #[test]
    fn json_in_a_script_cannot_close_it() {
        let json =
            serde_json::json!({"n": "</script><script>alert(1)</script>\u{2028}"}).to_string();
        let safe = script_safe(&json);
        assert!(!safe.contains('<') && !safe.contains('\u{2028}'));
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["n"], "</script><script>alert(1)</script>\u{2028}");
    }

    #[test]
    fn base64_of_known_strings() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn relative_paths_and_encoding() {
        assert_eq!(
            relative_path(Path::new("/a/b/c.png"), Path::new("/a/d")),
            PathBuf::from("../b/c.png")
        );
        assert_eq!(
            relative_path(Path::new("/a/b/c.png"), Path::new("/a/b")),
            PathBuf::from("c.png")
        );
        assert_eq!(percent_encode("a b#?.png"), "a%20b%23%3F.png");
    }

    #[test]
    fn names_from_stems() {
        assert_eq!(leading_index("100_black_swan"), Some(100));
        assert_eq!(leading_index("_blocks.3_c5"), None);
        assert_eq!(stem_name("100_black_swan"), "black swan");
        assert_eq!(stem_name("_blocks.3_c5"), "blocks.3 c5");
    }
}
