//! A self-contained HTML page for browsing runs: one row per image stem (a
//! class, a unit, a facet), one column per folder, with each image's scores
//! from its folder's `summary.jsonl` and, when given, a second network's
//! verdict from `classviz score --json`. Inline CSS and JS, no server, no
//! network: it works from `file://`. Images are referenced by relative path,
//! or embedded as data URIs. Every name and path is HTML-escaped, and only
//! files inside the given folders are referenced.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::files;
use crate::layout::{self, Extra, ImageName, Kind};
use crate::result::Subject;
use crate::summary::SummaryLine;

mod encode;
mod inputs;

use encode::reference;
pub use encode::{escape, script_safe};
use inputs::{read_scores, read_summary, Verdict};

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
    /// `<stem>_exemplars.png`: the dataset images that drive it most.
    exemplars: Option<String>,
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

/// What building the page saw: images, rows, and the lines it skipped
/// (`classviz gallery --json` prints it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GalleryReport {
    /// The page written.
    pub page: String,
    pub rows: usize,
    pub images: usize,
    pub folders: usize,
    pub warnings: Vec<String>,
}

/// Write the page; returns what it holds and what was skipped. Images that
/// do not decode are skipped (and counted in a warning); a gallery with no
/// image at all is refused.
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
    let scores = read_scores(&spec.scores, &mut warnings)?;
    let (mut images, mut broken) = (0, Vec::new());
    for (column, dir) in spec.dirs.iter().enumerate() {
        let root = std::fs::canonicalize(dir)
            .with_context(|| format!("gallery folder {} cannot be read", dir.display()))?;
        let summary = read_summary(&root, &mut warnings)?;
        for (stem, path) in class_images(&root, &summary)? {
            if !decodes(&path) {
                broken.push(path.display().to_string());
                continue;
            }
            let cell = Cell {
                src: reference(&path, &page_dir, spec.embed)?,
                alpha: extra(&root, &Extra::Alpha.beside(&stem), &page_dir, spec.embed)?,
                gif: extra(&root, &Extra::Gif.beside(&stem), &page_dir, spec.embed)?,
                exemplars: extra(&root, &Extra::Exemplars.beside(&stem), &page_dir, spec.embed)?,
                ..Cell::default()
            };
            let row = rows.entry(stem.clone()).or_default();
            let cell = describe(cell, row, &stem, summary.get(&stem), scores.get(&path));
            row.cells.insert(column, cell);
            images += 1;
        }
    }
    if !broken.is_empty() {
        warnings.push(format!(
            "{} image(s) that do not decode were left out: {}",
            broken.len(),
            broken.join(", ")
        ));
    }
    if images == 0 {
        let folders: Vec<String> = spec.dirs.iter().map(|d| d.display().to_string()).collect();
        bail!(
            "no images to show in {}: run classviz with --out pointing there first",
            folders.join(", ")
        );
    }
    let html = render(spec, &rows);
    files::write_atomic(&spec.out, html.as_bytes())?;
    let page = spec.out.display().to_string();
    Ok(GalleryReport { page, rows: rows.len(), images, folders: spec.dirs.len(), warnings })
}

/// Whether a PNG decodes whole (a truncated or corrupt file would show as a
/// broken image).
fn decodes(path: &Path) -> bool {
    image::ImageReader::open(path)
        .ok()
        .and_then(|reader| reader.with_guessed_format().ok())
        .is_some_and(|reader| reader.decode().is_ok())
}

/// A cell with its scores from the summary line and the second network's
/// verdict; the row gets its index and name from the first that has them.
fn describe(
    mut cell: Cell,
    row: &mut Row,
    stem: &str,
    line: Option<&SummaryLine>,
    verdict: Option<&Verdict>,
) -> Cell {
    if let Some(line) = line {
        let result = &line.result;
        cell.logit = Some(result.score());
        cell.own_top1 = result.top1();
        cell.stalled = result.stalled;
        let (prob, name) = match &result.subject {
            Subject::Class { prob, name, .. } => (Some(*prob), name.clone()),
            Subject::Unit { unit, .. } => (None, unit.clone()),
        };
        cell.prob = prob;
        row.index = row.index.or(result.class());
        if row.name.is_empty() {
            row.name = name;
        }
    }
    if let Some(verdict) = verdict {
        cell.second = Some((verdict.model.clone(), verdict.prob, verdict.top1));
        row.index = row.index.or(Some(verdict.class));
        if row.name.is_empty() {
            row.name = verdict.name.clone();
        }
    }
    row.index = row.index.or(ImageName::parse(stem).class);
    if row.name.is_empty() {
        row.name = stem_name(stem);
    }
    cell
}

/// The images of a folder (what `layout::kind_of` calls images: not the
/// extras beside them, saliency files or the contact sheet, and every image
/// the summary names, such as class 643 "mask", whose file name ends like a
/// saliency mask's), by stem, sorted; only files that really are inside the
/// folder (a link out of it is skipped).
fn class_images(
    root: &Path,
    summary: &HashMap<String, SummaryLine>,
) -> Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root).with_context(|| format!("listing {}", root.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let stem = match layout::kind_of(&name) {
            Kind::Image(stem) => stem,
            _ => match name.strip_suffix(".png") {
                Some(stem) if summary.contains_key(stem) => stem.to_string(),
                _ => continue,
            },
        };
        if name.starts_with('.') {
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

/// A folder's column heading: its name, as the user would say it
/// (`results/maco` → "maco"), not its full path.
pub fn column_name(dir: &Path) -> String {
    let absolute = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    absolute
        .file_name()
        .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// Each folder's column heading; folders of the same name get their parent's too.
fn column_names(dirs: &[PathBuf]) -> Vec<String> {
    let names: Vec<String> = dirs.iter().map(|d| column_name(d)).collect();
    names
        .iter()
        .zip(dirs)
        .map(|(name, dir)| {
            if names.iter().filter(|n| *n == name).count() < 2 {
                return name.clone();
            }
            let parent = dir.parent().map(column_name).unwrap_or_default();
            format!("{parent}/{name}")
        })
        .collect()
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
    let columns = column_names(&spec.dirs);
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
/// a cell is `{"s": src, "a": alpha, "g": gif, "e": exemplars sheet, "l": S, "p": p, "t": top-1, "x": stalled,
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
                put("e", cell.exemplars.clone().map(Into::into));
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

/// The page's style sheet and script, kept as files beside this module.
const STYLE: &str = include_str!("gallery.css");
const SCRIPT: &str = include_str!("gallery.js");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_the_summary_names_is_an_image_whatever_its_name_ends_with() {
        let root = std::env::temp_dir().join(format!("classviz-gallery-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        for name in ["643_mask.png", "1_goldfish.png", "coffee_967_espresso_grad-cam_mask.png"] {
            std::fs::write(root.join(name), b"png").unwrap();
        }
        let line = r#"{"class":643,"name":"mask","logit":53.2,"prob":1.0,"top5":[],"path":"643_mask.png","iters":256,"seconds":6.5,"stalled":false,"model":"m.pt","lr":0.05,"l2":0.0,"seed":0,"device":"cpu","batch":4}"#;
        let parsed: SummaryLine = serde_json::from_str(line).unwrap();
        let summary = HashMap::from([("643_mask".to_string(), parsed)]);
        let root = std::fs::canonicalize(&root).unwrap();
        let stems = |summary: &HashMap<String, SummaryLine>| -> Vec<String> {
            class_images(&root, summary).unwrap().into_iter().map(|(stem, _)| stem).collect()
        };
        assert_eq!(stems(&summary), ["1_goldfish", "643_mask"]);
        assert_eq!(stems(&HashMap::new()), ["1_goldfish"], "without a summary the name decides");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn names_from_stems() {
        assert_eq!(stem_name("100_black_swan"), "black swan");
        assert_eq!(stem_name("_blocks.3_c5"), "blocks.3 c5");
    }
}
