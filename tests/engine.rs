//! The compiled engine (an AOTInductor package of the ascent step) behind the
//! same seam as TorchScript: the same gradients, the same end results, clear
//! refusals of packages that do not fit, and interruption that keeps every
//! finished image.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use classviz_engine::model::{DeviceChoice, Model, ModelRequest};
use classviz_engine::network::{Cotangent, EngineChoice, Pass, TapId, Weights, Wrt};
use classviz_engine::precision::Precision;
use common::{classviz, json_lines, pngs, scratch, stderr, test_model};
use tch::{Device, Kind, Tensor};

/// The largest ‖compiled − TorchScript‖ / ‖TorchScript‖ of Lite0's gradient at
/// the zero image, where the arithmetic is stable (measured 1.0e-6 at export).
const LITE0_GRADIENT_TOLERANCE: f64 = 1e-4;
/// The same on the small tapped fixture, anywhere (measured below 1e-6).
const FIXTURE_TOLERANCE: f64 = 1e-5;

fn open(path: &Path, engine: EngineChoice) -> Model {
    common::use_torch_threads();
    let request = ModelRequest {
        path: Some(path.to_path_buf()),
        device: DeviceChoice::Cpu,
        engine,
        ..ModelRequest::default()
    };
    request.load().unwrap().model
}

fn relative(a: &Tensor, b: &Tensor) -> f64 {
    f64::try_from((a - b).norm() / b.norm().clamp_min(1e-12)).unwrap()
}

/// Scores and the input's gradient of `weights` at `x` on `model`.
fn product(
    model: &Model,
    x: &Tensor,
    taps: &[TapId],
    weights: &Weights,
) -> (Tensor, Vec<Tensor>, Tensor) {
    let pass = Pass {
        taps,
        cotangent: Cotangent::Fixed(weights),
        wrt: Wrt::Input,
        precision: Precision::Fp32,
    };
    let (outputs, gradient) = model.network.vjp(x, pass).unwrap();
    (outputs.scores, outputs.taps, gradient)
}

#[test]
fn the_compiled_gradient_matches_torchscript_on_lite0() {
    let path = common::default_model();
    let (script, compiled) =
        (open(&path, EngineChoice::Torchscript), open(&path, EngineChoice::Compiled));
    assert!(compiled.network.engine().starts_with("compiled"), "{}", compiled.network.engine());
    let x = Tensor::zeros([3, 3, 224, 224], (Kind::Float, Device::Cpu));
    let scores = Tensor::zeros([3, 1000], (Kind::Float, Device::Cpu));
    for (row, class) in [1i64, 100, 963].iter().enumerate() {
        let _ = scores.get(row as i64).get(*class).fill_(1.0);
    }
    let weights = Weights { scores: Some(scores), taps: Vec::new() };
    let (s1, _, g1) = product(&script, &x, &[], &weights);
    let (s2, _, g2) = product(&compiled, &x, &[], &weights);
    let (score_error, gradient_error) = (relative(&s2, &s1), relative(&g2, &g1));
    eprintln!("lite0 at zero: scores {score_error:.2e}, gradient {gradient_error:.2e}");
    assert!(score_error < LITE0_GRADIENT_TOLERANCE && gradient_error < LITE0_GRADIENT_TOLERANCE);
}

#[test]
fn the_compiled_engine_gives_taps_and_gradients_on_a_fixture_at_any_batch() {
    let path = test_model("tiny_taps.pt");
    let (script, compiled) =
        (open(&path, EngineChoice::Torchscript), open(&path, EngineChoice::Compiled));
    tch::manual_seed(7);
    for rows in [1, 5] {
        let x = Tensor::randn([rows, 3, 16, 16], (Kind::Float, Device::Cpu));
        let weights = Weights {
            scores: Some(Tensor::randn([rows, 3], (Kind::Float, Device::Cpu))),
            taps: vec![Some(Tensor::randn([rows, 4, 16, 16], (Kind::Float, Device::Cpu)))],
        };
        let (s1, t1, g1) = product(&script, &x, &[TapId::at(0)], &weights);
        let (s2, t2, g2) = product(&compiled, &x, &[TapId::at(0)], &weights);
        for (what, error) in [
            ("scores", relative(&s2, &s1)),
            ("tap", relative(&t2[0], &t1[0])),
            ("gradient", relative(&g2, &g1)),
        ] {
            assert!(error < FIXTURE_TOLERANCE, "batch {rows}: {what} off by {error:.2e}");
        }
    }
}

#[test]
fn compiled_runs_recognise_their_classes_like_torchscript() {
    let mut scores = Vec::new();
    for engine in ["torchscript", "compiled"] {
        let out = scratch(&format!("engine-end-{engine}"));
        let output = classviz(&[
            "--class",
            "1,100,130,963",
            "--engine",
            engine,
            "--out",
            out.to_str().unwrap(),
            "--json",
        ]);
        assert!(output.status.success(), "{engine}: {}", stderr(&output));
        let lines = json_lines(&output);
        assert!(
            lines.iter().all(|l| l["top5"][0]["class"] == l["class"]),
            "{engine}: not all top-1"
        );
        let mut logits: Vec<f64> = lines.iter().map(|l| l["logit"].as_f64().unwrap()).collect();
        logits.sort_by(f64::total_cmp);
        scores.push(logits);
    }
    // Long ascents do not reproduce bit for bit across kernels: compare the
    // distributions' medians, which both engines put far above any other class.
    let median = |v: &Vec<f64>| (v[1] + v[2]) / 2.0;
    eprintln!("S_c torchscript {:?}, compiled {:?}", scores[0], scores[1]);
    assert!(median(&scores[0]) > 20.0 && median(&scores[1]) > 20.0, "{scores:?}");
}

/// A copy of the compiled fixture (model, sidecar, package) in `dir`, with the
/// sidecar's package entry edited by `edit`.
fn fixture_copy(dir: &Path, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    for name in ["tiny_taps.pt", "tiny_taps.cpu.pt2"] {
        std::fs::copy(test_model(name), dir.join(name)).unwrap();
    }
    let text = std::fs::read_to_string(test_model("tiny_taps.json")).unwrap();
    let mut sidecar: serde_json::Value = serde_json::from_str(&text).unwrap();
    sidecar["labels"] = serde_json::json!(["cat", "dog", "bird"]);
    edit(&mut sidecar);
    std::fs::write(dir.join("tiny_taps.json"), sidecar.to_string()).unwrap();
    dir.join("tiny_taps.pt")
}

fn run_engine(model: &Path, engine: &str, auto_prefers: Option<&str>) -> std::process::Output {
    let out = model.parent().unwrap().join("out");
    let mut command = Command::new(env!("CARGO_BIN_EXE_classviz"));
    command.args(["--threads", "1", "--quiet", "--model", model.to_str().unwrap(), "--class", "0"]);
    command.args(["--iters", "3", "--force", "--engine", engine, "--out", out.to_str().unwrap()]);
    if let Some(prefers) = auto_prefers {
        command.env("CLASSVIZ_AUTO_ENGINE", prefers);
    }
    command.output().unwrap()
}

/// A change to the sidecar that a test makes.
type Edit = Box<dyn Fn(&mut serde_json::Value)>;

#[test]
fn packages_that_do_not_fit_are_refused_in_one_line_or_fallen_back_from() {
    let sha_of_zeros = "0".repeat(64);
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "another-model",
            Box::new(move |s| s["compiled"][0]["model_sha256"] = sha_of_zeros.clone().into()),
            "compiled from another model file",
        ),
        (
            "damaged",
            Box::new(|s| s["compiled"][0]["sha256"] = "1".repeat(64).into()),
            "is damaged or was replaced",
        ),
        (
            "torch",
            Box::new(|s| s["compiled"][0]["torch"] = "2.10.0".into()),
            "compiled with torch 2.10.0",
        ),
        (
            "shape",
            Box::new(|s| s["compiled"][0]["input_shape"] = serde_json::json!([3, 32, 32])),
            "takes input [3, 32, 32]",
        ),
        (
            "none",
            Box::new(|s| s["compiled"] = serde_json::json!([])),
            "no package compiled for cpu",
        ),
    ];
    for (name, edit, needle) in cases {
        let dir = scratch(&format!("engine-mismatch-{name}"));
        let model = fixture_copy(&dir, edit);
        let refused = run_engine(&model, "compiled", None);
        let message = stderr(&refused);
        assert_eq!(refused.status.code(), Some(1), "{name}: {message}");
        assert!(
            message.contains("--engine compiled: ") && message.contains(needle),
            "{name}: {message}"
        );
        assert!(message.contains("weights/export.py --compile"), "{name}: says how: {message}");
        assert_eq!(message.trim_end().lines().count(), 1, "{name}: {message}");
        let fallen_back = run_engine(&model, "auto", Some("compiled"));
        assert!(fallen_back.status.success(), "{name}: {}", stderr(&fallen_back));
        let note = stderr(&fallen_back);
        if name == "none" {
            assert!(note.is_empty(), "a model without packages runs quietly: {note}");
        } else {
            assert!(
                note.contains("using TorchScript: ") && note.contains(needle),
                "{name}: {note}"
            );
        }
    }
}

#[test]
fn a_corrupt_package_is_an_error_or_a_fallback_never_a_crash() {
    let dir = scratch("engine-corrupt");
    let package = dir.join("tiny_taps.cpu.pt2");
    let model = fixture_copy(&dir, |_| {});
    let bytes = std::fs::read(&package).unwrap();
    for (name, damaged) in
        [("truncated", bytes[..bytes.len() / 3].to_vec()), ("garbage", vec![7u8; 4096])]
    {
        std::fs::write(&package, &damaged).unwrap();
        let digest = classviz_records::files::sha256_hex(&package, "package").unwrap();
        let text = std::fs::read_to_string(dir.join("tiny_taps.json")).unwrap();
        let mut sidecar: serde_json::Value = serde_json::from_str(&text).unwrap();
        // The hash matches the damaged file: only the loader can tell.
        sidecar["compiled"][0]["sha256"] = digest.into();
        std::fs::write(dir.join("tiny_taps.json"), sidecar.to_string()).unwrap();
        let refused = run_engine(&model, "compiled", None);
        let message = stderr(&refused);
        assert_eq!(refused.status.code(), Some(1), "{name}: {message}");
        assert!(message.contains("loading compiled package"), "{name}: {message}");
        assert_eq!(message.trim_end().lines().count(), 1, "{name}: {message}");
        let fallen_back = run_engine(&model, "auto", Some("compiled"));
        assert!(fallen_back.status.success(), "{name}: {}", stderr(&fallen_back));
        assert!(
            stderr(&fallen_back).contains("using TorchScript"),
            "{name}: {}",
            stderr(&fallen_back)
        );
    }
}

#[test]
fn engine_values_are_checked() {
    let output = classviz(&["--class", "1", "--engine", "tensorrt"]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("--engine") && message.contains("auto, compiled, torchscript"),
        "{message}"
    );
    let info = common::classviz_raw(&[
        "info",
        "--json",
        "--engine",
        "compiled",
        "--model",
        test_model("tiny_taps.pt").to_str().unwrap(),
    ]);
    assert!(info.status.success(), "{}", stderr(&info));
    let value: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(value["engine"], "compiled tiny_taps.cpu.pt2");
}

#[test]
fn ctrl_c_during_a_compiled_run_keeps_every_finished_image() {
    let out = scratch("engine-interrupt");
    let model = test_model("tiny_taps.pt");
    let child = Command::new(env!("CARGO_BIN_EXE_classviz"))
        .args([
            "--threads",
            "1",
            "--quiet",
            "--json",
            "--engine",
            "compiled",
            "--model",
            model.to_str().unwrap(),
        ])
        .args([
            "--out",
            out.to_str().unwrap(),
            "--class",
            "0-2,0-2",
            "--batch",
            "1",
            "--iters",
            "15000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A class takes about a second alone, and tens of seconds when this test
    // shares two cores with the other compiled tests.
    let output = common::interrupt_after(child, &out, 1, Duration::from_secs(600));
    let written = pngs(&out);
    if output.status.code() == Some(130) {
        assert!(stderr(&output).contains("interrupted:"), "{}", stderr(&output));
        assert!((1..3).contains(&written.len()), "{written:?}");
    } else {
        assert!(output.status.success(), "{}", stderr(&output));
    }
    common::assert_every_finished_image_has_its_lines(&output, &out);
}
