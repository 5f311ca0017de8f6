//! Many classes in one command: batching that matches single-class runs,
//! resumable output folders, the summary file and the contact sheet.

mod common;

use std::ops::ControlFlow;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use classviz_core::ascent::{class_models, AscentParams};
use classviz_engine::model::Model;
use common::{classviz, listing, pngs, scratch, stderr, summary, test_model};
use tch::Device;

/// Max |batched − alone| / max |alone| over each row of `classes`.
fn batch_distances(model: &Path, classes: &[i64], params: &AscentParams) -> Vec<f64> {
    common::use_torch_threads();
    let model = Model::open(model, Device::Cpu).unwrap();
    let together = class_models(&model, classes, params, |_| ControlFlow::Continue(())).unwrap();
    let distances: Vec<f64> = classes
        .iter()
        .enumerate()
        .map(|(row, &class)| {
            let alone =
                class_models(&model, &[class], params, |_| ControlFlow::Continue(())).unwrap();
            let scale = f64::try_from(alone.abs().max()).unwrap();
            f64::try_from((together.get(row as i64) - alone.get(0)).abs().max()).unwrap() / scale
        })
        .collect();
    eprintln!(
        "batch distances: {:?}",
        distances.iter().map(|d| format!("{d:.1e}")).collect::<Vec<_>>()
    );
    distances
}

/// In eval mode the images of a batch do not interact, so each row's first
/// update is the one it gets alone. Only the first: batch size and thread count
/// change the order of Lite0's float sums, and from the second step on its
/// ReLU6 boundaries amplify that (two threads, class 130: 8.5e-3 after two
/// steps, 0.14 after ten; the first step stays within 1.4e-6, docs/golden.md).
#[test]
fn a_batch_gives_each_class_its_own_first_step_on_the_real_model() {
    let params = AscentParams::new(1, 1.0, 1e-4);
    let distances = batch_distances(&common::default_model(), &[1, 100, 130, 963], &params);
    assert!(distances.iter().all(|&d| d <= 1e-4), "{distances:?}");
}

/// On a smooth model the whole preset's ascent stays batch-independent.
#[test]
fn batched_ascent_matches_single_class_runs_on_a_smooth_model() {
    let params = AscentParams::new(150, 1.0, 1e-4);
    let model = common::root().join("tests/data/golden/smooth.pt");
    let distances = batch_distances(&model, &[3, 0, 7, 3], &params);
    assert!(distances.iter().all(|&d| d <= 1e-5), "{distances:?}");
}

#[test]
fn class_lists_write_one_png_and_one_summary_line_each() {
    let out = scratch("batch-list");
    let model = test_model("linear.pt");
    let args = ["--model", model.to_str().unwrap(), "--out", out.to_str().unwrap(), "--iters", "5"];
    let output = classviz(
        &[&args[..], &["--class", "4,one,0-2,1", "--batch", "2", "--json", "--grid"]].concat(),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let lines = common::json_lines(&output);
    let printed: Vec<i64> = lines.iter().map(|l| l["class"].as_i64().unwrap()).collect();
    assert_eq!(printed, vec![4, 1, 0, 2]);
    assert_eq!(pngs(&out), vec!["0_zero.png", "1_one.png", "2_two.png", "4_four.png"]);
    let lines = summary(&out);
    assert_eq!(lines.len(), 4);
    for line in &lines {
        for key in [
            "class", "name", "path", "logit", "prob", "top5", "iters", "seconds", "model", "lr",
            "l2", "seed", "batch",
        ] {
            assert!(line.get(key).is_some(), "summary line lacks {key}: {line}");
        }
    }
    assert!(out.join("grid.png").exists());
    assert!(
        stderr(&output).contains("wrote") && stderr(&output).contains("(4 tiles)"),
        "{}",
        stderr(&output)
    );

    // A second run skips everything and says so; --force redoes.
    let again = classviz(&[&args[..], &["--class", "4,one,0-2"]].concat());
    assert!(again.status.success());
    assert!(stderr(&again).contains("skipping 4 of 4 classes already in"), "{}", stderr(&again));
    assert_eq!(summary(&out).len(), 4);
    let forced = classviz(&[&args[..], &["--class", "2", "--force"]].concat());
    assert!(forced.status.success());
    let lines = summary(&out);
    assert_eq!(lines.len(), 4, "the redone image replaces its line: the summary is the folder's");
    assert_eq!(lines[3]["class"], 2, "the new line comes last");
}

#[test]
fn classes_file_is_read() {
    let out = scratch("batch-file");
    let list = out.join("classes.txt");
    std::fs::write(&list, "# two classes\nthree\n0 # zero\nthree\n").unwrap();
    let model = test_model("linear.pt");
    let output = classviz(&[
        "--model",
        model.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--iters",
        "2",
        "--classes-file",
        list.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(pngs(&out), vec!["0_zero.png", "3_three.png"]);
}

/// SIGINT in the middle of a run keeps finished images, leaves no temp files,
/// and the same command finishes the rest without duplicates.
#[test]
fn interrupted_run_resumes_to_a_complete_set() {
    let out = scratch("batch-resume");
    let model = common::default_model();
    let args = [
        "--threads",
        "1",
        "--quiet",
        "--model",
        model.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--class",
        "0-5",
        "--batch",
        "1",
        "--iters",
        "4",
    ];
    let child = Command::new(env!("CARGO_BIN_EXE_classviz"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until at least one class is finished, then interrupt.
    let deadline = Instant::now() + Duration::from_secs(120);
    while pngs(&out).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let finished = pngs(&out).len();
    if output.status.code() == Some(130) {
        assert!(stderr(&output).contains("interrupted:"), "{}", stderr(&output));
        assert!((1..6).contains(&finished), "{finished} images after interrupt");
    } else {
        // The run may have finished before the signal arrived.
        assert!(output.status.success(), "{}", stderr(&output));
    }
    assert!(listing(&out).iter().all(|n| !n.ends_with(".tmp")), "{:?}", listing(&out));
    assert_eq!(summary(&out).len(), finished);

    let rerun = classviz(&args[3..]);
    assert!(rerun.status.success(), "{}", stderr(&rerun));
    assert_eq!(pngs(&out).len(), 6);
    let classes: Vec<i64> = summary(&out).iter().map(|l| l["class"].as_i64().unwrap()).collect();
    let mut sorted = classes.clone();
    sorted.sort();
    assert_eq!(sorted, vec![0, 1, 2, 3, 4, 5], "summary {classes:?}");
    assert!(listing(&out).iter().all(|n| !n.ends_with(".tmp")));
}

/// The writer thread: after SIGINT every image written has its result line on
/// stdout and its summary line, in class order, and nothing is half-written.
#[test]
fn the_writer_flushes_every_finished_batch_on_interrupt() {
    let out = scratch("batch-writer");
    let model = test_model("linear.pt");
    let child = Command::new(env!("CARGO_BIN_EXE_classviz"))
        .args(["--threads", "1", "--quiet", "--json", "--model", model.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap(), "--class", "0-4,0-4", "--batch", "1"])
        .args(["--iters", "40000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = common::interrupt_after(child, &out, 2, Duration::from_secs(120));
    let written = pngs(&out);
    if output.status.code() == Some(130) {
        assert!((2..5).contains(&written.len()), "{written:?}");
    } else {
        assert!(output.status.success(), "{}", stderr(&output));
    }
    common::assert_every_finished_image_has_its_lines(&output, &out);
    let printed: Vec<i64> =
        common::json_lines(&output).iter().map(|l| l["class"].as_i64().unwrap()).collect();
    assert_eq!(printed, (0..written.len() as i64).collect::<Vec<_>>(), "in class order");
}
