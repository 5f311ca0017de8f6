//! A model file is what its sidecar says it is: `weights/export.py` records the
//! file's SHA-256 and classviz refuses a file that does not match, because
//! PyTorch's archive reader loads many damaged files without a word (of 12
//! damaged copies of the Lite0 archive, six loaded and ran with exit 0).

mod common;

use std::path::{Path, PathBuf};

use common::{scratch, stderr, test_model};

/// A copy of the linear test model and its sidecar in `dir`, with the
/// sidecar's text passed through `edit`.
fn copy_linear(dir: &Path, edit: impl Fn(serde_json::Value) -> serde_json::Value) -> PathBuf {
    let model = dir.join("linear.pt");
    std::fs::copy(test_model("linear.pt"), &model).unwrap();
    let text = std::fs::read_to_string(test_model("linear.json")).unwrap();
    let sidecar = edit(serde_json::from_str(&text).unwrap());
    std::fs::write(dir.join("linear.json"), sidecar.to_string()).unwrap();
    model
}

fn run(model: &Path, out: &Path) -> std::process::Output {
    common::classviz_on(model, out, &["--class", "1", "--iters", "3"])
}

#[test]
fn the_exported_sidecars_record_the_files_hash_and_it_matches() {
    let out = scratch("integrity-good");
    let output = run(&test_model("linear.pt"), &out);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!stderr(&output).contains("sha256"), "{}", stderr(&output));
    let sidecar = std::fs::read_to_string(common::root().join("weights/efficientnet_lite0.json"))
        .expect("run `make weights`");
    let sidecar: serde_json::Value = serde_json::from_str(&sidecar).unwrap();
    let recorded = sidecar["sha256"].as_str().expect("export.py records sha256");
    assert_eq!(recorded.len(), 64);
}

#[test]
fn a_damaged_model_is_refused_with_both_hashes() {
    let dir = scratch("integrity-damaged");
    let model = copy_linear(&dir, |s| s);
    let recorded = {
        let text = std::fs::read_to_string(dir.join("linear.json")).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        value["sha256"].as_str().unwrap().to_string()
    };
    let bytes = std::fs::read(&model).unwrap();
    // Seeded damage: single bit flips through the file, then truncations.
    let mut state: u64 = 20261202;
    let mut damaged = Vec::new();
    for _ in 0..8 {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let at = (state >> 33) as usize % bytes.len();
        let mut copy = bytes.clone();
        copy[at] ^= 1 << ((state >> 29) % 8);
        damaged.push(copy);
    }
    for fraction in [0.25, 0.5, 0.9, 0.999] {
        damaged.push(bytes[..(bytes.len() as f64 * fraction) as usize].to_vec());
    }
    let out = dir.join("out");
    for (k, copy) in damaged.iter().enumerate() {
        std::fs::write(&model, copy).unwrap();
        let output = run(&model, &out);
        common::assert_refused(&output, 1, "does not match its sidecar", Some(&out));
        let message = stderr(&output);
        assert!(message.contains(&recorded), "copy {k}: {message}");
        assert!(message.contains("export it again"), "copy {k}: {message}");
    }
}

#[test]
fn a_sidecar_without_a_hash_loads_with_a_one_line_note() {
    let dir = scratch("integrity-unrecorded");
    let model = copy_linear(&dir, |mut s| {
        s.as_object_mut().unwrap().remove("sha256");
        s
    });
    let out = dir.join("out");
    let output = run(&model, &out);
    assert!(output.status.success(), "{}", stderr(&output));
    let notes: Vec<String> =
        stderr(&output).lines().filter(|l| l.contains("sha256")).map(String::from).collect();
    assert_eq!(notes.len(), 1, "{}", stderr(&output));
    assert!(notes[0].starts_with("classviz: warning: ") && notes[0].contains("records no sha256"));
    assert!(out.join("1_one.png").exists());
}

#[test]
fn a_malformed_hash_is_a_sidecar_error() {
    let dir = scratch("integrity-malformed");
    let model = copy_linear(&dir, |mut s| {
        s["sha256"] = serde_json::json!("not-a-hash");
        s
    });
    let out = dir.join("out");
    common::assert_refused(&run(&model, &out), 1, "sha256 must be 64 hex digits", Some(&out));
}
