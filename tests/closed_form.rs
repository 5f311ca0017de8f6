//! The ascent against closed-form answers on a linear classifier,
//! logits = W·x + b. There ∇S_c = W_c, so x ← x + η(W_c − 2λx) converges to
//! x* = W_c / (2λ) whenever |1 − 2λη| < 1.

mod common;

use classviz::ascent::{class_model, AscentParams};
use classviz::model::{Classifier, InputOverrides};
use tch::{Device, Tensor};

fn linear() -> Classifier {
    tch::set_num_threads(1);
    Classifier::load(&common::test_model("linear.pt"), Device::Cpu, &InputOverrides::default())
        .unwrap()
}

fn flat(tensor: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(tensor.to_kind(tch::Kind::Double).reshape([-1])).unwrap()
}

#[test]
fn l2_regularised_ascent_converges_to_w_over_two_lambda() {
    let model = linear();
    let weights = common::linear_weights();
    for (class, l2_weight) in [(0, 0.05), (3, 0.2), (4, 0.5)] {
        let params = AscentParams { iters: 300, learning_rate: 1.0, l2_weight };
        let image = flat(&class_model(&model, class, &params, |_| {}).unwrap());
        let optimum: Vec<f64> =
            weights[class as usize].iter().map(|w| w / (2.0 * l2_weight)).collect();
        let scale = optimum.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let distance = image.iter().zip(&optimum).fold(0.0f64, |m, (x, o)| m.max((x - o).abs()));
        assert!(
            distance <= 1e-4 * scale,
            "class {class}, λ {l2_weight}: max |x − W_c/2λ| = {distance} (scale {scale})"
        );
    }
}

#[test]
fn first_step_from_zero_is_the_scaled_gradient() {
    let model = linear();
    let weights = common::linear_weights();
    let params = AscentParams { iters: 1, learning_rate: 0.5, l2_weight: 123.0 };
    let image = flat(&class_model(&model, 2, &params, |_| {}).unwrap());
    for (x, w) in image.iter().zip(&weights[2]) {
        assert!((x - 0.5 * w).abs() < 1e-6, "{x} vs {}", 0.5 * w);
    }
}

#[test]
fn steps_report_the_class_score_before_each_update() {
    let model = linear();
    let weights = common::linear_weights();
    let params = AscentParams { iters: 3, learning_rate: 1.0, l2_weight: 0.0 };
    let mut scores = Vec::new();
    class_model(&model, 1, &params, |step| scores.push((step.step, step.class_score))).unwrap();
    // Without the penalty, S_c grows by η‖W_c‖² per step.
    let norm2: f64 = weights[1].iter().map(|w| w * w).sum();
    assert_eq!(scores.iter().map(|s| s.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    for pair in scores.windows(2) {
        let gain = pair[1].1 - pair[0].1;
        assert!((gain - norm2).abs() < 1e-3 * norm2, "gain {gain} vs ‖W_c‖² {norm2}");
    }
}
