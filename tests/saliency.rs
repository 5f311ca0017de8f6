//! Saliency maps: exact answers on a linear model, faithfulness (deletion vs
//! random order) on real photos, outputs, and bad input.

mod common;

use std::path::Path;

use classviz_core::attribution::faithfulness::{
    faithfulness, random_orders, saliency_order, BaselineDraw, Faithfulness, RandomBaseline,
    INSERTION_BLUR_SIGMA, MIN_BASELINE_ORDERS,
};
use classviz_core::attribution::{self, Attribution, Baseline, Method, MethodSettings};
use classviz_engine::input::Normalise;
use classviz_engine::model::Model;
use classviz_records::choice::Choice;
use common::{classviz_raw, listing, scratch, stderr, test_model};
use tch::{Device, Kind, Tensor};

const PHOTOS: [&str; 5] =
    ["coffee.png", "chelsea.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png"];

fn saliency(args: &[&str]) -> std::process::Output {
    let threads = common::torch_threads();
    let mut all = vec!["saliency", "--threads", threads.as_str()];
    all.extend_from_slice(args);
    classviz_raw(&all)
}

/// `classviz saliency --model MODEL --image IMAGE --out OUT` and `extra`.
fn saliency_on(model: &Path, image: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let paths = [model, image, out].map(|p| p.to_str().unwrap().to_string());
    let mut args = vec!["--model", &paths[0], "--image", &paths[1], "--out", &paths[2]];
    args.extend_from_slice(extra);
    saliency(&args)
}

/// A gradient-based method's attribution and map at the default settings but `settings`.
fn attribute(
    model: &Model,
    x: &Tensor,
    class: i64,
    method: Method,
    settings: MethodSettings,
) -> anyhow::Result<(Tensor, Tensor)> {
    attribution::attribute(model, x, class, Attribution { method, tap: None }, &settings)
}

#[test]
fn gradient_map_of_a_linear_model_is_max_abs_weight() {
    let model = common::linear_model();
    let weights = common::linear_weights();
    let x = Tensor::randn([1, 3, 8, 8], (Kind::Float, Device::Cpu));
    let (_, map) = attribute(&model, &x, 2, Method::Gradient, MethodSettings::default()).unwrap();
    let map = Vec::<f64>::try_from(map.to_kind(Kind::Double).reshape([-1])).unwrap();
    for (pixel, value) in map.iter().enumerate() {
        let expected = (0..3).map(|c| weights[2][c * 64 + pixel].abs()).fold(0.0, f64::max);
        assert!((value - expected).abs() < 1e-6, "pixel {pixel}: {value} vs {expected}");
    }
}

/// Insertion on a linear model, whose gradient map is exactly max_ch |W_c|:
/// at the class's own closed-form image x = W_c (every pixel adds W_c·x > 0),
/// restoring the largest |W_c| first raises p_c faster than any random order.
#[test]
fn insertion_by_the_exact_saliency_beats_random_on_a_linear_model() {
    let model = common::linear_model();
    let weights = common::linear_weights();
    let class = 3;
    let x =
        Tensor::from_slice(&weights[class as usize]).to_kind(Kind::Float).view([1, 3, 8, 8]) * 4.0;
    let (_, map) =
        attribute(&model, &x, class, Method::Gradient, MethodSettings::default()).unwrap();
    let ours = faithfulness(&model, &x, class, &[saliency_order(&map).unwrap()]).unwrap()[0];
    let orders = random_orders(8, 8, 16, 1, Device::Cpu).unwrap();
    let random = RandomBaseline::of(&faithfulness(&model, &x, class, &orders).unwrap());
    assert!(
        ours.insertion > random.insertion_mean + random.insertion_std,
        "insertion {} vs random {} ± {}",
        ours.insertion,
        random.insertion_mean,
        random.insertion_std
    );
    assert!(ours.deletion < random.deletion_mean, "{} vs {}", ours.deletion, random.deletion_mean);
}

/// The random baseline is a mean over orders: the more orders, the less it
/// moves between seeds (the standard deviation of the mean of groups of 16
/// is well under that of single orders).
#[test]
fn the_random_baseline_steadies_as_orders_are_added() {
    let model = common::linear_model();
    let x = Tensor::randn([1, 3, 8, 8], (Kind::Float, Device::Cpu));
    let orders = random_orders(8, 8, 128, 7, Device::Cpu).unwrap();
    let scores = faithfulness(&model, &x, 2, &orders).unwrap();
    let spread = |group: usize| {
        let means: Vec<f64> =
            scores.chunks(group).map(|chunk| RandomBaseline::of(chunk).deletion_mean).collect();
        RandomBaseline::of(
            &means
                .iter()
                .map(|&d| Faithfulness { deletion: d, insertion: 0.0 })
                .collect::<Vec<_>>(),
        )
        .deletion_std
    };
    let (one, sixteen) = (spread(1), spread(16));
    assert!(sixteen < 0.5 * one, "spread of the mean: 1 order {one}, 16 orders {sixteen}");
}

/// The baseline draws random orders until the map's verdict is decided:
/// wherever it stops, its orders are the first of the full draw, at least
/// `MIN_BASELINE_ORDERS` and at most the most asked for, and the verdict is
/// decided unless the most were drawn.
#[test]
fn the_random_baseline_draws_until_the_verdict_is_decided() {
    let model = common::linear_model();
    let weights = common::linear_weights();
    let x = Tensor::from_slice(&weights[3]).to_kind(Kind::Float).view([1, 3, 8, 8]) * 4.0;
    let (_, map) = attribute(&model, &x, 3, Method::Gradient, MethodSettings::default()).unwrap();
    let exact = faithfulness(&model, &x, 3, &[saliency_order(&map).unwrap()]).unwrap()[0];
    let middling = Faithfulness { deletion: 0.5, insertion: 0.5 };
    for (scores, most) in [(exact, 32), (exact, 5), (middling, 32)] {
        let baseline = BaselineDraw::new(most, 11).deciding(&model, &x, 3, scores).unwrap();
        assert!((MIN_BASELINE_ORDERS.min(most)..=most).contains(&baseline.orders), "{baseline:?}");
        let orders = random_orders(8, 8, baseline.orders as i64, 11, Device::Cpu).unwrap();
        assert_eq!(baseline, RandomBaseline::of(&faithfulness(&model, &x, 3, &orders).unwrap()));
        assert!(baseline.orders == most || baseline.decides(scores), "{baseline:?}");
    }
}

/// By default a map comes alone, with the seconds it took; its faithfulness
/// scores only with `--faithfulness`.
#[test]
fn faithfulness_scores_are_asked_for() {
    let model = test_model("linear.pt");
    let out = scratch("saliency-faithfulness-asked");
    let photo = common::photo("coffee.png");
    let plain = saliency_on(&model, &photo, &out, &["--class", "2", "--json"]);
    assert!(plain.status.success(), "{}", stderr(&plain));
    let row = &common::json_lines(&plain)[0];
    assert!(row["seconds"].as_f64().is_some() && row.get("deletion_auc").is_none(), "{row}");
    let scored = saliency_on(&model, &photo, &out, &["--class", "2", "--faithfulness", "--json"]);
    let row = &common::json_lines(&scored)[0];
    for key in
        ["deletion_auc", "insertion_auc", "random_auc", "beats_random", "faithfulness_seconds"]
    {
        assert!(row.get(key).is_some(), "{key}: {row}");
    }
}

#[test]
fn method_all_writes_one_sheet_and_one_result_per_method() {
    let model = test_model("linear.pt");
    let out = scratch("saliency-all");
    let output = saliency_on(
        &model,
        &common::photo("coffee.png"),
        &out,
        &["--class", "2", "--method", "all", "--faithfulness", "--json"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let rows = common::json_lines(&output);
    let methods: Vec<&str> = rows.iter().map(|r| r["method"].as_str().unwrap()).collect();
    assert_eq!(methods, ["gradient", "smoothgrad", "gradient-x-input", "integrated-gradients"]);
    let smoothing: Vec<f64> = rows.iter().map(|r| r["smoothing"].as_f64().unwrap()).collect();
    assert_eq!(smoothing, [0.0, 0.0, 1.0, 1.0], "contribution maps are pooled, sensitivities not");
    let names = listing(&out);
    assert_eq!(names.iter().filter(|n| n.ends_with("_methods.png")).count(), 1, "{names:?}");
    assert_eq!(names.iter().filter(|n| n.ends_with("_overlay.png")).count(), 4, "{names:?}");
    let sheet = image::open(out.join("coffee_2_two_methods.png")).unwrap();
    assert!(sheet.width() > 4 * sheet.height() / 2, "one row: the photo and four overlays");
    for row in &rows {
        for key in ["deletion_auc", "insertion_auc", "random_auc", "random_insertion_auc"] {
            let value = row[key].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&value), "{key} {value}");
        }
    }
}

#[test]
fn integrated_gradients_are_complete() {
    let model = common::linear_model();
    let x = Tensor::randn([1, 3, 8, 8], (Kind::Float, Device::Cpu));
    for baseline in [Baseline::Black, Baseline::Mean, Baseline::Blur] {
        let settings = MethodSettings { steps: 20, baseline, ..MethodSettings::default() };
        let reference = match baseline {
            Baseline::Mean => x.zeros_like(),
            Baseline::Black => model.input().normalise(&x.zeros_like()).unwrap(),
            Baseline::Blur => {
                classviz_core::priors::gaussian_blur(&x, INSERTION_BLUR_SIGMA).unwrap()
            }
        };
        let (attribution, _) =
            attribute(&model, &x, 4, Method::IntegratedGradients, settings).unwrap();
        let total = f64::try_from(attribution.sum(Kind::Double)).unwrap();
        let score = |t: &Tensor| model.forward(t, &[]).unwrap().scores.double_value(&[0, 4]);
        let expected = score(&x) - score(&reference);
        assert!(
            (total - expected).abs() <= 0.01 * expected.abs(),
            "{baseline:?}: Σ {total} vs {expected}"
        );
    }
}

/// Both metrics on the five photos, every method in one run. SmoothGrad and
/// integrated gradients beat the random baseline's mean on deletion *and*
/// insertion on every photo. The paper's plain gradient is reported as it is
/// (it loses to random deletion on chelsea and motorcycle_left; README).
#[test]
fn recommended_methods_beat_random_on_both_metrics_on_real_photos() {
    let model = common::default_model();
    let out = scratch("saliency-photos");
    let mut args =
        vec!["--model", model.to_str().unwrap(), "--method", "all", "--faithfulness", "--out"];
    args.push(out.to_str().unwrap());
    args.push("--json");
    let paths: Vec<String> =
        PHOTOS.iter().map(|p| common::photo(p).display().to_string()).collect();
    for path in &paths {
        args.extend(["--image", path.as_str()]);
    }
    let output = saliency(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let rows = common::json_lines(&output);
    assert_eq!(rows.len(), PHOTOS.len() * 4, "one result per photo and method");
    for row in &rows {
        let get = |key: &str| row[key].as_f64().unwrap();
        let method = row["method"].as_str().unwrap();
        eprintln!(
            "{method:22} {:40}: deletion {:.4} (random {:.4} ± {:.4}), insertion {:.4} (random {:.4} ± {:.4})",
            row["image"].as_str().unwrap(),
            get("deletion_auc"),
            get("random_auc"),
            get("random_deletion_std"),
            get("insertion_auc"),
            get("random_insertion_auc"),
            get("random_insertion_std"),
        );
        let orders = row["random_orders"].as_u64().unwrap();
        assert!(
            (4..=32).contains(&orders),
            "orders are added until the verdict is decided: {orders}"
        );
        assert!(row["sheet"].as_str().unwrap().ends_with("_methods.png"));
        if method == "smoothgrad" || method == "integrated-gradients" {
            assert!(get("deletion_auc") < get("random_auc"), "{method} deletion: {row}");
            assert!(
                get("insertion_auc") > get("random_insertion_auc"),
                "{method} insertion: {row}"
            );
            assert_eq!(row["beats_random"], true);
        }
    }
    let sheets = listing(&out).into_iter().filter(|n| n.ends_with("_methods.png")).count();
    assert_eq!(sheets, PHOTOS.len());
}

/// Two methods run one after the other into one folder keep both maps: every
/// file carries its method's name. A list of methods runs each once.
#[test]
fn two_methods_into_one_folder_keep_both() {
    let model = test_model("tiny_taps.pt");
    let out = scratch("saliency-two-methods");
    let image = common::photo("coffee.png");
    for method in ["grad-cam", "grad-cam++"] {
        let output =
            saliency_on(&model, &image, &out, &["--method", method, "--random-orders", "2"]);
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let overlays: Vec<String> =
        listing(&out).into_iter().filter(|n| n.ends_with("_overlay.png")).collect();
    assert_eq!(overlays.len(), 2, "{overlays:?}");
    assert!(
        overlays.iter().any(|n| n.contains("_grad-cam_"))
            && overlays.iter().any(|n| n.contains("_grad-cam++_"))
    );
    let listed = saliency_on(
        &model,
        &image,
        &scratch("saliency-method-list"),
        &["--method", "gradient,grad-cam,gradient", "--random-orders", "2", "--json"],
    );
    assert!(listed.status.success(), "{}", stderr(&listed));
    let methods: Vec<String> = common::json_lines(&listed)
        .iter()
        .map(|row| row["method"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(methods, ["gradient", "grad-cam"], "each method once, in the order given");
}

#[test]
fn coffee_is_espresso_and_three_pngs_are_written() {
    let model = common::default_model();
    let out = scratch("saliency-coffee");
    let output = saliency_on(&model, &common::photo("coffee.png"), &out, &["--box", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let row = &common::json_lines(&output)[0];
    assert_eq!(row["class"], 967);
    assert_eq!(row["name"], "espresso");
    assert_eq!(row["method"], "gradient");
    assert_eq!(
        listing(&out),
        vec![
            "coffee_967_espresso_gradient_overlay.png",
            "coffee_967_espresso_gradient_saliency.png",
            "coffee_967_espresso_gradient_saliency16.png"
        ]
    );
    let raw = image::open(out.join("coffee_967_espresso_gradient_saliency16.png")).unwrap();
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
        let output = saliency_on(
            &model,
            &common::photo("chelsea.png"),
            &out,
            &["--class", "tabby", "--method", method, "--steps", "8", "--json"],
        );
        assert!(output.status.success(), "{method}: {}", stderr(&output));
        let row = &common::json_lines(&output)[0];
        assert_eq!(row["class"], 281, "{method}");
        assert_eq!(row["method"], method);
    }
}

#[test]
fn smoothing_is_a_flag_with_checked_values() {
    let model = test_model("linear.pt");
    let out = scratch("saliency-smooth");
    let image = common::photo("coffee.png");
    let run = |value: &str| {
        let flag = format!("--smooth={value}");
        saliency_on(
            &model,
            &image,
            &out,
            &[
                "--class",
                "2",
                "--method",
                "integrated-gradients",
                &flag,
                "--random-orders",
                "2",
                "--json",
            ],
        )
    };
    let output = run("3");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(common::json_lines(&output)[0]["smoothing"], 3.0);
    for bad in ["-1", "nan", "inf", "x"] {
        let output = run(bad);
        assert_eq!(output.status.code(), Some(2), "--smooth {bad}");
        let text = stderr(&output);
        assert_eq!(text.lines().count(), 1, "--smooth {bad}: {text}");
        assert!(text.contains("--smooth"), "{text}");
    }
}

#[test]
fn bad_images_fail_clearly() {
    let model = common::default_model();
    let dir = scratch("saliency-bad");
    let corrupt = dir.join("corrupt.png");
    let bytes = std::fs::read(common::photo("coffee.png")).unwrap();
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
    let empty = dir.join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    for (image, expected) in [
        (corrupt.clone(), "is corrupt or unsupported"),
        (empty.clone(), "is empty (0 bytes)"),
        (unsupported.clone(), "unsupported or unrecognised format"),
        (huge.clone(), "over the 100 megapixel limit"),
        (dir.join("missing.png"), "missing.png not found"),
        (dir.clone(), "is a folder, not a file"),
    ] {
        let output = saliency_on(&model, &image, &out, &[]);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{}: {message}", image.display());
        assert!(
            message.contains(expected),
            "{}: expected {expected:?} in {message}",
            image.display()
        );
        assert_eq!(message.trim_end().lines().count(), 1, "{message}");
    }
    let output = saliency_on(&model, &common::photo("coffee.png"), &out, &["--class", "espressso"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("closest: espresso (967)"), "{}", stderr(&output));
    assert!(listing(&out).iter().all(|n| !n.ends_with(".png")));
}

/// Largest |classviz − reference| of a class activation map (maps in [0, 1]; measured
/// 2.2e-6 at most, on 3 photos and 3 methods).
const CAM_TOLERANCE: f64 = 1e-4;

/// Grad-CAM and Grad-CAM++ on three photos, and Score-CAM on one, match an
/// independent implementation with hooks on the eager network
/// (tests/cam_reference.py), on the same pixels, class and layer.
#[test]
fn class_activation_maps_match_the_hooked_reference() {
    common::use_torch_threads();
    let root = common::root().join("tests/models");
    let text =
        std::fs::read_to_string(root.join("cam_reference.json")).expect("run `make fixtures`");
    let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
    let model =
        Model::open(&common::root().join("weights/efficientnet_lite0_taps.pt"), Device::Cpu)
            .unwrap();
    for (photo, entry) in reference.as_object().unwrap() {
        let x = common::model_input(&model, &root.join(format!("cam_{photo}.png")));
        let class = entry["class"].as_i64().unwrap();
        let tap = model.info.tap(entry["tap"].as_str().unwrap()).unwrap().id;
        for method in entry["methods"].as_array().unwrap() {
            let method = method.as_str().unwrap();
            let kind = Method::parse(method).unwrap();
            let ours = attribution::cam::cam(&model, &x, class, kind, tap, None).unwrap();
            let theirs = Tensor::read_npy(root.join(format!("cam_{photo}_{method}.npy"))).unwrap();
            common::assert_same_map(&format!("{photo} {method}"), &ours, &theirs, CAM_TOLERANCE);
        }
    }
}

/// `--method all` on a tapped model adds the four class activation maps, each
/// naming its tap (the last spatial one by default) in `--json`.
#[test]
fn method_all_on_a_tapped_model_adds_the_class_activation_maps() {
    let model = test_model("tiny_taps.pt");
    let out = scratch("saliency-cams");
    let image = common::photo("coffee.png");
    let args = ["--model", model.to_str().unwrap(), "--image", image.to_str().unwrap()];
    let output = saliency(
        &[
            &args[..],
            &["--method", "all", "--random-orders", "2", "--out", out.to_str().unwrap(), "--json"],
        ]
        .concat(),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let rows = common::json_lines(&output);
    let methods: Vec<&str> = rows.iter().map(|r| r["method"].as_str().unwrap()).collect();
    assert_eq!(methods[4..], ["grad-cam", "grad-cam++", "layer-cam", "score-cam"]);
    assert!(rows[..4].iter().all(|r| r.get("tap").is_none()));
    assert!(rows[4..].iter().all(|r| r["tap"] == "conv"), "the default tap is named");
    let one = saliency(
        &[
            &args[..],
            &[
                "--method",
                "layer-cam",
                "--tap",
                "conv",
                "--random-orders",
                "2",
                "--out",
                out.to_str().unwrap(),
                "--json",
            ],
        ]
        .concat(),
    );
    assert!(one.status.success(), "{}", stderr(&one));
    assert_eq!(common::json_lines(&one)[0]["tap"], "conv");
}

/// CAMs on a model without taps, an unknown tap, and a bad method each get
/// one clear line and their exit code.
#[test]
fn class_activation_maps_refuse_models_without_taps() {
    let out = scratch("saliency-cam-refusals");
    let image = common::photo("coffee.png");
    let plain = test_model("linear.pt");
    let tapped = test_model("tiny_taps.pt");
    for (model, extra, code, needle) in [
        (&plain, vec!["--method", "grad-cam"], 1, "class activation maps are taken at a tap, and"),
        (
            &plain,
            vec!["--method", "score-cam"],
            1,
            "export one with `weights/export.py MODEL --taps",
        ),
        (&tapped, vec!["--method", "grad-cam", "--tap", "zz"], 1, "unknown tap zz"),
        (&tapped, vec!["--method", "gradcam"], 2, "possible values"),
        (&plain, vec!["--sanity"], 1, "export them with `weights/export.py MODEL --randomise`"),
    ] {
        let mut args = vec!["--model", model.to_str().unwrap(), "--image", image.to_str().unwrap()];
        args.extend(["--out", out.to_str().unwrap()]);
        args.extend(extra.iter().copied());
        let output = saliency(&args);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(code), "{extra:?}: {message}");
        assert!(message.contains(needle), "{extra:?}: {message}");
        assert_eq!(message.trim_end().lines().count(), 1, "{extra:?}: {message}");
    }
    let all =
        saliency_on(&plain, &image, &out, &["--method", "all", "--random-orders", "2", "--json"]);
    assert!(
        all.status.success(),
        "--method all without taps leaves the CAMs out: {}",
        stderr(&all)
    );
    assert_eq!(common::json_lines(&all).len(), 4);
}

/// `--segment` writes a binary mask beside the maps and reports the box of its
/// largest part in the photo's pixels.
#[test]
fn segment_writes_a_mask_and_its_box() {
    let out = scratch("saliency-segment");
    let image = common::photo("chelsea.png");
    let output = saliency(&[
        "--image",
        image.to_str().unwrap(),
        "--segment",
        "--random-orders",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let row = &common::json_lines(&output)[0];
    let mask = image::open(row["mask"].as_str().unwrap()).unwrap().to_luma8();
    assert_eq!(mask.dimensions(), (224, 224));
    assert!(mask.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255), "binary");
    let object = mask.pixels().filter(|p| p.0[0] == 255).count();
    assert!(object > 224 * 224 / 20 && object < 224 * 224 * 19 / 20, "{object} object pixels");
    let (width, height) = image::image_dimensions(&image).unwrap();
    let b = &row["mask_box"];
    let (x0, x1) = (b["x0"].as_u64().unwrap(), b["x1"].as_u64().unwrap());
    let (y0, y1) = (b["y0"].as_u64().unwrap(), b["y1"].as_u64().unwrap());
    assert!(x0 < x1 && x1 <= u64::from(width) && y0 < y1 && y1 <= u64::from(height), "{b}");
}

/// `--sanity` compares every method's map with the randomised variants' maps,
/// one line per method and depth, with Spearman's ρ and SSIM.
#[test]
fn sanity_checks_cover_every_method_and_depth() {
    let out = scratch("saliency-sanity");
    let model = test_model("tiny_taps.pt");
    let output = saliency_on(
        &model,
        &common::photo("coffee.png"),
        &out,
        &["--method", "all", "--sanity", "--json"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let rows = common::json_lines(&output);
    assert_eq!(rows.len(), 8 * 2, "8 methods × 2 depths");
    for row in &rows {
        let (rho, ssim) = (row["spearman"].as_f64().unwrap(), row["ssim"].as_f64().unwrap());
        assert!((-1.0..=1.0).contains(&rho) && (-1.0..=1.0).contains(&ssim), "{row}");
        assert_eq!(row["unchanged"].as_bool().unwrap(), rho >= attribution::sanity::FLAG_SPEARMAN);
    }
    assert_eq!(rows[8]["blocks"], serde_json::json!(["head", "conv"]));
}

/// A transformer's tokens `[N, T, C]` (a class token and a square grid of
/// patches) are a tap like any other: the export returns them as a grid,
/// `info` says what they were, and class activation maps and unit
/// objectives run on them.
#[test]
fn token_taps_become_grids_for_maps_and_units() {
    let model = test_model("tokens_taps.pt");
    let info = classviz_raw(&["info", "--model", model.to_str().unwrap()]);
    assert!(info.status.success(), "{}", stderr(&info));
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(text.contains("blocks 8x4x4 (tokens 17x8, 1 prefix)"), "{text}");
    let out = scratch("saliency-tokens");
    let image = common::photo("coffee.png");
    let output = saliency_on(
        &model,
        &image,
        &out,
        &["--method", "grad-cam", "--random-orders", "2", "--json"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(common::json_lines(&output)[0]["tap"], "blocks");
    let units = common::classviz_on(
        &model,
        &out,
        &["--objective", "channel:blocks", "--channels", "0-1", "--iters", "5", "--json"],
    );
    assert!(units.status.success(), "{}", stderr(&units));
    assert_eq!(common::json_lines(&units).len(), 2);
}
