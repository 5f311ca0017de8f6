//! Saliency maps: exact answers on a linear model, faithfulness (deletion vs
//! random order) on real photos, outputs, and bad input.

mod common;

use std::path::PathBuf;

use classviz::model::{Classifier, InputOverrides};
use classviz::saliency::{attribute, Baseline, Method};
use common::{classviz_raw, listing, scratch, stderr, test_model};
use tch::{Device, Kind, Tensor};

const PHOTOS: [&str; 5] =
    ["coffee.png", "chelsea.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png"];

fn photo(name: &str) -> PathBuf {
    common::root().join("tests/data").join(name)
}

fn saliency(args: &[&str]) -> std::process::Output {
    let mut all = vec!["saliency", "--threads", "1"];
    all.extend_from_slice(args);
    classviz_raw(&all)
}

fn linear() -> Classifier {
    tch::set_num_threads(1);
    Classifier::load(&test_model("linear.pt"), Device::Cpu, &InputOverrides::default()).unwrap()
}

#[test]
fn gradient_map_of_a_linear_model_is_max_abs_weight() {
    let model = linear();
    let weights = common::linear_weights();
    let x = Tensor::randn([1, 3, 8, 8], (Kind::Float, Device::Cpu));
    let (_, map) = attribute(&model, &x, 2, Method::Gradient).unwrap();
    let map = Vec::<f64>::try_from(map.to_kind(Kind::Double).reshape([-1])).unwrap();
    for (pixel, value) in map.iter().enumerate() {
        let expected = (0..3).map(|c| weights[2][c * 64 + pixel].abs()).fold(0.0, f64::max);
        assert!((value - expected).abs() < 1e-6, "pixel {pixel}: {value} vs {expected}");
    }
}

#[test]
fn integrated_gradients_are_complete() {
    let model = linear();
    let x = Tensor::randn([1, 3, 8, 8], (Kind::Float, Device::Cpu));
    for baseline in [Baseline::Black, Baseline::Mean] {
        let reference = match baseline {
            Baseline::Mean => x.zeros_like(),
            Baseline::Black => model.input.normalise(&x.zeros_like()).unwrap(),
        };
        let (attribution, _) =
            attribute(&model, &x, 4, Method::IntegratedGradients { steps: 20, baseline }).unwrap();
        let total = f64::try_from(attribution.sum(Kind::Double)).unwrap();
        let score = |t: &Tensor| model.logits(t).unwrap().double_value(&[0, 4]);
        let expected = score(&x) - score(&reference);
        assert!(
            (total - expected).abs() <= 0.01 * expected.abs(),
            "{baseline:?}: Σ {total} vs {expected}"
        );
    }
}

/// Deletion AUCs of both methods on the five photos. SmoothGrad beats the
/// random order on every photo and is better than the gradient on average.
/// The paper's plain gradient beats random on coffee, astronaut and rocket but
/// not on chelsea and motorcycle_left (measured; see README): its |∂S_c/∂I|
/// mixes evidence for and against the class, and deleting its top pixels
/// first can even raise the class probability there.
#[test]
fn maps_are_faithful_on_real_photos() {
    let model = common::default_model();
    let out = scratch("saliency-photos");
    let mut averages = Vec::new();
    for method in ["gradient", "smoothgrad"] {
        let mut total = 0.0;
        for name in PHOTOS {
            let output = saliency(&[
                "--model",
                model.to_str().unwrap(),
                "--image",
                photo(name).to_str().unwrap(),
                "--method",
                method,
                "--out",
                out.to_str().unwrap(),
                "--json",
            ]);
            assert!(output.status.success(), "{name}: {}", stderr(&output));
            let row = &common::json_lines(&output)[0];
            let (deletion, random) =
                (row["deletion_auc"].as_f64().unwrap(), row["random_auc"].as_f64().unwrap());
            eprintln!(
                "{method} {name}: class {} deletion {deletion:.4} random {random:.4}",
                row["class"]
            );
            let must_beat_random = method == "smoothgrad"
                || ["coffee.png", "astronaut.png", "rocket.jpg"].contains(&name);
            if must_beat_random {
                assert!(
                    deletion < random,
                    "{method} on {name}: deletion {deletion} >= random {random}"
                );
            }
            total += deletion;
        }
        averages.push(total / PHOTOS.len() as f64);
    }
    assert!(averages[1] <= averages[0], "smoothgrad {} vs gradient {}", averages[1], averages[0]);
}

#[test]
fn coffee_is_espresso_and_three_pngs_are_written() {
    let model = common::default_model();
    let out = scratch("saliency-coffee");
    let output = saliency(&[
        "--model",
        model.to_str().unwrap(),
        "--image",
        photo("coffee.png").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--box",
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let row = &common::json_lines(&output)[0];
    assert_eq!(row["class"], 967);
    assert_eq!(row["name"], "espresso");
    assert_eq!(row["method"], "gradient");
    assert_eq!(
        listing(&out),
        vec![
            "coffee_967_espresso_overlay.png",
            "coffee_967_espresso_saliency.png",
            "coffee_967_espresso_saliency16.png"
        ]
    );
    let raw = image::open(out.join("coffee_967_espresso_saliency16.png")).unwrap();
    assert_eq!(raw.color(), image::ColorType::L16);
    // The box is in original pixels (coffee is 600x400) and inside the photo.
    let b = &row["box"];
    let (x0, y0, x1, y1) = (
        b["x0"].as_u64().unwrap(),
        b["y0"].as_u64().unwrap(),
        b["x1"].as_u64().unwrap(),
        b["y1"].as_u64().unwrap(),
    );
    assert!(x0 < x1 && x1 <= 600 && y0 < y1 && y1 <= 400, "{b}");
}

#[test]
fn explicit_class_and_other_methods() {
    let model = common::default_model();
    let out = scratch("saliency-methods");
    for method in ["gradient-x-input", "integrated-gradients"] {
        let output = saliency(&[
            "--model",
            model.to_str().unwrap(),
            "--image",
            photo("chelsea.png").to_str().unwrap(),
            "--class",
            "tabby",
            "--method",
            method,
            "--steps",
            "8",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ]);
        assert!(output.status.success(), "{method}: {}", stderr(&output));
        let row = &common::json_lines(&output)[0];
        assert_eq!(row["class"], 281, "{method}");
        assert_eq!(row["method"], method);
    }
}

#[test]
fn bad_images_fail_clearly() {
    let model = common::default_model();
    let dir = scratch("saliency-bad");
    let corrupt = dir.join("corrupt.png");
    let bytes = std::fs::read(photo("coffee.png")).unwrap();
    std::fs::write(&corrupt, &bytes[..bytes.len() / 3]).unwrap();
    let unsupported = dir.join("notes.txt");
    std::fs::write(&unsupported, "just some text, not an image").unwrap();
    // A PNG whose header claims 20000 x 10000 pixels.
    let huge = dir.join("huge.png");
    {
        let file = std::fs::File::create(&huge).unwrap();
        let mut encoder = png::Encoder::new(file, 20_000, 10_000);
        encoder.set_color(png::ColorType::Rgb);
        let mut writer = encoder.write_header().unwrap();
        // An empty zlib stream: a well-formed start whose size alone is the problem.
        writer
            .write_chunk(png::chunk::IDAT, &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01])
            .unwrap();
        std::mem::forget(writer);
    }
    let out = dir.join("out");
    for (image, expected) in [
        (corrupt.clone(), "is corrupt or unsupported"),
        (unsupported.clone(), "unsupported or unrecognised format"),
        (huge.clone(), "over the 100 megapixel limit"),
        (dir.join("missing.png"), "missing.png not found"),
        (dir.clone(), "is a folder, not a file"),
    ] {
        let output = saliency(&[
            "--model",
            model.to_str().unwrap(),
            "--image",
            image.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{}: {message}", image.display());
        assert!(
            message.contains(expected),
            "{}: expected {expected:?} in {message}",
            image.display()
        );
        assert_eq!(message.trim_end().lines().count(), 1, "{message}");
    }
    let output = saliency(&[
        "--model",
        model.to_str().unwrap(),
        "--image",
        photo("coffee.png").to_str().unwrap(),
        "--class",
        "espressso",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("closest: espresso (967)"), "{}", stderr(&output));
    assert!(listing(&out).iter().all(|n| !n.ends_with(".png")));
}
