//! Resume with provenance: a rerun into the same folder skips images made
//! with exactly its settings, refuses (one line, exit 2) to hand back images
//! made with others, naming what differs, and `--force` makes them again.
//! `status` takes the run's flags and sees every kind of image: classes,
//! facets, units and accentuations.

mod common;

use std::path::Path;

use common::{classviz, classviz_raw, root, scratch, stderr, stdout, test_model};

/// Class 1 of the linear model into `out`, with `--iters 3` and that model
/// unless `extra` says otherwise.
fn linear_run(out: &Path, extra: &[&str]) -> std::process::Output {
    let linear = test_model("linear.pt");
    let model: &[&str] =
        if extra.contains(&"--model") { &[] } else { &["--model", linear.to_str().unwrap()] };
    let iters: &[&str] = if extra.contains(&"--iters") { &[] } else { &["--iters", "3"] };
    let base = ["--out", out.to_str().unwrap(), "--class", "1"];
    classviz(&[&base[..], model, iters, extra].concat())
}

#[test]
fn a_rerun_with_any_other_setting_refuses_and_names_it() {
    let out = scratch("resume-settings");
    let first = linear_run(&out, &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let other_model = test_model("dict_output.pt");
    for (extra, named) in [
        (vec!["--preset", "natural"], "style.param.param pixel (now fourier)"),
        (vec!["--iters", "4"], "iters 3 (now 4)"),
        (vec!["--lr", "0.5"], "lr 1.0 (now 0.5)"),
        (vec!["--l2", "0.001"], "l2"),
        (vec!["--seed", "7"], "seed 0 (now 7)"),
        (vec!["--init", "noise:0.01"], "init none (now noise:0.01)"),
        (vec!["--model", other_model.to_str().unwrap()], "model "),
    ] {
        let output = linear_run(&out, &extra);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{extra:?}: {message}");
        assert_eq!(message.trim().lines().count(), 1, "{extra:?}: one line: {message}");
        assert!(message.contains("1_one.png was made with other settings"), "{message}");
        assert!(message.contains(named), "{extra:?} should name {named}: {message}");
        assert!(message.contains("--force"), "{message}");
    }
}

#[test]
fn the_same_settings_skip_and_force_redoes() {
    let out = scratch("resume-same");
    assert!(linear_run(&out, &[]).status.success());
    let before = std::fs::metadata(out.join("1_one.png")).unwrap().modified().unwrap();
    let again = linear_run(&out, &["--json"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stderr(&again).contains("skipping 1 of 1 classes"), "{}", stderr(&again));
    assert_eq!(common::json_lines(&again)[0]["skipped"], true);
    assert_eq!(std::fs::metadata(out.join("1_one.png")).unwrap().modified().unwrap(), before);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let forced = linear_run(&out, &["--iters", "5", "--force", "--json"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_eq!(common::json_lines(&forced)[0]["iters"], 5);
    assert_ne!(std::fs::metadata(out.join("1_one.png")).unwrap().modified().unwrap(), before);
    let now = linear_run(&out, &["--iters", "5"]);
    assert!(now.status.success(), "the forced image carries the new settings: {}", stderr(&now));
    let lines = common::summary(&out);
    assert_eq!(lines.len(), 1, "one summary line for the one image");
    assert_eq!(lines[0]["iters"], 5);
}

/// `status` with the run's flags, as JSON.
fn status(args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let threads = common::torch_threads();
    let all = [&["status", "--threads", threads.as_str()][..], args, &["--json"]].concat();
    let output = classviz_raw(&all);
    let report = serde_json::from_str(stdout(&output).trim())
        .unwrap_or_else(|_| panic!("status printed no report: {}", stderr(&output)));
    (output.status.code(), report)
}

/// Before a run `status` says all is missing, after it all is done.
fn status_sees(run: &[&str]) {
    let (code, before) = status(run);
    assert_eq!(code, Some(1), "{before}");
    assert_eq!(before["done"], 0, "{before}");
    let output = classviz(run);
    assert!(output.status.success(), "{}", stderr(&output));
    let (code, after) = status(run);
    assert_eq!(code, Some(0), "{run:?}: {after}");
    assert_eq!(after["done"], after["total"], "{after}");
    assert_eq!(after["missing"], serde_json::json!([]), "{after}");
}

#[test]
fn status_sees_classes_facets_units_and_accentuations() {
    let detector = test_model("detector.pt");
    let model = detector.to_str().unwrap();
    let coffee = root().join("tests/data/coffee.png");
    let photo = format!("image:{}", coffee.display());
    for (name, extra) in [
        ("classes", vec!["--class", "0,1"]),
        ("facets", vec!["--class", "0,1", "--facets", "2"]),
        ("units", vec!["--objective", "channel:detect", "--channels", "0-2"]),
        (
            "accentuation",
            vec!["--class", "1", "--init", &photo, "--accentuate", "1", "--tap", "detect"],
        ),
    ] {
        let out = scratch(&format!("resume-status-{name}"));
        let base = ["--model", model, "--out", out.to_str().unwrap(), "--iters", "3"];
        status_sees(&[&base[..], &extra[..]].concat());
    }
}

#[test]
fn status_reports_images_made_with_other_settings() {
    let out = scratch("resume-status-stale");
    assert!(linear_run(&out, &[]).status.success());
    let model = test_model("linear.pt");
    let run =
        ["--model", model.to_str().unwrap(), "--out", out.to_str().unwrap(), "--class", "0,1"];
    let (code, report) = status(&[&run[..], &["--iters", "9"]].concat());
    assert_eq!(code, Some(1));
    assert_eq!(
        (report["stale"].clone(), report["missing"].clone()),
        (serde_json::json!([1]), serde_json::json!([0]))
    );
}

#[test]
fn a_dry_run_shows_the_plan_and_what_it_would_skip_without_writing() {
    let out = scratch("resume-dry-run");
    assert!(linear_run(&out, &[]).status.success());
    let listing = common::listing(&out);
    let model = test_model("linear.pt");
    let args =
        ["--model", model.to_str().unwrap(), "--out", out.to_str().unwrap(), "--class", "0,1"];
    let output = classviz(&[&args[..], &["--iters", "3", "--dry-run", "--json"]].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    let plan: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(plan["settings"]["iters"], 3);
    assert_eq!(plan["device"], "cpu");
    assert_eq!(plan["write"].as_array().unwrap().len(), 1, "{plan}");
    assert!(plan["write"][0].as_str().unwrap().ends_with("0_zero.png"), "{plan}");
    assert!(plan["skip"][0]["path"].as_str().unwrap().ends_with("1_one.png"), "{plan}");
    assert_eq!(common::listing(&out), listing, "a dry run writes nothing");
    let human =
        classviz(&[&args[..], &["--iters", "3", "--dry-run", "--preset", "natural"]].concat());
    let text = stdout(&human);
    assert!(text.contains("preset       natural") && text.contains("would skip"), "{text}");
}
