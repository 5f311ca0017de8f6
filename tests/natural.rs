//! Beyond the paper: the natural preset's machinery end to end, frames and
//! GIFs, and `classviz score`.

mod common;

use common::{classviz, classviz_raw, listing, scratch, stderr, stdout, test_model};

#[test]
fn score_reports_espresso_for_the_coffee_photo() {
    let dir = scratch("score-coffee");
    // The class comes from the file name's prefix.
    let named = dir.join("967_coffee.png");
    std::fs::copy(common::root().join("tests/data/coffee.png"), &named).unwrap();
    let model = common::default_model();
    let threads = common::torch_threads();
    let score = |args: &[&str]| {
        let base = ["score", "--threads", &threads, "--model", model.to_str().unwrap()];
        classviz_raw(&[&base[..], args].concat())
    };
    let output = score(&["--fit", "crop", named.to_str().unwrap(), "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(report["images"][0]["class"], 967);
    assert_eq!(report["images"][0]["top1"], true);
    assert_eq!(report["images"][0]["predicted"][0]["name"], "espresso");
    assert_eq!(
        (report["total"].as_i64(), report["top1"].as_i64(), report["top5"].as_i64()),
        (Some(1), Some(1), Some(1))
    );

    // --class overrides; a wrong class is a miss, not an error.
    let original = common::root().join("tests/data/coffee.png");
    let output = score(&["--class", "pizza", original.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("963 (pizza)") && stdout(&output).contains("miss"),
        "{}",
        stdout(&output)
    );
    assert!(stdout(&output).contains("top-1 0/1"), "{}", stdout(&output));

    // No prefix and no --class: a clear error.
    let output =
        classviz_raw(&["score", "--model", model.to_str().unwrap(), original.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("cannot tell the class of"), "{}", stderr(&output));
}

#[test]
fn gif_and_frames_have_the_expected_counts() {
    let out = scratch("natural-gif");
    let model = test_model("linear.pt");
    let output = common::classviz_on(
        &model,
        &out,
        &["--class", "1,2", "--iters", "10", "--save-every", "3", "--gif"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    // Frames at steps 3, 6, 9 and the final 10.
    assert_eq!(
        listing(&out.join("frames/1_one")),
        vec!["00003.png", "00006.png", "00009.png", "00010.png"]
    );
    let file = std::fs::File::open(out.join("2_two.gif")).unwrap();
    let decoder = image::codecs::gif::GifDecoder::new(std::io::BufReader::new(file)).unwrap();
    use image::AnimationDecoder;
    assert_eq!(decoder.into_frames().count(), 4);
    // The last frame is the final image.
    let last = image::open(out.join("frames/2_two/00010.png")).unwrap().to_rgb8();
    let final_image = image::open(out.join("2_two.png")).unwrap().to_rgb8();
    assert_eq!(last, final_image);
}

#[test]
fn natural_machinery_runs_on_any_model() {
    // Fourier + transforms + TV + Adam on the digits model (1 channel, 28x28),
    // and Yosinski's blur and clipping with the pixel parameterisation.
    let out = scratch("natural-digits");
    let model = test_model("digits.pt");
    for extra in [
        vec!["--preset", "natural", "--iters", "40", "--tv", "0.01", "--pad", "4", "--jitter", "2"],
        vec![
            "--param",
            "pixel",
            "--optimizer",
            "adam",
            "--lr",
            "0.05",
            "--iters",
            "40",
            "--blur-every",
            "4",
            "--blur-sigma",
            "0.5",
            "--clip-percentile",
            "10",
            "--force",
        ],
    ] {
        let mut args = vec![
            "--model",
            model.to_str().unwrap(),
            "--class",
            "3",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ];
        args.extend(extra.iter().copied());
        let output = classviz(&args);
        assert!(output.status.success(), "{extra:?}: {}", stderr(&output));
        let row = &common::json_lines(&output)[0];
        assert_eq!(row["top5"][0]["class"], 3, "{extra:?}: {row}");
    }
    // Pixel-only regularisers are refused with the Fourier parameterisation.
    let output = common::classviz_on(
        &model,
        &out,
        &["--class", "3", "--preset", "natural", "--blur-every", "2"],
    );
    assert_eq!(output.status.code(), Some(2), "a conflict between flags is a usage error");
    assert!(stderr(&output).contains("use them with --param pixel"), "{}", stderr(&output));
}

#[test]
fn the_same_seed_reproduces_a_natural_run() {
    let model = test_model("digits.pt");
    let mut images = Vec::new();
    for (name, seed) in [("a", "5"), ("b", "5"), ("c", "6")] {
        let out = scratch(&format!("natural-seed-{name}"));
        let output = classviz(&[
            "--model",
            model.to_str().unwrap(),
            "--class",
            "7",
            "--preset",
            "natural",
            "--iters",
            "15",
            "--seed",
            seed,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        images.push(image::open(out.join("7.png")).unwrap().to_luma8());
    }
    assert_eq!(images[0], images[1], "same seed, same image");
    assert_ne!(images[0], images[2], "another seed, another image");
}

/// The natural preset's padding and jitter are given for 224 pixels and scale
/// to the model's input (2 px on a 28-pixel digit); explicit flags are kept.
#[test]
fn preset_transforms_scale_with_the_input_and_flags_do_not() {
    let model = test_model("digits.pt");
    for (extra, pad, jitter) in [(&[][..], 2, 2), (&["--pad", "16", "--jitter", "3"][..], 16, 3)] {
        let out = scratch(&format!("natural-scaled-{}", extra.len()));
        let mut args =
            vec!["--model", model.to_str().unwrap(), "--class", "3", "--preset", "natural"];
        args.extend(["--iters", "2", "--force", "--out", out.to_str().unwrap()]);
        args.extend(extra);
        let output = classviz(&args);
        assert!(output.status.success(), "{}", stderr(&output));
        let png = listing(&out).into_iter().find(|n| n.ends_with(".png")).unwrap();
        let style = common::provenance(&out.join(png)).style;
        let transforms = &style["transforms"];
        assert_eq!(
            (transforms["pad"].as_i64(), transforms["jitter"].as_i64()),
            (Some(pad), Some(jitter)),
            "{extra:?}: {style}"
        );
    }
}

/// `score` and `saliency` fit a photo to the model the same way by default,
/// so the same photo gets the same probability from both.
#[test]
fn score_and_saliency_give_a_photo_one_probability() {
    let dir = scratch("score-saliency-fit");
    let photo = dir.join("285_chelsea.png");
    std::fs::copy(common::root().join("tests/data/chelsea.png"), &photo).unwrap();
    let threads = common::torch_threads();
    let photo_arg = photo.to_str().unwrap();
    let scored = classviz_raw(&["score", "--threads", &threads, photo_arg, "--json"]);
    assert!(scored.status.success(), "{}", stderr(&scored));
    let report: serde_json::Value = serde_json::from_str(stdout(&scored).trim()).unwrap();
    let out = dir.join("maps");
    let mapped = classviz_raw(&[
        "saliency",
        "--threads",
        &threads,
        "--image",
        photo_arg,
        "--class",
        "285",
        "--random-orders",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(mapped.status.success(), "{}", stderr(&mapped));
    let row: serde_json::Value =
        serde_json::from_str(stdout(&mapped).lines().next().unwrap()).unwrap();
    let (a, b) = (report["images"][0]["prob"].as_f64().unwrap(), row["prob"].as_f64().unwrap());
    assert!((a - b).abs() <= 1e-5, "score p {a}, saliency p {b}");
}
