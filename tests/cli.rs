//! The binary end to end on small test models: outputs, PNG metadata, and
//! one clear stderr line with a non-zero exit for every kind of bad input.

mod common;

use common::{classviz, listing, scratch, stderr, test_model};

fn linear_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let model = Box::leak(test_model("linear.pt").display().to_string().into_boxed_str());
    let mut args = vec!["--model", model, "--out", out];
    args.extend_from_slice(extra);
    args
}

#[test]
fn linear_model_end_to_end_writes_the_closed_form_image() {
    let out = scratch("cli-linear");
    let out_str = out.to_str().unwrap();
    let (lr, l2) = (1.0, 0.2);
    let output = classviz(&linear_args(
        out_str,
        &["--class", "three", "--iters", "200", "--l2", "0.2", "--json"],
    ));
    assert!(output.status.success(), "{}", stderr(&output));
    let lines = common::json_lines(&output);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["class"], 3);
    assert_eq!(lines[0]["name"], "three");
    assert_eq!(lines[0]["iters"], 200);
    assert_eq!(lines[0]["top5"].as_array().unwrap().len(), 5);
    let path = out.join("3_three.png");
    assert_eq!(lines[0]["path"], path.display().to_string());
    assert_eq!(listing(&out), vec!["3_three.png", "summary.jsonl"]);

    // The PNG is x*·std + mean, clamped to [0,1], in 8 bits, channel-major in W.
    let image = image::open(&path).unwrap().to_rgb8();
    assert_eq!(image.dimensions(), (8, 8));
    let weights = &common::linear_weights()[3];
    let (mean, std) = ([0.5, 0.4, 0.3], [0.25, 0.2, 0.5]);
    let _ = lr;
    for (index, w) in weights.iter().enumerate() {
        let (channel, row, col) = (index / 64, (index / 8) % 8, index % 8);
        let expected =
            ((w / (2.0 * l2) * std[channel] + mean[channel]).clamp(0.0, 1.0) * 255.0).round();
        let actual = f64::from(image.get_pixel(col as u32, row as u32)[channel]);
        assert!((actual - expected).abs() <= 1.0, "pixel {index}: {actual} vs {expected}");
    }
}

#[test]
fn png_metadata_round_trips() {
    let out = scratch("cli-metadata");
    let output = classviz(&linear_args(
        out.to_str().unwrap(),
        &["--class", "1", "--iters", "7", "--lr", "0.25", "--l2", "0.5", "--seed", "42"],
    ));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = classviz_records::pixels::read_png_text(&out.join("1_one.png")).unwrap();
    let get = |key: &str| text.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    assert_eq!(get("model"), Some(test_model("linear.pt").to_str().unwrap()));
    assert_eq!(get("class"), Some("1"));
    assert_eq!(get("class_name"), Some("one"));
    let version = format!("classviz {}", env!("CARGO_PKG_VERSION"));
    assert_eq!(get("Software"), Some(version.as_str()));
    let made = common::provenance(&out.join("1_one.png"));
    assert_eq!((made.iters, made.lr, made.l2, made.seed), (7, 0.25, 0.5, 42));
    assert_eq!(get("iters"), None, "the settings are in the provenance, once");
}

#[test]
fn human_summary_is_one_line() {
    let out = scratch("cli-human");
    let output = classviz(&linear_args(out.to_str().unwrap(), &["--class", "0", "--iters", "3"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = common::stdout(&output);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("0 (zero): S_c "), "{text}");
}

#[test]
fn missing_model() {
    let out = scratch("bad-missing");
    let output =
        classviz(&["--model", "no/such/model.pt", "--class", "1", "--out", out.to_str().unwrap()]);
    common::assert_refused(&output, 1, "model no/such/model.pt not found", Some(&out));
}

#[test]
fn corrupt_model() {
    let out = scratch("bad-corrupt");
    let model = out.join("corrupt.pt");
    std::fs::write(&model, b"this is not a TorchScript archive").unwrap();
    // Without a recorded hash, so that libtorch's reader is what refuses it
    // (tests/integrity.rs covers the hash).
    let sidecar = std::fs::read_to_string(test_model("linear.json")).unwrap();
    let mut sidecar: serde_json::Value = serde_json::from_str(&sidecar).unwrap();
    sidecar.as_object_mut().unwrap().remove("sha256");
    std::fs::write(out.join("corrupt.json"), sidecar.to_string()).unwrap();
    let output = common::classviz_on(&model, &out, &["--class", "1"]);
    common::assert_refused(&output, 1, "loading model", Some(&out));
}

#[test]
fn corrupt_sidecar() {
    let out = scratch("bad-sidecar");
    let model = out.join("m.pt");
    std::fs::copy(test_model("linear.pt"), &model).unwrap();
    std::fs::write(
        out.join("m.json"),
        r#"{"input_shape": [3, 8, 8], "mean": [0.5], "std": [1, 1, 1]}"#,
    )
    .unwrap();
    let output = common::classviz_on(&model, &out, &["--class", "1"]);
    common::assert_refused(
        &output,
        1,
        "mean has 1 values but the input has 3 channels",
        Some(&out),
    );
}

#[test]
fn model_with_wrong_output_shape() {
    let out = scratch("bad-shape");
    let model = test_model("wrong_output.pt");
    let output = common::classviz_on(&model, &out, &["--class", "1"]);
    common::assert_refused(
        &output,
        1,
        "output has shape [1, 5, 2], expected [N, classes]",
        Some(&out),
    );
}

#[test]
fn input_size_that_does_not_fit() {
    let out = scratch("bad-size");
    let output = classviz(&linear_args(out.to_str().unwrap(), &["--class", "1", "--size", "9"]));
    common::assert_refused(&output, 1, "does not accept input of shape [1, 3, 9, 9]", Some(&out));
}

#[test]
fn class_out_of_range() {
    let out = scratch("bad-range");
    let output = classviz(&linear_args(out.to_str().unwrap(), &["--class", "5"]));
    common::assert_refused(
        &output,
        1,
        "class 5 is out of range: the model has 5 classes (0–4)",
        Some(&out),
    );
}

#[test]
fn unknown_class_name_lists_the_closest() {
    let out = scratch("bad-name");
    let output = classviz(&linear_args(out.to_str().unwrap(), &["--class", "thre"]));
    common::assert_refused(&output, 1, "unknown class name 'thre'; closest: three (3)", Some(&out));
}

#[test]
fn bad_numbers_exit_2_naming_the_flag() {
    for (flag, value, needle) in [
        ("--iters", "0", "must be at least 1"),
        ("--iters", "-5", "not a positive whole number"),
        ("--lr", "nan", "not a finite number"),
        ("--lr", "0", "must be greater than 0"),
        ("--lr", "-1", "must be greater than 0"),
        ("--l2", "-0.001", "must be 0 or more"),
        ("--l2", "NaN", "not a finite number"),
    ] {
        let out = scratch("bad-number");
        let output = classviz(&linear_args(out.to_str().unwrap(), &["--class", "1", flag, value]));
        common::assert_refused(&output, 2, needle, Some(&out));
        assert!(stderr(&output).contains(flag), "{flag}: {}", stderr(&output));
    }
}

#[test]
fn unwritable_output_folder() {
    let out = scratch("bad-out");
    let blocker = out.join("a-file");
    std::fs::write(&blocker, b"x").unwrap();
    let target = blocker.join("results");
    let output = classviz(&linear_args(target.to_str().unwrap(), &["--class", "1"]));
    common::assert_refused(&output, 1, "cannot create output folder", None);
    assert_eq!(listing(&out), vec!["a-file"]);
}

#[test]
fn divergence_is_reported_and_writes_nothing() {
    // |1 − 2λη| = 39 > 1: the closed-form iteration blows up to inf/NaN.
    let out = scratch("bad-diverge");
    let output = classviz(&linear_args(
        out.to_str().unwrap(),
        &["--class", "1", "--l2", "20", "--iters", "100"],
    ));
    common::assert_refused(&output, 1, "the ascent diverged", Some(&out));
}

#[test]
fn explicit_cuda_without_a_gpu_fails_clearly() {
    if tch::Cuda::is_available() {
        return;
    }
    let out = scratch("bad-cuda");
    let output =
        classviz(&linear_args(out.to_str().unwrap(), &["--class", "1", "--device", "cuda"]));
    common::assert_refused(&output, 1, "--device cuda:0: no CUDA device is available", Some(&out));
}

#[test]
fn help_lists_every_flag_with_its_default() {
    let output = classviz(&["--help"]);
    assert!(output.status.success());
    let help = common::stdout(&output);
    for flag in [
        "--class",
        "--iters",
        "--lr",
        "--l2",
        "--model",
        "--mean",
        "--std",
        "--size",
        "--out",
        "--device",
        "--seed",
        "--threads",
        "--stretch",
        "--quiet",
        "--json",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    for default in [
        "[default: the preset's: simonyan 150,",
        "[default: the preset's: simonyan 1,",
        "[default: the preset's: simonyan 0.0001,",
        "efficientnet_lite0.pt from $CLASSVIZ_HOME",
    ] {
        assert!(help.contains(default), "--help lacks {default}");
    }
}

/// The main command's flags stand under headings, and every choice flag names
/// its values and its default (on one line each in the short help, `-h`).
#[test]
fn help_groups_the_flags_under_headings() {
    let output = classviz(&["-h"]);
    let help = common::stdout(&output);
    let headings = [
        "Objective:",
        "Preset:",
        "Optimiser:",
        "Transforms:",
        "MaCo:",
        "Output:",
        "Model:",
        "Scale-out:",
    ];
    for heading in headings {
        assert!(help.lines().any(|l| l == heading), "--help lacks the heading {heading}");
    }
    for flag in ["--preset <P>", "--param <P>", "--colour <C>", "--optimizer <OPT>"] {
        let line = help.lines().find(|l| l.trim_start().starts_with(flag)).unwrap();
        assert!(line.contains("[default: ") && line.contains("[possible values: "), "{line}");
    }
}

/// From any directory, with no --model, classviz finds its default model
/// (here the project's weights/; also $CLASSVIZ_HOME and ~/.cache/classviz),
/// while paths on the command line stay relative to the current directory.
#[test]
fn runs_from_an_unrelated_directory_without_a_model_flag() {
    let elsewhere = scratch("cli-elsewhere");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_classviz"))
        .args([
            "--class",
            "1",
            "--iters",
            "2",
            "--out",
            "here",
            "--quiet",
            "--threads",
            &common::torch_threads(),
        ])
        .current_dir(&elsewhere)
        .env_remove("CLASSVIZ_HOME")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        elsewhere.join("here/1_goldfish.png").is_file(),
        "{:?}",
        listing(&elsewhere.join("here"))
    );
}

/// The man page names every subcommand, and each shell gets a completion
/// script that knows the flags.
#[test]
fn the_man_page_and_completions_cover_the_command_line() {
    let man = common::classviz_raw(&["man"]);
    assert!(man.status.success(), "{}", stderr(&man));
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(page.starts_with(".ie") || page.contains(".TH"), "not roff: {}", &page[..80]);
    for subcommand in ["status", "info", "saliency", "score", "gallery", "completions", "man"] {
        assert!(page.contains(&format!("classviz-{subcommand}")), "{subcommand} missing");
    }
    for shell in ["bash", "zsh", "fish"] {
        let script = common::classviz_raw(&["completions", shell]);
        assert!(script.status.success(), "{shell}: {}", stderr(&script));
        let text = String::from_utf8_lossy(&script.stdout);
        assert!(text.contains("--accentuate") && text.contains("saliency"), "{shell}");
    }
    let bad = common::classviz_raw(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}
