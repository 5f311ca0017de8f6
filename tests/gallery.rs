//! The HTML gallery: a real HTML parser reads the page; every image of the
//! folders is referenced and nothing outside them; a hostile class name stays
//! text; a missing or broken summary does not stop the page.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{classviz, classviz_raw, scratch, stderr, stdout, test_model};
use scraper::{Html, Selector};

fn page(path: &Path) -> Html {
    Html::parse_document(&std::fs::read_to_string(path).unwrap())
}

/// The page's data: the JSON the HTML parser finds in `<script id="data">`.
fn data(html: &Html) -> serde_json::Value {
    let selector = Selector::parse("script#data").unwrap();
    let script = html.select(&selector).next().expect("a data block");
    assert_eq!(script.value().attr("type"), Some("application/json"));
    serde_json::from_str(&script.text().collect::<String>()).unwrap()
}

/// Every file the page's rows point at (image, alpha, gif), in order.
fn references(data: &serde_json::Value) -> Vec<String> {
    let mut found = Vec::new();
    for row in data["rows"].as_array().unwrap() {
        for cell in row["c"].as_array().unwrap().iter().filter(|c| !c.is_null()) {
            for key in ["s", "a", "g"] {
                if let Some(src) = cell[key].as_str() {
                    found.push(src.to_string());
                }
            }
        }
    }
    found
}

fn labels(data: &serde_json::Value) -> Vec<String> {
    data["rows"].as_array().unwrap().iter().map(|r| r["n"].as_str().unwrap().to_string()).collect()
}

/// A run of the linear model into `out` (all classes unless `extra` names some).
fn linear_run(out: &Path, extra: &[&str]) {
    let model = test_model("linear.pt");
    let mut args = vec!["--model", model.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend_from_slice(&["--iters", "5"]);
    if !extra.contains(&"--class") {
        args.extend_from_slice(&["--class", "all"]);
    }
    args.extend_from_slice(extra);
    let output = classviz(&args);
    assert!(output.status.success(), "{}", stderr(&output));
}

/// Percent-decoded `src` → the file it names, relative to the page's folder.
fn resolve(page_dir: &Path, src: &str) -> PathBuf {
    let mut decoded = Vec::new();
    let bytes = src.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            decoded.push(u8::from_str_radix(&src[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    page_dir.join(String::from_utf8(decoded).unwrap())
}

#[test]
fn the_page_references_every_image_of_the_folders_and_nothing_else() {
    let dir = scratch("gallery-columns");
    let (a, b) = (dir.join("simonyan"), dir.join("natural"));
    linear_run(&a, &["--alpha"]);
    linear_run(&b, &["--preset", "natural", "--class", "0-2"]);
    std::fs::write(dir.join("outside.png"), b"not referenced").unwrap();
    // A score file from `classviz score --json`, as a second network's verdict.
    let pngs: Vec<String> =
        ["0_zero.png", "1_one.png"].iter().map(|n| a.join(n).display().to_string()).collect();
    let linear = test_model("linear.pt");
    let mut score_args = vec!["score", "--model", linear.to_str().unwrap(), "--json"];
    score_args.extend(pngs.iter().map(String::as_str));
    let scored = classviz_raw(&score_args);
    assert!(scored.status.success(), "{}", stderr(&scored));
    let scores = dir.join("scores.json");
    std::fs::write(&scores, stdout(&scored)).unwrap();

    let output = classviz_raw(&[
        "gallery",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--scores",
        scores.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("5 rows, 8 images from 2 folder(s)"), "{}", stdout(&output));
    let path = a.join("index.html");
    let html = page(&path);
    assert!(html.errors.is_empty(), "HTML parse errors: {:?}", html.errors);

    let data = data(&html);
    assert_references_every_image(&data, &a, &[&a, &b]);
    let rows = data["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    let scored: Vec<&serde_json::Value> = rows
        .iter()
        .flat_map(|r| r["c"].as_array().unwrap())
        .filter(|c| c.get("r").is_some())
        .collect();
    assert_eq!(scored.len(), 2, "a second network's verdict per scored image");
    let alphas = rows.iter().filter(|r| r["c"][0].get("a").is_some()).count();
    assert_eq!(alphas, 5, "the alpha images of the first folder");
    assert_eq!(data["columns"].as_array().unwrap().len(), 2);
}

/// The page in `page_dir` refers, relatively, to every image of `folders`
/// and to nothing outside them.
fn assert_references_every_image(data: &serde_json::Value, page_dir: &Path, folders: &[&Path]) {
    let canonical: Vec<_> = folders.iter().map(|f| std::fs::canonicalize(f).unwrap()).collect();
    let mut referenced = BTreeSet::new();
    for src in references(data) {
        assert!(!src.contains("://") && !src.starts_with('/'), "only relative references: {src}");
        let file = std::fs::canonicalize(resolve(page_dir, &src)).unwrap();
        assert!(canonical.iter().any(|f| file.starts_with(f)), "{src} is outside the folders");
        referenced.insert(file);
    }
    for folder in folders {
        for name in common::pngs(folder) {
            let file = std::fs::canonicalize(folder.join(&name)).unwrap();
            assert!(
                referenced.contains(&file),
                "{name} in {} is not on the page",
                folder.display()
            );
        }
    }
}

#[test]
fn a_hostile_class_name_stays_text() {
    let dir = scratch("gallery-hostile");
    let model = dir.join("m.pt");
    std::fs::copy(test_model("linear.pt"), &model).unwrap();
    let names = r#"["<script>alert(1)</script>", "a \"quoted\" 'name'", "x & y", "<img src=x onerror=alert(2)>", "four"]"#;
    std::fs::write(
        dir.join("m.json"),
        format!(r#"{{"input_shape": [3, 8, 8], "mean": [0.5, 0.4, 0.3], "std": [0.25, 0.2, 0.5], "labels": {names}}}"#),
    )
    .unwrap();
    let out = dir.join("out");
    let output =
        common::classviz_on(&model, &out, &["--class", "all", "--iters", "3", "--gallery"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(
        !text.contains("<script>alert") && !text.contains("<img src=x"),
        "raw markup in the page"
    );
    let html = page(&out.join("index.html"));
    let scripts = Selector::parse("script").unwrap();
    assert_eq!(html.select(&scripts).count(), 2, "only the page's data block and its script");
    let images = Selector::parse("img").unwrap();
    assert!(html.select(&images).all(|img| img.value().attr("onerror").is_none()));
    // The names reach the page as data, intact, and the script only ever
    // sets them as text.
    let labels = labels(&data(&html));
    assert!(labels.contains(&"0 <script>alert(1)</script>".to_string()), "{labels:?}");
    assert!(labels.contains(&"3 <img src=x onerror=alert(2)>".to_string()), "{labels:?}");
    assert!(!text.contains("innerHTML"), "the page never parses data as HTML");
}

#[test]
fn a_missing_or_broken_summary_keeps_the_images() {
    let dir = scratch("gallery-summary");
    let out = dir.join("run");
    linear_run(&out, &[]);
    let summary = out.join("summary.jsonl");
    let text = std::fs::read_to_string(&summary).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(2, "{not json");
    std::fs::write(&summary, lines.join("\n")).unwrap();
    let output = classviz_raw(&["gallery", out.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("summary.jsonl line 3 is not JSON"), "{}", stderr(&output));
    let html = page(&out.join("index.html"));
    let rows = data(&html)["rows"].as_array().unwrap().clone();
    let with_scores = rows.iter().filter(|r| r["c"][0].get("p").is_some()).count();
    assert_eq!(rows.len(), 5, "every image is a row");
    assert_eq!(with_scores, 5, "the broken line is skipped, the good ones still give scores");

    std::fs::remove_file(&summary).unwrap();
    let output = classviz_raw(&[
        "gallery",
        out.to_str().unwrap(),
        "--out",
        dir.join("page.html").to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let html = page(&dir.join("page.html"));
    let sources = references(&data(&html));
    assert_eq!(sources.len(), 5, "images only");
    assert!(sources.iter().all(|s| s.starts_with("run/")), "relative to the page: {sources:?}");
}

#[test]
fn embed_puts_the_images_in_the_page() {
    let dir = scratch("gallery-embed");
    linear_run(&dir, &["--class", "0,1"]);
    let output = classviz_raw(&["gallery", dir.to_str().unwrap(), "--embed"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let html = page(&dir.join("index.html"));
    let sources = references(&data(&html));
    assert_eq!(sources.len(), 2);
    assert!(sources.iter().all(|s| s.starts_with("data:image/png;base64,")), "{sources:?}");
}

#[test]
fn gallery_errors_are_one_line() {
    let dir = scratch("gallery-bad");
    let output = classviz_raw(&["gallery", dir.join("none").to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("cannot be read"), "{}", stderr(&output));
    let output = classviz_raw(&["gallery"]);
    assert_eq!(output.status.code(), Some(2));
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "[]").unwrap();
    let output =
        classviz_raw(&["gallery", dir.to_str().unwrap(), "--scores", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("is not the JSON of `classviz score --json`"),
        "{}",
        stderr(&output)
    );
    assert_eq!(stderr(&output).trim_end().lines().count(), 1);
}

/// Columns are named as the user would say them (the folder's name, not its
/// path); PNGs that do not decode are left out with a warning that counts
/// them; a gallery with no image at all is refused in one line.
#[test]
fn broken_images_are_skipped_and_empty_galleries_refused() {
    let dir = scratch("gallery-broken");
    let run = dir.join("natural");
    linear_run(&run, &["--class", "0,1"]);
    std::fs::write(run.join("7_broken.png"), b"\x89PNG\r\n\x1a\ntruncated").unwrap();
    let output = classviz_raw(&["gallery", run.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("1 image(s) that do not decode were left out"),
        "{}",
        stderr(&output)
    );
    let html = page(&run.join("index.html"));
    let data = data(&html);
    assert_eq!(data["rows"].as_array().unwrap().len(), 2, "the broken image has no row");
    assert_eq!(data["columns"], serde_json::json!(["natural"]), "the folder's name, not its path");

    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("0_nothing.png"), b"not a png").unwrap();
    let output = classviz_raw(&["gallery", empty.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("no images to show in"), "{message}");
    assert_eq!(message.trim_end().lines().count(), 1, "{message}");
}
