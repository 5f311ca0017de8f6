//! Every model family, end to end: classifiers from torchvision, timm and
//! Hugging Face (`tests/make_families.py` exports them through
//! `weights/export.py` as a user would, untrained and small), and a ViT and a
//! CNN trained here on digits. Each goes through `info`, the three presets, a
//! channel unit, facets, `saliency --method all` with the CAMs, and where the
//! fixture has them, `--sanity` and the compiled engine; the trained ViT must
//! show every digit and its Grad-CAM must beat random orders.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use classviz_core::attribution::{attention, Method};
use classviz_engine::model::Model;
use classviz_records::choice::Choice;
use common::{classviz, classviz_raw, root, scratch, stderr, stdout, test_model};
use tch::{Device, Tensor};

/// One fixture of `tests/models/families/index.json`.
struct Fixture {
    family: String,
    source: String,
    model: PathBuf,
    taps: Vec<String>,
    randomised: bool,
    compiled: bool,
    /// Exported with `--attention`: every block's attention probabilities are taps too.
    attention: bool,
}

fn fixtures() -> Vec<Fixture> {
    let index = test_model("families/index.json");
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(index).unwrap()).unwrap();
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| Fixture {
            family: entry["family"].as_str().unwrap().to_string(),
            source: entry["source"].as_str().unwrap().to_string(),
            model: test_model(&format!("families/{}", entry["model"].as_str().unwrap())),
            taps: entry["taps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
                .collect(),
            randomised: entry["randomised"].as_bool().unwrap(),
            compiled: entry["compiled"].as_bool().unwrap(),
            attention: entry["attention"].as_bool().unwrap(),
        })
        .collect()
}

fn threads() -> String {
    common::torch_threads()
}

/// A check of the matrix: its column and why it failed, if it did.
type Cell = (&'static str, Result<(), String>);

fn ok(output: &Output, what: &str) -> Result<(), String> {
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("{what}: exit {:?}: {}", output.status.code(), stderr(output).trim()))
    }
}

fn run(fixture: &Fixture, out: &Path, args: &[&str]) -> Output {
    let mut all = vec!["--model", fixture.model.to_str().unwrap(), "--out", out.to_str().unwrap()];
    all.extend_from_slice(args);
    classviz(&all)
}

/// `info`: the taps as grids, each with its layout, and with `--attention`
/// one attention tap (`[heads, T, T]`) per block after them.
fn info_cell(fixture: &Fixture) -> Result<(), String> {
    let threads = threads();
    let model = fixture.model.to_str().unwrap();
    let output = classviz_raw(&["info", "--threads", &threads, "--model", model, "--json"]);
    ok(&output, "info")?;
    let report: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    let taps = report["taps"].as_array().cloned().unwrap_or_default();
    let (attention, grids): (Vec<_>, Vec<_>) =
        taps.iter().partition(|t| t["layout"] == "attention");
    let names: Vec<&str> = grids.iter().filter_map(|t| t["name"].as_str()).collect();
    if names != fixture.taps.iter().map(String::as_str).collect::<Vec<_>>() {
        return Err(format!("info lists taps {names:?}"));
    }
    for tap in &grids {
        let grid = tap["shape"].as_array().map_or(0, Vec::len);
        if grid != 3 || tap["layout"].is_null() {
            return Err(format!("tap {tap} is not a grid with its layout"));
        }
    }
    if fixture.attention == attention.is_empty() {
        return Err(format!("{} attention taps", attention.len()));
    }
    for tap in &attention {
        let shape: Vec<u64> =
            tap["shape"].as_array().unwrap().iter().filter_map(|d| d.as_u64()).collect();
        if shape.len() != 3 || shape[1] != shape[2] {
            return Err(format!("attention tap {tap} is not [heads, T, T]"));
        }
    }
    Ok(())
}

/// A preset's images of classes 0 and 1, written and scored.
fn preset_cell(fixture: &Fixture, out: &Path, preset: &str) -> Result<(), String> {
    let output =
        run(fixture, out, &["--class", "0,1", "--preset", preset, "--iters", "3", "--json"]);
    ok(&output, preset)?;
    let rows = common::json_lines(&output);
    if rows.len() != 2 || rows.iter().any(|r| !r["logit"].as_f64().is_some_and(f64::is_finite)) {
        return Err(format!("{preset}: results {rows:?}"));
    }
    Ok(())
}

fn unit_cell(fixture: &Fixture, out: &Path) -> Result<(), String> {
    let objective = format!("channel:{}:1", fixture.taps[0]);
    let output = run(fixture, out, &["--objective", &objective, "--iters", "3", "--json"]);
    ok(&output, "unit")?;
    let row = &common::json_lines(&output)[0];
    row["score"].as_f64().filter(|s| s.is_finite()).map(|_| ()).ok_or(format!("unit: {row}"))
}

fn facets_cell(fixture: &Fixture, out: &Path) -> Result<(), String> {
    let output = run(fixture, out, &["--class", "2", "--facets", "2", "--iters", "3", "--json"]);
    ok(&output, "facets")?;
    let facets = common::json_lines(&output).iter().filter(|r| r["facet"].is_u64()).count();
    if facets != 2 {
        return Err(format!("facets: {facets} facet lines"));
    }
    Ok(())
}

/// `saliency --method all`: the four gradient methods, the four CAMs at the
/// default tap (the last whose gradient is not zero) and, with attention taps,
/// the two rollouts.
fn saliency_cell(fixture: &Fixture, out: &Path) -> Result<(), String> {
    let threads = threads();
    let photo = root().join("tests/data/coffee.png");
    let args = [
        "saliency",
        "--threads",
        &threads,
        "--model",
        fixture.model.to_str().unwrap(),
        "--image",
        photo.to_str().unwrap(),
        "--method",
        "all",
        "--random-orders",
        "2",
        "--samples",
        "2",
        "--steps",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ];
    let output = classviz_raw(&args);
    ok(&output, "saliency")?;
    let rows = common::json_lines(&output);
    let taps: Vec<&str> = rows.iter().filter_map(|r| r["tap"].as_str()).collect();
    let one_tap = taps.windows(2).all(|pair| pair[0] == pair[1]);
    let rollouts = rows
        .iter()
        .filter(|r| r["method"] == "rollout" || r["method"] == "gradient-rollout")
        .count();
    let expected_rollouts = if fixture.attention { 2 } else { 0 };
    match (rows.len(), taps.len(), one_tap, rollouts) {
        (all, 4, true, r) if r == expected_rollouts && all == 8 + r => Ok(()),
        (all, cams, _, r) => {
            Err(format!("saliency: {all} maps, {r} rollouts, {cams} CAMs at taps {taps:?}"))
        }
    }
}

fn sanity_cell(fixture: &Fixture) -> Result<(), String> {
    let threads = threads();
    let photo = root().join("tests/data/coffee.png");
    let model = fixture.model.to_str().unwrap();
    let image = photo.to_str().unwrap();
    let args = ["saliency", "--threads", &threads, "--model", model, "--image", image];
    let output =
        classviz_raw(&[&args[..], &["--sanity", "--method", "grad-cam", "--json"]].concat());
    ok(&output, "sanity")?;
    let rows = common::json_lines(&output);
    if rows.is_empty() || rows.iter().any(|r| !r["spearman"].as_f64().is_some_and(f64::is_finite)) {
        return Err(format!("sanity: {rows:?}"));
    }
    Ok(())
}

fn compiled_cell(fixture: &Fixture, out: &Path) -> Result<(), String> {
    let output = run(fixture, out, &["--class", "0,1,2", "--engine", "compiled", "--iters", "3"]);
    ok(&output, "compiled")
}

/// Every column of the matrix for one fixture.
fn cells(fixture: &Fixture) -> Vec<Cell> {
    let out =
        scratch(&format!("families-{}", fixture.model.file_stem().unwrap().to_string_lossy()));
    let mut cells: Vec<Cell> = vec![
        ("info", info_cell(fixture)),
        ("paper", preset_cell(fixture, &out.join("paper"), "simonyan")),
        ("natural", preset_cell(fixture, &out.join("natural"), "natural")),
        ("maco", preset_cell(fixture, &out.join("maco"), "maco")),
        ("unit", unit_cell(fixture, &out.join("unit"))),
        ("facets", facets_cell(fixture, &out.join("facets"))),
        ("saliency", saliency_cell(fixture, &out.join("saliency"))),
    ];
    if fixture.randomised {
        cells.push(("sanity", sanity_cell(fixture)));
    }
    if fixture.compiled {
        cells.push(("compiled", compiled_cell(fixture, &out.join("compiled"))));
    }
    cells
}

/// Run the matrix for the fixtures of `source`, print it, and fail on any ✗.
fn matrix(source: &str) {
    let fixtures: Vec<Fixture> = fixtures().into_iter().filter(|f| f.source == source).collect();
    assert!(!fixtures.is_empty(), "no {source} fixtures in index.json");
    let mut failures = Vec::new();
    for fixture in &fixtures {
        let row = cells(fixture);
        let marks: Vec<String> = row
            .iter()
            .map(|(column, result)| format!("{column} {}", if result.is_ok() { "✓" } else { "✗" }))
            .collect();
        eprintln!("{source} {}: {}", fixture.family, marks.join(", "));
        for (column, result) in row {
            if let Err(why) = result {
                failures.push(format!("{source} {} {column}: {why}", fixture.family));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn torchvision_families_run_end_to_end() {
    matrix("torchvision");
}

#[test]
fn timm_families_run_end_to_end() {
    matrix("timm");
}

#[test]
fn hugging_face_families_run_end_to_end() {
    matrix("Hugging Face");
}

#[test]
fn your_own_module_runs_end_to_end() {
    matrix("own module");
}

/// `saliency --method METHOD…` with faithfulness scores against at most 16
/// random orders on the trained ViT's 30 held-out digits: the `--json` lines,
/// one per digit and method.
fn faithfulness_on_held_out_digits(scratch_name: &str, method: &[&str]) -> Vec<serde_json::Value> {
    let out = scratch(scratch_name);
    let digits: Vec<String> = common::listing(&test_model("digits_test"))
        .into_iter()
        .map(|name| test_model("digits_test").join(name).display().to_string())
        .collect();
    let threads = threads();
    let model = digits_vit();
    let mut args = vec!["saliency", "--threads", &threads, "--model", model.to_str().unwrap()];
    for digit in &digits {
        args.extend(["--image", digit.as_str()]);
    }
    args.push("--method");
    args.extend_from_slice(method);
    args.extend([
        "--faithfulness",
        "--random-orders",
        "16",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    let output = classviz_raw(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let rows = common::json_lines(&output);
    let methods = method[0].split(',').count();
    assert_eq!(rows.len(), methods * digits.len());
    rows
}

/// The trained digits ViT of `tests/make_families.py`, with its attention taps.
fn digits_vit() -> PathBuf {
    test_model("families/digits_vit_taps.pt")
}

#[test]
fn the_papers_preset_shows_every_digit_on_a_trained_vit() {
    let out = scratch("families-vit-digits");
    let model = digits_vit();
    let args = ["--model", model.to_str().unwrap(), "--class", "all", "--out"];
    let output = classviz(&[&args[..], &[out.to_str().unwrap(), "--json"]].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    let rows = common::json_lines(&output);
    assert_eq!(rows.len(), 10);
    for row in &rows {
        assert_eq!(row["top5"][0]["class"], row["class"], "not top-1: {row}");
    }
}

/// Grad-CAM at the trained ViT's last token tap (the second of three blocks,
/// whose patch tokens reach the class token through the third) against 16
/// random pixel orders on 30 held-out digits. Deleting the pixels it points
/// at first must lower the digit's probability faster than random orders do
/// for most digits; how many it beats on both deletion and insertion is
/// printed (docs/models.md has the figures: Grad-CAM on a ViT is weak on
/// insertion, as the literature finds).
#[test]
fn grad_cam_at_a_vits_token_tap_points_at_what_the_vit_needs() {
    let tap = "encoder.layers.encoder_layer_1";
    let rows = faithfulness_on_held_out_digits("families-vit-cam", &["grad-cam", "--tap", tap]);
    let count = |test: &dyn Fn(&serde_json::Value) -> bool| rows.iter().filter(|r| test(r)).count();
    let deletion = count(&|r| r["deletion_auc"].as_f64() < r["random_auc"].as_f64());
    let both = count(&|r| r["beats_random"] == true);
    eprintln!(
        "grad-cam at {tap}: deletion beats random on {deletion}, both metrics on {both}, of {} held-out digits",
        rows.len()
    );
    assert!(
        2 * deletion > rows.len(),
        "deletion beats random on only {deletion} of {}",
        rows.len()
    );
}

/// Largest |classviz − reference| of an attention map (maps in [0, 1]).
const ATTENTION_TOLERANCE: f64 = 1e-4;

/// Attention rollout and gradient-weighted rollout on the trained ViT exported
/// with `--attention` match an independent implementation on the eager
/// torchvision model (tests/attention_reference.py: the probabilities caught in
/// each nn.MultiheadAttention, the rules written from the papers), on the same
/// digits and class.
#[test]
fn attention_rollouts_match_the_reference_on_the_eager_vit() {
    common::use_torch_threads();
    let text = std::fs::read_to_string(test_model("attention_reference.json"))
        .expect("run `make fixtures`");
    let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
    let model = Model::open(&digits_vit(), Device::Cpu).unwrap();
    let taps: Vec<_> =
        model.info.attention_taps("the test").unwrap().iter().map(|t| t.id).collect();
    assert_eq!(taps.len(), 3, "one attention tap per block");
    for (digit, entry) in reference.as_object().unwrap() {
        let x = common::model_input(&model, &test_model("digits_test").join(digit));
        let class = entry["class"].as_i64().unwrap();
        for method in ["rollout", "gradient-rollout"] {
            let kind = Method::parse(method).unwrap();
            let ours = attention::attention_map(&model, &x, class, kind, &taps).unwrap();
            let theirs: Vec<f32> = entry[method]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            let theirs = Tensor::from_slice(&theirs).view_as(&ours);
            common::assert_same_map(
                &format!("{digit} {method}"),
                &ours,
                &theirs,
                ATTENTION_TOLERANCE,
            );
        }
    }
}

/// Attention rollout on the trained ViT against random pixel orders on the 30
/// held-out digits: it must beat random orders on deletion and insertion both
/// for most digits, where Grad-CAM at the last token tap does not (printed;
/// docs/models.md has the figures of every method).
#[test]
fn attention_rollout_beats_random_orders_on_most_held_out_digits() {
    let rows =
        faithfulness_on_held_out_digits("families-vit-rollout", &["rollout,gradient-rollout"]);
    for method in ["rollout", "gradient-rollout"] {
        let of: Vec<_> = rows.iter().filter(|r| r["method"] == method).collect();
        let both = of.iter().filter(|r| r["beats_random"] == true).count();
        eprintln!(
            "{method}: beats random on both metrics on {both} of {} held-out digits",
            of.len()
        );
        if method == "rollout" {
            assert!(2 * both > of.len(), "rollout beats random on only {both} of {}", of.len());
        }
    }
}

/// The exporter as a user runs it, with its stderr.
fn export(args: &[&str]) -> Output {
    std::process::Command::new(root().join(".venv/bin/python3"))
        .arg(root().join("weights/export.py"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("running weights/export.py")
}

/// A refusal is one line on stderr and exit status 1.
fn refused(output: &Output, expected: &str) {
    let message = stderr(output);
    let lines: Vec<&str> =
        message.lines().filter(|l| !l.trim().is_empty() && !l.contains("Warning")).collect();
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert_eq!(lines.len(), 1, "not one line: {message}");
    assert!(lines[0].contains(expected), "{message}");
}

#[test]
fn the_exporter_refuses_in_one_line() {
    let out = scratch("families-refusals");
    let out = out.to_str().unwrap();
    let own = |factory: &str, shape: &str| {
        let entry = format!("tests.checkpoint_module:{factory}");
        let args = ["--entry", &entry, "--random-init", "--input-shape", shape, "--mean", "0.5"];
        [
            args.map(String::from).to_vec(),
            ["--std", "0.25", "--out", out].map(String::from).to_vec(),
        ]
        .concat()
    };
    let with = |base: Vec<String>, extra: &[&str]| {
        let mut all = base;
        all.extend(extra.iter().map(|s| s.to_string()));
        all
    };
    let call = |args: Vec<String>| export(&args.iter().map(String::as_str).collect::<Vec<_>>());
    refused(&call(own("branchy", "3,8,8")), "branches on tensor values");
    refused(&call(with(own("build", "3,16,16"), &["--taps", "nothing"])), "unknown tap nothing");
    refused(&call(with(own("odd_tokens", "3,16,16"), &["--taps", "blocks"])), "not prefix tokens");
    refused(&call(own("build", "3,16")), "--input-shape must be C,H,W");
    refused(
        &export(&["--timm", "vit_tiny_patch16_224", "--checkpoint", "/nonexistent.pt"]),
        "no such file",
    );
    refused(
        &export(&["--torchvision", "resnet_9000", "--random-init"]),
        "not a torchvision classifier",
    );
    refused(&export(&["--hf", out]), "no config.json");
    refused(&call(with(own("build", "3,16,16"), &["--attention"])), "no self-attention");
}

/// The rollouts on a model exported without `--attention`: one line naming the fix.
#[test]
fn a_rollout_without_attention_taps_is_refused_in_one_line() {
    let out = scratch("families-no-attention");
    let model = test_model("tiny_taps.pt");
    let photo = root().join("tests/data/coffee.png");
    let args = ["saliency", "--model", model.to_str().unwrap(), "--image", photo.to_str().unwrap()];
    for method in ["rollout", "gradient-rollout"] {
        let output = classviz_raw(
            &[&args[..], &["--method", method, "--out", out.to_str().unwrap()]].concat(),
        );
        refused(&output, "--attention");
        assert!(common::listing(&out).is_empty(), "nothing is written");
    }
}

#[test]
fn taps_are_listed_before_anything_is_exported() {
    let out = scratch("families-list");
    let listing = export(&[
        "--torchvision",
        "vit_b_16",
        "--random-init",
        "--list-taps",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(listing.status.success(), "{}", stderr(&listing));
    let text = stdout(&listing);
    assert!(
        text.lines().any(|l| l.contains("encoder.layers.encoder_layer_11")
            && l.contains("197x768 tokens (1 prefix, 14x14 grid)")
            && l.contains("-> 768x14x14")
            && l.contains("no CAMs")),
        "{text}"
    );
    assert!(common::listing(&out).is_empty(), "--list-taps wrote files");
}

#[test]
fn the_exporters_tap_layouts_hold() {
    let output = std::process::Command::new(root().join(".venv/bin/python3"))
        .arg(root().join("tests/export_taps.py"))
        .output()
        .expect("running tests/export_taps.py");
    assert!(output.status.success(), "{}{}", stdout(&output), stderr(&output));
}

/// A ViT's last block: its patch tokens never reach the class token, so the
/// class score's gradient there is zero. Class activation maps default to the
/// block before it; one asked for at the last block is refused in one line
/// before any map is written, and early.
#[test]
fn cams_on_a_vit_skip_its_last_block_and_refuse_it_first() {
    let vit =
        fixtures().into_iter().find(|f| f.taps.last().is_some_and(|t| t == "blocks.1")).unwrap();
    let out = scratch("families-vit-last-block");
    let threads = threads();
    let photo = root().join("tests/data/coffee.png");
    let base = ["saliency", "--threads", &threads, "--model", vit.model.to_str().unwrap()];
    let base =
        [&base[..], &["--image", photo.to_str().unwrap(), "--out", out.to_str().unwrap()]].concat();
    let output = classviz_raw(&[&base[..], &["--method", "grad-cam", "--json"]].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(common::json_lines(&output)[0]["tap"], "blocks.0", "the last block is passed over");
    let out = scratch("families-vit-last-block-refused");
    let base = [&base[..base.len() - 1], &[out.to_str().unwrap()]].concat();
    let started = std::time::Instant::now();
    let refused = classviz_raw(
        &[&base[..], &["--method", "gradient,grad-cam", "--tap", "blocks.1"]].concat(),
    );
    common::assert_refused(&refused, 1, "gradient at tap blocks.1 is zero everywhere", Some(&out));
    eprintln!("refused in {:.1} s", started.elapsed().as_secs_f64());
}
