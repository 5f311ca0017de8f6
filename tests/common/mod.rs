//! Helpers shared by the integration tests: the built binary, the test
//! models made by `tests/make_models.py`, and scratch folders.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A model made by `tests/make_models.py`; fails clearly if it was not run.
pub fn test_model(name: &str) -> PathBuf {
    let path = root().join("tests/models").join(name);
    assert!(path.exists(), "{} is missing: run `make fixtures` (or `make test`)", path.display());
    path
}

/// The exported default model; fails clearly if `make weights` was not run.
pub fn default_model() -> PathBuf {
    let path = root().join("weights/efficientnet_lite0.pt");
    assert!(path.exists(), "{} is missing: run `make weights` (or `make test`)", path.display());
    path
}

/// A fresh, empty scratch folder under the target directory.
pub fn scratch(name: &str) -> PathBuf {
    let dir = root().join("target/test-scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The torch threads each classviz the tests run gets: `OMP_NUM_THREADS`, or
/// one. `make test` runs tests in parallel with one each (parallel OpenMP
/// pools on the same cores slow down 10-30x); `.ci/run` reruns the numeric
/// test files at two, one test at a time, so results must not hang on it.
pub fn torch_threads() -> String {
    std::env::var("OMP_NUM_THREADS")
        .ok()
        .filter(|n| n.parse::<u32>().is_ok_and(|n| n > 0))
        .unwrap_or_else(|| "1".to_string())
}

/// Give this test process's own torch work [`torch_threads`] threads.
pub fn use_torch_threads() {
    tch::set_num_threads(torch_threads().parse().unwrap());
}

/// Run the classviz binary with [`torch_threads`] torch threads, quietly.
pub fn classviz(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_classviz"))
        .args(["--threads", &torch_threads(), "--quiet"])
        .args(args)
        .current_dir(root())
        .output()
        .expect("running classviz")
}

/// Run the main command on `model` into `out`, with `args` besides.
pub fn classviz_on(model: &Path, out: &Path, args: &[&str]) -> Output {
    let paths = [model.to_str().unwrap(), out.to_str().unwrap()];
    classviz(&[&["--model", paths[0], "--out", paths[1]][..], args].concat())
}

/// A photo the tests explain, from the packages' photos in tests/data.
pub fn photo(name: &str) -> PathBuf {
    root().join("tests/data").join(name)
}

/// The linear test model, loaded in this process with [`torch_threads`].
pub fn linear_model() -> classviz_engine::model::Model {
    use_torch_threads();
    classviz_engine::model::Model::open(&test_model("linear.pt"), tch::Device::Cpu).unwrap()
}

/// A refusal as classviz should give it: exit `code`, one line on stderr
/// that starts `classviz: ` and says `needle`, no panic, and (with `out`) no
/// image or temp file left in the output folder.
pub fn assert_refused(output: &Output, code: i32, needle: &str, out: Option<&Path>) {
    let message = stderr(output);
    assert_eq!(output.status.code(), Some(code), "stderr: {message}");
    assert!(message.contains(needle), "expected {needle:?} in stderr: {message}");
    assert!(message.starts_with("classviz: "), "{message}");
    assert_eq!(message.trim_end().lines().count(), 1, "not one line: {message}");
    assert!(!message.contains("panicked") && !message.contains("internal error"), "{message}");
    if let Some(out) = out {
        let left: Vec<_> = listing(out)
            .into_iter()
            .filter(|n| n.ends_with(".png") || n.ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

/// Once `out` holds `count` PNGs (or `patience` has passed), interrupt
/// `child` as Ctrl-C would (SIGINT) and collect what it printed.
pub fn interrupt_after(
    child: std::process::Child,
    out: &Path,
    count: usize,
    patience: std::time::Duration,
) -> Output {
    let deadline = std::time::Instant::now() + patience;
    while pngs(out).len() < count && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let signal = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(signal.success(), "kill -INT failed");
    child.wait_with_output().unwrap()
}

/// After an interrupted run: every finished image has its result line on
/// stdout and its summary line, in the same order, and no temp file is left.
pub fn assert_every_finished_image_has_its_lines(output: &Output, out: &Path) {
    let classes = |lines: &[serde_json::Value]| -> Vec<i64> {
        lines.iter().map(|l| l["class"].as_i64().unwrap()).collect()
    };
    let printed = classes(&json_lines(output));
    assert_eq!(printed, classes(&summary(out)), "stdout and summary.jsonl agree");
    assert_eq!(printed.len(), pngs(out).len());
    assert!(listing(out).iter().all(|n| !n.ends_with(".tmp")), "{:?}", listing(out));
}

/// Run the classviz binary with exactly these arguments (for subcommands).
pub fn classviz_raw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_classviz"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("running classviz")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The names in `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => {
            entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
        }
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// The class images in `dir` (PNGs other than the contact sheet), sorted.
pub fn pngs(dir: &Path) -> Vec<String> {
    listing(dir).into_iter().filter(|n| n.ends_with(".png") && n != "grid.png").collect()
}

/// The lines of `<dir>/summary.jsonl`, each of which must be whole JSON.
pub fn summary(dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("summary.jsonl")).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).expect("a whole JSON summary line")).collect()
}

/// The JSON lines classviz printed on stdout.
/// What made the image at `path`: its PNG's provenance.
pub fn provenance(path: &Path) -> classviz_records::provenance::Provenance {
    let text = classviz_records::pixels::read_png_text(path).unwrap();
    classviz_records::provenance::Provenance::of_text(&text)
        .unwrap_or_else(|| panic!("{} has no provenance", path.display()))
}

pub fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    stdout(output).lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect()
}

/// Weights of the linear test model: `[classes][features]`.
pub fn linear_weights() -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(test_model("linear_weight.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let features = value["shape"][1].as_u64().unwrap() as usize;
    let flat: Vec<f64> =
        value["weight"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    flat.chunks(features).map(<[f64]>::to_vec).collect()
}

/// The photo at `path`, at its own size (the model's input size), as the
/// model's input: `[1, C, H, W]`, normalised, on the CPU.
pub fn model_input(model: &classviz_engine::model::Model, path: &Path) -> tch::Tensor {
    use classviz_engine::input::Normalise;
    let decoded = image::open(path).unwrap().to_rgb8();
    let (width, height) = decoded.dimensions();
    let pixels =
        classviz_records::pixels::Pixels { width, height, channels: 3, data: decoded.into_raw() };
    let x = classviz_engine::tensors::pixels_to_tensor(&pixels, tch::Device::Cpu).unwrap();
    model.input().normalise(&x).unwrap()
}

/// Whether two maps agree: their largest |difference|, printed with `what`,
/// is under `tolerance`.
pub fn assert_same_map(what: &str, ours: &tch::Tensor, theirs: &tch::Tensor, tolerance: f64) {
    let error = f64::try_from((ours - theirs).abs().max()).unwrap();
    eprintln!("{what}: max |difference| {error:.2e}");
    assert!(error < tolerance, "{what}: {error:.2e}");
}
