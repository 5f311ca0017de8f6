//! Feature accentuation (Hamblin et al. 2024): an ascent that starts from a
//! photo (`--init image:PATH`) and is held near it by W·‖f(x) − f(photo)‖² at a
//! tap, or at the pixels without one (`--accentuate W [--tap NAME]`).

mod common;

use std::path::Path;

use common::{classviz, json_lines, listing, scratch, stderr, test_model};

/// The mean absolute difference, in [0, 1] units, between two images of one size.
fn distance(a: &Path, b: &Path) -> f64 {
    let (a, b) = (image::open(a).unwrap().to_rgb8(), image::open(b).unwrap().to_rgb8());
    assert_eq!(a.dimensions(), b.dimensions());
    let total: f64 =
        a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| (f64::from(*x) - f64::from(*y)).abs()).sum();
    total / a.as_raw().len() as f64 / 255.0
}

/// The photo as the model sees it (the same fit), written beside the run's images.
fn fitted_photo(model: &Path, photo_path: &Path, out: &Path) -> std::path::PathBuf {
    let model = classviz_engine::model::Model::open(model, tch::Device::Cpu).unwrap();
    let fitted = classviz_records::pixels::load_photo(
        photo_path,
        model.input(),
        classviz_records::pixels::Fit::Crop,
    )
    .unwrap();
    let path = out.join("photo_fitted.png");
    classviz_records::pixels::write_png_atomic(&path, &fitted.pixels, &[]).unwrap();
    path
}

/// Accentuate coffee.png toward `class` of `model` with weight `w` (at `tap`),
/// with Adam (whose steps a huge weight cannot blow up); the result's file,
/// logit and distance from the photo.
fn accentuate(
    model: &Path,
    class: &str,
    w: &str,
    tap: Option<&str>,
    name: &str,
) -> (String, f64, f64) {
    let out = scratch(&format!("accentuate-{name}"));
    let init = format!("image:{}", common::photo("coffee.png").display());
    let mut args = vec![
        "--model",
        model.to_str().unwrap(),
        "--class",
        class,
        "--init",
        &init,
        "--accentuate",
        w,
    ];
    args.extend(["--iters", "60", "--lr", "0.05", "--optimizer", "adam"]);
    args.extend(["--out", out.to_str().unwrap(), "--json"]);
    if let Some(tap) = tap {
        args.extend(["--tap", tap]);
    }
    let output = classviz(&args);
    assert!(output.status.success(), "{name}: {}", stderr(&output));
    let row = &json_lines(&output)[0];
    let path = row["path"].as_str().unwrap().to_string();
    let label = row["name"].as_str().unwrap();
    assert!(path.ends_with(&format!("coffee_to_{class}_{label}.png")), "{path}");
    let reference = fitted_photo(model, &common::photo("coffee.png"), &out);
    let moved = distance(Path::new(&path), &reference);
    (path, row["logit"].as_f64().unwrap(), moved)
}

#[test]
fn a_large_weight_keeps_the_photo_and_none_moves_toward_the_class() {
    let cases =
        [(test_model("linear.pt"), "3", None), (test_model("tiny_taps.pt"), "2", Some("conv"))];
    for (model, class, tap) in cases {
        let label = if tap.is_some() { "tap" } else { "pixels" };
        let (_, held_logit, held) =
            accentuate(&model, class, "1000000", tap, &format!("{label}-held"));
        let (_, free_logit, free) = accentuate(&model, class, "0", tap, &format!("{label}-free"));
        eprintln!("{label}: W=1e6 moved {held:.4} (S_c {held_logit:.3}); W=0 moved {free:.4} (S_c {free_logit:.3})");
        assert!(held < 0.01, "{label}: a huge weight keeps the image at the photo, moved {held}");
        assert!(
            free > 5.0 * held.max(1e-3),
            "{label}: without the anchor the image moves: {free} vs {held}"
        );
        assert!(
            free_logit > held_logit,
            "{label}: and toward the class: {free_logit} vs {held_logit}"
        );
    }
}

#[test]
fn every_parameterisation_starts_from_the_photo() {
    let model = test_model("tiny_taps.pt");
    for preset in ["simonyan", "natural"] {
        let out = scratch(&format!("accentuate-start-{preset}"));
        let init = format!("image:{}", common::photo("chelsea.png").display());
        let output = classviz(&[
            "--model",
            model.to_str().unwrap(),
            "--class",
            "1",
            "--init",
            &init,
            "--preset",
            preset,
            "--iters",
            "1",
            "--lr",
            "1e-6",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ]);
        assert!(output.status.success(), "{preset}: {}", stderr(&output));
        let path = json_lines(&output)[0]["path"].as_str().unwrap().to_string();
        let reference = fitted_photo(&model, &common::photo("chelsea.png"), &out);
        let moved = distance(Path::new(&path), &reference);
        assert!(moved < 0.02, "{preset}: one tiny step from the photo moved {moved}");
    }
}

#[test]
fn bad_photos_and_misused_flags_get_one_line() {
    let out = scratch("accentuate-refusals");
    let dir = out.to_str().unwrap().to_string();
    let corrupt = out.join("corrupt.png");
    std::fs::write(&corrupt, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let linear = test_model("linear.pt");
    let tapped = test_model("tiny_taps.pt");
    let coffee = format!("image:{}", common::photo("coffee.png").display());
    let missing = format!("image:{}", out.join("missing.jpg").display());
    let bad = format!("image:{}", corrupt.display());
    for (model, extra, code, needle) in [
        (&linear, vec!["--init", missing.as_str()], 1, "not found"),
        (&linear, vec!["--init", bad.as_str()], 1, "corrupt"),
        (&linear, vec!["--accentuate", "1"], 2, "give --init image:PATH too"),
        (
            &linear,
            vec!["--init", coffee.as_str(), "--accentuate", "1", "--tap", "conv"],
            1,
            "has no taps",
        ),
        (
            &tapped,
            vec!["--init", coffee.as_str(), "--accentuate", "1", "--tap", "zz"],
            1,
            "unknown tap zz",
        ),
        (&tapped, vec!["--tap", "conv"], 2, "give --accentuate W too"),
        (&linear, vec!["--accentuate", "-1"], 2, "--accentuate"),
        (&linear, vec!["--init", "image:"], 2, "--init"),
    ] {
        let mut args = vec![
            "--model",
            model.to_str().unwrap(),
            "--class",
            "1",
            "--iters",
            "2",
            "--out",
            dir.as_str(),
        ];
        args.extend(extra.iter().copied());
        let output = classviz(&args);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(code), "{extra:?}: {message}");
        assert!(message.contains(needle), "{extra:?}: expected {needle:?} in {message}");
        assert_eq!(message.trim_end().lines().count(), 1, "{extra:?}: {message}");
    }
    assert!(listing(&out).iter().all(|n| !n.ends_with("_to_1_one.png")), "{:?}", listing(&out));
}
