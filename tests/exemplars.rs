//! `classviz exemplars`: the images that drive a class or a unit, against a
//! brute force (tests/make_exemplars.py: each image alone through the model in
//! Python), across shards and an interruption, with bad inputs, on the real
//! model, and the receptive field of a model whose field is known.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use classviz_core::exemplars::receptive_field;
use classviz_engine::model::Model;
use common::{classviz_raw, listing, root, scratch, stderr, test_model};
use tch::Device;

fn exemplars(args: &[&str]) -> std::process::Output {
    let threads = common::torch_threads();
    classviz_raw(&[&["exemplars", "--threads", threads.as_str(), "--quiet"][..], args].concat())
}

fn digits_cnn() -> PathBuf {
    test_model("families/digits_cnn_taps.pt")
}

fn folder() -> PathBuf {
    test_model("exemplars")
}

fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string(test_model("exemplars_reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The records `exemplars.jsonl` holds, by target.
fn results(out: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(out.join("exemplars.jsonl")).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Two folders' scans keep the same images in the same order, with the same
/// activations (to float rounding: a batch of another size sums in another order).
fn assert_same_scans(a: &Path, b: &Path, what: &str) {
    let (a, b) = (results(a), results(b));
    assert_eq!(a.len(), b.len(), "{what}");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((&x["target"], &x["images"]), (&y["target"], &y["images"]), "{what}");
        let (x, y) = (x["top"].as_array().unwrap(), y["top"].as_array().unwrap());
        let images = |kept: &[serde_json::Value]| {
            kept.iter().map(|e| e["image"].clone()).collect::<Vec<_>>()
        };
        assert_eq!(images(x), images(y), "{what}");
        for (p, q) in x.iter().zip(y) {
            let (p, q) = (p["activation"].as_f64().unwrap(), q["activation"].as_f64().unwrap());
            assert!((p - q).abs() <= 1e-5 * q.abs().max(1.0), "{what}: {p} vs {q}");
        }
    }
}

/// Our images and activations against the reference's: the same images in the
/// same order, but that two images whose activations tie may trade places.
fn assert_same_ranking(ours: &serde_json::Value, theirs: &serde_json::Value, what: &str) {
    let (ours, theirs) = (ours.as_array().unwrap(), theirs.as_array().unwrap());
    assert_eq!(ours.len(), theirs.len(), "{what}");
    let base = folder();
    for (rank, (a, b)) in ours.iter().zip(theirs).enumerate() {
        let (x, y) = (a["activation"].as_f64().unwrap(), b["activation"].as_f64().unwrap());
        assert!((x - y).abs() <= 1e-4 * y.abs().max(1.0), "{what} #{rank}: {x} vs {y}");
        let image = Path::new(a["image"].as_str().unwrap()).strip_prefix(&base).unwrap();
        if image != Path::new(b["image"].as_str().unwrap()) {
            let tied = theirs.iter().any(|t| {
                Path::new(t["image"].as_str().unwrap()) == image
                    && (t["activation"].as_f64().unwrap() - y).abs() <= 1e-5 * y.abs().max(1.0)
            });
            assert!(tied, "{what} #{rank}: {image:?} where the brute force has {}", b["image"]);
        }
    }
}

#[test]
fn class_and_channel_exemplars_equal_the_brute_force_including_ties() {
    let expected = reference();
    let model = digits_cnn();
    let (folder, out) = (folder(), scratch("exemplars-brute-force"));
    let run = |extra: &[&str]| {
        let base = ["--model", model.to_str().unwrap(), "--images", folder.to_str().unwrap()];
        exemplars(&[&base[..], &["--bottom", "3", "--out", out.to_str().unwrap()], extra].concat())
    };
    let output = run(&["--class", "0-9"]);
    assert!(output.status.success(), "{}", stderr(&output));
    for (class, line) in results(&out).iter().enumerate() {
        let theirs = &expected["classes"][class.to_string()];
        assert_same_ranking(&line["top"], &theirs["top"], &format!("class {class} top"));
        assert_same_ranking(&line["bottom"], &theirs["bottom"], &format!("class {class} bottom"));
        assert_eq!(line["images"], expected["images"]);
    }
    let output = run(&["--objective", "channel:4", "--channels", "0-7"]);
    assert!(output.status.success(), "{}", stderr(&output));
    for (channel, line) in results(&out).iter().enumerate() {
        let theirs = &expected["channels"][channel.to_string()];
        assert_same_ranking(&line["top"], &theirs["top"], &format!("channel {channel} top"));
        assert!(line["top"][0]["box"].is_object(), "a unit at a spatial tap has its field: {line}");
        assert!(out.join(format!("4_c{channel}_exemplars.png")).exists());
    }
}

/// Four shards merged give what one scan gives; a scan interrupted and run
/// again gives it too.
#[test]
fn shards_and_an_interrupted_scan_give_what_one_scan_gives() {
    let model = digits_cnn();
    let folder = folder();
    let run = |out: &Path, extra: &[&str]| {
        let base = ["--model", model.to_str().unwrap(), "--images", folder.to_str().unwrap()];
        let args =
            [&base[..], &["--class", "1,7", "--out", out.to_str().unwrap(), "--batch", "8"], extra]
                .concat();
        let output = exemplars(&args);
        assert!(output.status.success(), "{extra:?}: {}", stderr(&output));
    };
    let one = scratch("exemplars-one");
    run(&one, &[]);
    let sharded = scratch("exemplars-sharded");
    for shard in ["0/4", "1/4", "2/4", "3/4"] {
        run(&sharded, &["--shard", shard]);
    }
    run(&sharded, &["--merge", "4"]);
    assert_same_scans(&sharded, &one, "sharded equals single");

    // The real model makes the scan long enough to interrupt.
    let lite0 = common::default_model();
    let scan = |out: &Path| -> Vec<String> {
        let base = ["--model", lite0.to_str().unwrap(), "--images", folder.to_str().unwrap()];
        let rest = ["--class", "1,7", "--batch", "2", "--out", out.to_str().unwrap()];
        base.iter().chain(&rest).map(|a| a.to_string()).collect()
    };
    let whole = scratch("exemplars-whole");
    let whole_args = scan(&whole);
    let output = exemplars(&whole_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(output.status.success(), "{}", stderr(&output));
    let resumed = scratch("exemplars-resumed");
    let threads = common::torch_threads();
    let child = Command::new(env!("CARGO_BIN_EXE_classviz"))
        .args(["exemplars", "--threads", &threads])
        .args(scan(&resumed))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let signal = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(signal.success());
    let stopped = child.wait_with_output().unwrap();
    assert_eq!(stopped.status.code(), Some(130), "{}", stderr(&stopped));
    assert!(stderr(&stopped).contains("continues the scan"), "{}", stderr(&stopped));
    let again = Command::new(env!("CARGO_BIN_EXE_classviz"))
        .args(["exemplars", "--threads", &threads])
        .args(scan(&resumed))
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stderr(&again).contains("continuing the scan after"), "{}", stderr(&again));
    assert_same_scans(&resumed, &whole, "resumed equals uninterrupted");
}

/// Unreadable, truncated, grayscale, CMYK, 16-bit and thin images: the bad are
/// skipped with one line each and counted, the others read; nothing is written
/// into the folder, and the scan succeeds.
#[test]
fn bad_inputs_are_skipped_and_counted_and_the_folder_is_left_alone() {
    let bad = test_model("exemplars_bad");
    let before = listing(&bad);
    let out = scratch("exemplars-bad");
    let model = common::default_model();
    let output = classviz_raw(&[
        "exemplars",
        "--threads",
        &common::torch_threads(),
        "--model",
        model.to_str().unwrap(),
        "--images",
        bad.to_str().unwrap(),
        "--class",
        "967",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let notes: Vec<String> =
        stderr(&output).lines().filter(|l| l.contains("skipped")).map(String::from).collect();
    assert_eq!(notes.len(), 2, "the truncated file and the text: {notes:?}");
    let lines = common::json_lines(&output);
    let summary = lines.last().unwrap();
    assert_eq!(summary["images"], 5, "good, grayscale, CMYK, 16-bit and thin: {summary}");
    assert_eq!(summary["skipped"].as_array().unwrap().len(), 2);
    assert_eq!(listing(&bad), before, "nothing written into the folder");
    let inside = classviz_raw(&[
        "exemplars",
        "--model",
        model.to_str().unwrap(),
        "--images",
        bad.to_str().unwrap(),
        "--class",
        "1",
        "--out",
        bad.join("out").to_str().unwrap(),
    ]);
    common::assert_refused(&inside, 2, "never write into the folder they read", None);
}

/// On the real model, each of the packages' photos comes first for the class
/// it shows.
#[test]
fn a_class_a_photo_shows_has_that_photo_first() {
    let out = scratch("exemplars-photos");
    let model = common::default_model();
    let photos = root().join("tests/data");
    let output = classviz_raw(&[
        "exemplars",
        "--threads",
        &common::torch_threads(),
        "--quiet",
        "--model",
        model.to_str().unwrap(),
        "--images",
        photos.to_str().unwrap(),
        "--class",
        "285,967,657",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    for (line, photo) in results(&out).iter().zip(["chelsea.png", "coffee.png", "rocket.jpg"]) {
        assert!(line["top"][0]["image"].as_str().unwrap().ends_with(photo), "{line}");
    }
}

/// A 3x3 convolution (padding 1) sees the 3x3 pixels around it: its receptive
/// field, clipped at the image's edge.
#[test]
fn the_receptive_field_of_a_known_convolution() {
    common::use_torch_threads();
    let model = Model::open(&test_model("tiny_taps.pt"), Device::Cpu).unwrap();
    let tap = model.info.tap("conv").unwrap().id;
    assert_eq!(receptive_field(&model, tap, (5, 7)).unwrap(), (6, 4, 9, 7));
    assert_eq!(receptive_field(&model, tap, (0, 0)).unwrap(), (0, 0, 2, 2));
    assert_eq!(receptive_field(&model, tap, (15, 15)).unwrap(), (14, 14, 16, 16));
}
