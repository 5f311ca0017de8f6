//! Issue 16's promises, end to end: an accurate line for each wrong kind of
//! input path, a refused run that could not fit in memory, a stalled ascent
//! flagged (and moved by a noisy start), and a panic turned into one line.

mod common;

use std::path::Path;
use std::process::Command;

use common::{classviz, classviz_raw, json_lines, scratch, stderr, summary, test_model};

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("running mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

#[test]
fn each_wrong_kind_of_model_path_gets_its_own_message() {
    let dir = scratch("hard-model-paths");
    let out = dir.join("out");
    let fifo = dir.join("model.pt");
    mkfifo(&fifo);
    for (model, needle) in [
        (dir.join("missing.pt"), "missing.pt not found"),
        (dir.clone(), "is a folder, not a file"),
        (fifo.clone(), "is not a regular file (a FIFO)"),
        (Path::new("/dev/zero").to_path_buf(), "is not a regular file (a device)"),
    ] {
        let output = common::classviz_on(&model, &out, &["--class", "1"]);
        common::assert_refused(&output, 1, needle, Some(&out));
    }
}

#[test]
fn classes_files_and_labels_files_that_are_not_files() {
    let dir = scratch("hard-list-paths");
    let out = dir.join("out");
    let model = test_model("linear.pt");
    let fifo = dir.join("classes.txt");
    mkfifo(&fifo);
    for (file, needle) in [
        (dir.clone(), "classes file"),
        (fifo.clone(), "is not a regular file (a FIFO)"),
        (dir.join("none.txt"), "classes file"),
    ] {
        let output = classviz(&[
            "--model",
            model.to_str().unwrap(),
            "--classes-file",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        common::assert_refused(&output, 1, needle, Some(&out));
    }
    let message = stderr(&classviz(&[
        "--model",
        model.to_str().unwrap(),
        "--classes-file",
        dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(message.contains("is a folder, not a file"), "{message}");

    // A sidecar whose labels entry names a folder.
    let copy = dir.join("m.pt");
    std::fs::copy(&model, &copy).unwrap();
    std::fs::create_dir_all(dir.join("labels")).unwrap();
    std::fs::write(
        dir.join("m.json"),
        r#"{"input_shape": [3, 8, 8], "mean": [0.5, 0.4, 0.3], "std": [0.25, 0.2, 0.5], "labels": "labels"}"#,
    )
    .unwrap();
    let output = common::classviz_on(&copy, &out, &["--class", "1"]);
    common::assert_refused(&output, 1, "labels file", Some(&out));
    assert!(stderr(&output).contains("is a folder, not a file"), "{}", stderr(&output));
}

#[test]
fn an_unreadable_model_says_permission_denied() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("hard-unreadable");
    let model = dir.join("m.pt");
    std::fs::copy(test_model("linear.pt"), &model).unwrap();
    std::fs::set_permissions(&model, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::File::open(&model).is_ok() {
        // Running as root: permissions do not stop reading, so there is nothing to test.
        return;
    }
    let out = dir.join("out");
    let output = common::classviz_on(&model, &out, &["--class", "1"]);
    common::assert_refused(&output, 1, "is not readable: permission denied", Some(&out));
}

#[test]
fn an_empty_class_list_is_a_command_line_error() {
    let out = scratch("hard-empty-class");
    for list in ["", "  "] {
        let output = classviz(&["--class", list, "--out", out.to_str().unwrap()]);
        common::assert_refused(&output, 2, "the class list is empty", Some(&out));
    }
}

#[test]
fn a_size_that_cannot_fit_in_memory_is_refused_before_allocating() {
    let out = scratch("hard-memory-size");
    let model = common::default_model();
    let output =
        common::classviz_on(&model, &out, &["--class", "1", "--size", "100000", "--iters", "1"]);
    common::assert_refused(&output, 1, "use a smaller --size", Some(&out));
    assert!(stderr(&output).contains("3x100000x100000 would need about"), "{}", stderr(&output));
}

#[test]
fn a_batch_that_cannot_fit_in_memory_names_one_that_would() {
    let out = scratch("hard-memory-batch");
    let model = common::default_model();
    // TorchScript: the CPU package is compiled for 224x224, and `auto` would add
    // a line saying it falls back (tests/engine.rs covers that line).
    let output = common::classviz_on(
        &model,
        &out,
        &[
            "--engine",
            "torchscript",
            "--class",
            "all",
            "--batch",
            "1000",
            "--size",
            "768",
            "--iters",
            "1",
        ],
    );
    common::assert_refused(&output, 1, "1000 image(s) of 3x768x768 would need about", Some(&out));
    assert!(stderr(&output).contains("measured"), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains("use --batch") || message.contains("smaller --size"), "{message}");
}

#[test]
fn a_stalled_ascent_is_flagged_and_a_noisy_start_moves_it() {
    let out = scratch("hard-stalled");
    let model = test_model("dead_relu.pt");
    let args = ["--model", model.to_str().unwrap(), "--out", out.to_str().unwrap(), "--json"];
    let output = classviz(&[&args[..], &["--class", "2,3", "--iters", "50"]].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 2);
    for line in &lines {
        assert_eq!(line["stalled"], true, "{line}");
    }
    let message = stderr(&output);
    assert_eq!(
        message.matches("the ascent stalled").count(),
        2,
        "one warning per class: {message}"
    );
    assert!(
        message.contains("2 of 2 images stalled (class 2 (two), class 3 (three))"),
        "{message}"
    );
    assert!(summary(&out).iter().all(|line| line["stalled"] == true));
    // The stalled image is the starting (mean) image: every pixel is the mean.
    let image = image::open(out.join("2_two.png")).unwrap().to_rgb8();
    assert!(image.pixels().all(|p| p.0 == [128, 102, 76]), "{:?}", image.get_pixel(0, 0));

    let noisy = classviz(
        &[&args[..], &["--class", "2,3", "--iters", "50", "--init", "noise:0.01", "--force"]]
            .concat(),
    );
    assert!(noisy.status.success(), "{}", stderr(&noisy));
    for (line, before) in json_lines(&noisy).iter().zip(&lines) {
        assert_eq!(line["stalled"], false, "{line}");
        assert_eq!(line["top5"][0]["class"], line["class"], "noise start reaches top-1: {line}");
        assert!(line["logit"].as_f64() > before["logit"].as_f64(), "{line} vs {before}");
    }
    assert!(!stderr(&noisy).contains("stalled"), "{}", stderr(&noisy));
    let made = common::provenance(&out.join("2_two.png"));
    assert_eq!(made.init.as_deref(), Some("noise:0.01"));
}

#[test]
fn bad_init_values_are_command_line_errors() {
    let out = scratch("hard-init");
    for value in ["noise", "noise:-1", "noise:nan", "gauss:0.1"] {
        let output = classviz(&["--class", "1", "--init", value, "--out", out.to_str().unwrap()]);
        common::assert_refused(&output, 2, "--init", Some(&out));
    }
}

#[test]
fn a_panic_becomes_one_line_asking_for_a_report() {
    let run = |backtrace: &str| {
        Command::new(env!("CARGO_BIN_EXE_classviz"))
            .args(["--class", "1"])
            .env("CLASSVIZ_TEST_PANIC", "1")
            .env("RUST_BACKTRACE", backtrace)
            .output()
            .unwrap()
    };
    let output = run("0");
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(101), "{message}");
    assert_eq!(message.trim_end().lines().count(), 1, "{message}");
    assert!(
        message.starts_with("classviz: internal error: CLASSVIZ_TEST_PANIC is set"),
        "{message}"
    );
    assert!(message.contains("please report it"), "{message}");
    assert!(!message.contains("panicked"), "{message}");
    let with_backtrace = run("1");
    assert!(stderr(&with_backtrace).lines().count() > 1, "RUST_BACKTRACE=1 adds a backtrace");
    let _ = classviz_raw;
}
