//! Issue 11's machinery end to end: MaCo's canvas, crops and magnitude file,
//! views, the alpha PNG, and a one-line error for every bad value of the new flags.

mod common;

use std::path::Path;

use common::{classviz, scratch, stderr, test_model};
use tch::{Kind, Tensor};

fn run_linear(out: &Path, extra: &[&str]) -> std::process::Output {
    let model = test_model("linear.pt");
    let mut args = vec!["--model", model.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    classviz(&args)
}

#[test]
fn the_alpha_png_has_four_channels_and_a_varying_alpha() {
    for (name, preset) in [("paper", "simonyan"), ("natural", "natural"), ("maco", "maco")] {
        let out = scratch(&format!("quality-alpha-{name}"));
        let output =
            run_linear(&out, &["--class", "2", "--iters", "20", "--preset", preset, "--alpha"]);
        assert!(output.status.success(), "{preset}: {}", stderr(&output));
        let alpha = image::open(out.join("2_two_alpha.png")).unwrap();
        assert_eq!(alpha.color(), image::ColorType::Rgba8, "{preset}");
        let rgba = alpha.to_rgba8();
        let values: Vec<u8> = rgba.pixels().map(|p| p.0[3]).collect();
        let (low, high) = (values.iter().min().unwrap(), values.iter().max().unwrap());
        assert!(high > low, "{preset}: constant alpha {low}");
        assert_eq!(*high, 255, "{preset}: the strongest attribution is opaque");
        // Its colours are the class image's.
        let plain = image::open(out.join("2_two.png")).unwrap().to_rgb8();
        assert!(rgba.pixels().zip(plain.pixels()).all(|(a, p)| a.0[..3] == p.0), "{preset}");
    }
}

#[test]
fn maco_writes_the_central_view_and_the_whole_canvas() {
    let out = scratch("quality-maco-canvas");
    let output =
        run_linear(&out, &["--class", "1,3", "--iters", "30", "--preset", "maco", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let image = image::open(out.join("1_one.png")).unwrap();
    assert_eq!(
        (image.width(), image.height()),
        (8, 8),
        "the class image is the model's input size"
    );
    let canvas = image::open(out.join("1_one_canvas.png")).unwrap();
    assert_eq!((canvas.width(), canvas.height()), (23, 23), "the canvas is 8 / 0.35 pixels");
    for line in common::json_lines(&output) {
        assert_eq!(line["top5"][0]["class"], line["class"], "{line}");
    }
}

#[test]
fn identical_views_give_the_same_images_as_one() {
    // With every transform off, K views are K copies: the mean objective has
    // the gradient of one, so the images match.
    let flags = [
        "--class", "0,4", "--iters", "40", "--preset", "natural", "--pad", "0", "--jitter", "0",
        "--scale", "1", "--rotate", "0",
    ];
    let one = scratch("quality-views-1");
    let four = scratch("quality-views-4");
    assert!(run_linear(&one, &flags).status.success());
    let output = run_linear(&four, &[&flags[..], &["--views", "4"]].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    for name in ["0_zero.png", "4_four.png"] {
        let a = image::open(one.join(name)).unwrap().to_rgb8();
        let b = image::open(four.join(name)).unwrap().to_rgb8();
        let largest = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| x.abs_diff(*y)).max();
        assert!(largest <= Some(1), "{name}: views changed a pixel by {largest:?}");
    }
}

/// A MaCo run of class 1 on the linear model with the spectrum at `magnitude`.
fn maco_with(out: &Path, magnitude: &Path, extra: &[&str]) -> std::process::Output {
    let args = ["--class", "1", "--preset", "maco", "--magnitude", magnitude.to_str().unwrap()];
    run_linear(out, &[&args[..], extra].concat())
}

#[test]
fn the_magnitude_file_is_checked_at_load() {
    let dir = scratch("quality-magnitude");
    let out = dir.join("out");
    let output = maco_with(&out, &dir.join("none.npy"), &[]);
    common::assert_refused(&output, 1, "none.npy not found: run `make weights`", Some(&out));
    let corrupt = dir.join("corrupt.npy");
    std::fs::write(&corrupt, b"not numpy").unwrap();
    common::assert_refused(
        &maco_with(&out, &corrupt, &[]),
        1,
        "corrupt.npy is corrupt",
        Some(&out),
    );
    let description = r#"{"std": [0.3, 0.4, 0.3]}"#;
    let cpu = (Kind::Float, tch::Device::Cpu);
    for (name, tensor, needle) in [
        ("shape.npy", Tensor::ones([3, 16, 16], cpu), "has shape [3, 16, 16]"),
        ("nan.npy", Tensor::full([3, 16, 9], f64::NAN, cpu), "finite and positive"),
        ("zero.npy", Tensor::zeros([3, 16, 9], cpu), "finite and positive"),
    ] {
        let path = dir.join(name);
        tensor.write_npy(&path).unwrap();
        std::fs::write(path.with_extension("json"), description).unwrap();
        common::assert_refused(&maco_with(&out, &path, &[]), 1, needle, Some(&out));
    }
    let good = dir.join("good.npy");
    Tensor::ones([3, 16, 9], cpu).write_npy(&good).unwrap();
    std::fs::write(good.with_extension("json"), r#"{"std": [0.3, -1, 0.3]}"#).unwrap();
    common::assert_refused(&maco_with(&out, &good, &[]), 1, "three positive numbers", Some(&out));
    std::fs::write(good.with_extension("json"), description).unwrap();
    let output = maco_with(&out, &good, &["--iters", "2"]);
    assert!(output.status.success(), "a valid file works: {}", stderr(&output));
}

#[test]
fn every_new_flag_refuses_bad_values_in_one_line() {
    let out = scratch("quality-bad-flags");
    for (flag, value, needle) in [
        ("--views", "0", "must be at least 1"),
        ("--views", "65", "more than 64"),
        ("--canvas", "0.5", "1 to 8 times"),
        ("--canvas", "inf", "not a finite number"),
        ("--crop-box", "0.5", "is not LOW..HIGH"),
        ("--crop-box", "0.6..0.2", "0 < LOW ≤ HIGH ≤ 1"),
        ("--crop-box", "0.2..1.5", "0 < LOW ≤ HIGH ≤ 1"),
        ("--decay", "-1", "must be 0 or more"),
        ("--view-noise", "nan", "not a finite number"),
        ("--colour", "cmyk", "invalid value"),
        ("--scale", "1.2..0.8", "is empty"),
        ("--scale", "0..1", "must be greater than 0"),
        ("--precision", "fp16", "possible values: auto, fp32, bf16"),
        ("--init", "noise:-2", "must be a finite number greater than 0"),
        ("--preset", "dream", "invalid value"),
        ("--param", "wavelet", "invalid value"),
    ] {
        let output = run_linear(&out, &["--class", "1", flag, value]);
        common::assert_refused(&output, 2, needle, Some(&out));
        assert!(stderr(&output).contains(flag), "{flag}: {}", stderr(&output));
    }
    let output = run_linear(&out, &["--class", "1", "--alpha=yes"]);
    common::assert_refused(&output, 2, "--alpha", Some(&out));
}
