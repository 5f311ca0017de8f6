//! Inside the network: channel, neuron and layer objectives on tapped models,
//! and facets of a class kept apart by the diversity penalty.

mod common;

use std::path::Path;

use common::{classviz, json_lines, listing, scratch, stderr, test_model};
use tch::{Device, Kind, Tensor};

fn pixels01(path: &Path) -> Vec<[f64; 3]> {
    let image = image::open(path).unwrap().to_rgb8();
    image.pixels().map(|p| p.0.map(|v| f64::from(v) / 255.0)).collect()
}

/// Mean absolute difference between horizontal neighbours and between vertical ones.
fn edge_energy(path: &Path) -> (f64, f64) {
    let image = image::open(path).unwrap().to_luma8();
    let (w, h) = image.dimensions();
    let at = |x: u32, y: u32| f64::from(image.get_pixel(x, y).0[0]);
    let (mut dx, mut dy) = (0.0, 0.0);
    for y in 0..h - 1 {
        for x in 0..w - 1 {
            dx += (at(x + 1, y) - at(x, y)).abs();
            dy += (at(x, y + 1) - at(x, y)).abs();
        }
    }
    (dx, dy)
}

/// The share of an image's (grey) spectral energy above a quarter cycle per pixel.
fn high_frequency_share(path: &Path) -> f64 {
    let image = image::open(path).unwrap().to_luma8();
    let (w, h) = (image.width() as i64, image.height() as i64);
    let values: Vec<f32> = image.pixels().map(|p| f32::from(p.0[0])).collect();
    let x = Tensor::from_slice(&values).view([h, w]);
    let x = &x - x.mean(Kind::Float);
    let power = x.fft_fft2(None::<&[i64]>, [0, 1], "backward").abs().square();
    let fy = Tensor::fft_fftfreq(h, 1.0, (Kind::Float, Device::Cpu)).view([-1, 1]);
    let fx = Tensor::fft_fftfreq(w, 1.0, (Kind::Float, Device::Cpu)).view([1, -1]);
    let radius = (&fx * &fx + &fy * &fy).sqrt();
    let high = (&power * radius.gt(0.25).to_kind(Kind::Float)).sum(Kind::Double);
    f64::try_from(high / power.sum(Kind::Double)).unwrap()
}

#[test]
fn hand_set_detectors_show_their_colour_and_orientation() {
    let out = scratch("units-detector");
    let model = test_model("detector.pt");
    let run = |extra: &[&str]| {
        let mut args = vec!["--model", model.to_str().unwrap(), "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        let output = classviz(&args);
        assert!(output.status.success(), "{}", stderr(&output));
        output
    };
    // Channel 0 is red minus green and blue: its image is red.
    run(&["--objective", "channel:detect:0", "--iters", "100", "--lr", "20"]);
    let red = pixels01(&out.join("detect_c0.png"));
    let redness = red.iter().map(|p| p[0] - (p[1] + p[2]) / 2.0).sum::<f64>() / red.len() as f64;
    assert!(redness > 0.5, "channel 0 (red detector): mean R − (G+B)/2 = {redness}");
    // Channels 1 and 2 are squared edge responses: zero is a stationary point,
    // so they start from a little noise.
    run(&[
        "--objective",
        "channel:detect",
        "--channels",
        "1,2",
        "--init",
        "noise:0.1",
        "--iters",
        "100",
        "--l2",
        "0.01",
    ]);
    let (dx, dy) = edge_energy(&out.join("detect_c1.png"));
    assert!(dx > 3.0 * dy, "channel 1 (vertical edges): horizontal change {dx} vs vertical {dy}");
    let (dx, dy) = edge_energy(&out.join("detect_c2.png"));
    assert!(dy > 3.0 * dx, "channel 2 (horizontal edges): vertical change {dy} vs horizontal {dx}");
    // A neuron and the whole layer name their files.
    run(&["--objective", "neuron:detect:0", "--iters", "5"]);
    let output =
        run(&["--objective", "layer:detect", "--init", "noise:0.1", "--iters", "5", "--json"]);
    let line = &json_lines(&output)[0];
    assert_eq!(line["unit"], "layer:detect");
    assert!(line.get("channel").is_none(), "{line}");
    let names = listing(&out);
    for name in
        ["detect_c0.png", "detect_c1.png", "detect_c2.png", "detect_n0.png", "detect_layer.png"]
    {
        assert!(names.contains(&name.to_string()), "{name} missing from {names:?}");
    }
}

#[test]
fn early_taps_show_finer_patterns_than_late_ones_with_the_natural_preset() {
    let out = scratch("units-frequency");
    let model = common::root().join("weights/efficientnet_lite0_taps.pt");
    assert!(model.exists(), "run `make weights` for the tapped model");
    let mut shares = Vec::new();
    for tap in ["_blocks.1", "_blocks.15"] {
        let objective = format!("channel:{tap}");
        let output = classviz(&[
            "--model",
            model.to_str().unwrap(),
            "--objective",
            &objective,
            "--channels",
            "0-3",
            "--preset",
            "natural",
            "--iters",
            "128",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        let mean =
            (0..4).map(|k| high_frequency_share(&out.join(format!("{tap}_c{k}.png")))).sum::<f64>()
                / 4.0;
        shares.push(mean);
    }
    eprintln!("high-frequency share: early tap {:.3}, late tap {:.3}", shares[0], shares[1]);
    assert!(shares[0] > 1.3 * shares[1], "early {} vs late {}", shares[0], shares[1]);
}

#[test]
fn diversity_makes_facets_less_alike_and_each_stays_top1() {
    let model = common::root().join("weights/efficientnet_lite0_taps.pt");
    let mut similarity = Vec::new();
    for weight in ["0", "10"] {
        let out = scratch(&format!("units-facets-{weight}"));
        let output = classviz(&[
            "--model",
            model.to_str().unwrap(),
            "--class",
            "100",
            "--facets",
            "4",
            "--diversity",
            weight,
            "--iters",
            "40",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        let lines = json_lines(&output);
        let facets: Vec<_> = lines.iter().filter(|l| l.get("facet").is_some()).collect();
        assert_eq!(facets.len(), 4);
        for line in &facets {
            assert_eq!(line["top5"][0]["class"], 100, "W {weight}: {line}");
        }
        let summary = lines.iter().find(|l| l.get("similarity").is_some()).unwrap();
        assert_eq!(summary["facets"], 4);
        assert_eq!(summary["scores"].as_array().unwrap().len(), 4);
        similarity.push(summary["similarity"].as_f64().unwrap());
        let names = listing(&out);
        for j in 0..4 {
            assert!(names.contains(&format!("100_black_swan_f{j}.png")), "{names:?}");
        }
    }
    eprintln!(
        "mean pairwise Gram similarity: diversity 0 {:.3}, diversity 10 {:.3}",
        similarity[0], similarity[1]
    );
    assert!(similarity[1] < similarity[0] - 0.1, "{similarity:?}");
}

#[test]
fn info_lists_the_taps() {
    let output = common::classviz_raw(&[
        "info",
        "--model",
        test_model("detector.pt").to_str().unwrap(),
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let info: serde_json::Value = serde_json::from_str(common::stdout(&output).trim()).unwrap();
    assert_eq!(info["taps"][0]["name"], "detect");
    assert_eq!(info["taps"][0]["shape"], serde_json::json!([3, 16, 16]));
}

#[test]
fn bad_unit_requests_fail_in_one_line() {
    let out = scratch("units-bad");
    let tapped = test_model("detector.pt");
    let plain = test_model("linear.pt");
    for (model, args, code, needle) in [
        (&tapped, vec!["--objective", "channel:nope:1"], 1, "unknown tap nope; "),
        (
            &tapped,
            vec!["--objective", "channel:detect:7"],
            1,
            "7 is out of range for a channel of tap detect (3 channels): 0–2",
        ),
        (&tapped, vec!["--objective", "channel:detect", "--channels", "0-9"], 1, "out of range"),
        (&plain, vec!["--objective", "channel:x:0"], 1, "has no taps: export one with"),
        (&tapped, vec!["--objective", "channel:detect"], 2, "needs a channel"),
        (
            &tapped,
            vec!["--objective", "channel:detect:0", "--class", "1"],
            2,
            "shows a unit, not a class",
        ),
        (
            &tapped,
            vec!["--objective", "channel:detect:0", "--channels", "1"],
            2,
            "names its channel already",
        ),
        (&tapped, vec!["--objective", "channel:"], 2, "names no tap"),
        (&tapped, vec!["--class", "1", "--facets", "0"], 2, "must be at least 1"),
        (&tapped, vec!["--class", "1", "--facets", "1"], 2, "give 2 or more"),
        (&tapped, vec!["--class", "1", "--facets", "99"], 2, "more than 16"),
        (&plain, vec!["--class", "1", "--facets", "2"], 1, "has no taps: export one with"),
        (
            &tapped,
            vec!["--class", "1", "--facets", "2", "--diversity-tap", "zz"],
            1,
            "unknown tap zz",
        ),
        (
            &tapped,
            vec!["--class", "1", "--channels", "1"],
            2,
            "needs a channel or neuron --objective",
        ),
    ] {
        let mut all = vec!["--model", model.to_str().unwrap(), "--out", out.to_str().unwrap()];
        all.extend_from_slice(&args);
        let output = classviz(&all);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {message}");
        assert!(message.contains(needle), "{args:?}: expected {needle:?} in {message}");
        assert_eq!(message.trim_end().lines().count(), 1, "{args:?}: {message}");
        assert!(listing(&out).iter().all(|n| !n.ends_with(".png")), "{args:?}");
    }
}
