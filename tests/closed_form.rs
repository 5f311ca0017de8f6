//! The ascent against closed-form answers on a linear classifier,
//! logits = W·x + b. There ∇S_c = W_c, so x ← x + η(W_c − 2λx) converges to
//! x* = W_c / (2λ) whenever |1 − 2λη| < 1.

mod common;

use std::ops::ControlFlow;

use classviz_core::ascent::{class_models, AscentParams, Step};
use classviz_engine::model::Model;
use tch::Tensor;

/// One class alone, no progress callback.
fn ascend(model: &Model, class: i64, params: &AscentParams) -> Tensor {
    class_models(model, &[class], params, |_| ControlFlow::Continue(())).unwrap()
}

fn flat(tensor: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(tensor.to_kind(tch::Kind::Double).reshape([-1])).unwrap()
}

#[test]
fn l2_regularised_ascent_converges_to_w_over_two_lambda() {
    let model = common::linear_model();
    let weights = common::linear_weights();
    for (class, l2_weight) in [(0, 0.05), (3, 0.2), (4, 0.5)] {
        let params = AscentParams::new(300, 1.0, l2_weight);
        let image = flat(&ascend(&model, class, &params));
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
    let model = common::linear_model();
    let weights = common::linear_weights();
    let params = AscentParams::new(1, 0.5, 123.0);
    let image = flat(&ascend(&model, 2, &params));
    for (x, w) in image.iter().zip(&weights[2]) {
        assert!((x - 0.5 * w).abs() < 1e-6, "{x} vs {}", 0.5 * w);
    }
}

#[test]
fn steps_report_the_class_score_before_each_update() {
    let model = common::linear_model();
    let weights = common::linear_weights();
    let params = AscentParams::new(3, 1.0, 0.0);
    let mut scores = Vec::new();
    let _ = class_models(&model, &[1], &params, |step: &Step| {
        scores.push((step.step, step.class_scores.as_ref().unwrap()[0]));
        ControlFlow::Continue(())
    })
    .unwrap();
    // Without the penalty, S_c grows by η‖W_c‖² per step.
    let norm2: f64 = weights[1].iter().map(|w| w * w).sum();
    assert_eq!(scores.iter().map(|s| s.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    for pair in scores.windows(2) {
        let gain = pair[1].1 - pair[0].1;
        assert!((gain - norm2).abs() < 1e-3 * norm2, "gain {gain} vs ‖W_c‖² {norm2}");
    }
}

#[test]
fn a_batch_gives_each_class_its_own_closed_form_optimum() {
    let model = common::linear_model();
    let weights = common::linear_weights();
    let params = AscentParams::new(300, 1.0, 0.1);
    let classes = [4, 0, 2, 0];
    let images = class_models(&model, &classes, &params, |_| ControlFlow::Continue(())).unwrap();
    for (row, &class) in classes.iter().enumerate() {
        let image = flat(&images.get(row as i64));
        for (x, w) in image.iter().zip(&weights[class as usize]) {
            assert!(
                (x - w / 0.2).abs() < 1e-4 * (w / 0.2).abs().max(1.0),
                "row {row}: {x} vs {}",
                w / 0.2
            );
        }
    }
}

#[test]
fn a_callback_break_stops_the_ascent() {
    let model = common::linear_model();
    let params = AscentParams::new(100, 1.0, 0.1);
    let mut seen = 0;
    let ended = classviz_core::ascent::optimise(&model, &[1], &params, |step: &Step| {
        seen = step.step;
        if step.step == 5 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    assert!(
        matches!(ended, classviz_core::ascent::Ended::Stopped),
        "a stop is a return value, not an error"
    );
    assert_eq!(seen, 5);
}

#[test]
fn sparse_checks_report_scores_only_on_check_steps_and_still_catch_divergence() {
    let model = common::linear_model();
    let params = AscentParams { check_every: 4, ..AscentParams::new(10, 1.0, 0.0) };
    let mut seen = Vec::new();
    let _ = class_models(&model, &[1], &params, |step: &Step| {
        seen.push((step.step, step.class_scores.is_some()));
        ControlFlow::Continue(())
    })
    .unwrap();
    let checked: Vec<u32> = seen.iter().filter(|s| s.1).map(|s| s.0).collect();
    assert_eq!(checked, vec![4, 8, 10], "every 4th step and the last");
    assert_eq!(seen.len(), 10, "the callback still runs every step (Ctrl-C)");

    // |1 − 2λη| = 39: the iteration blows up; a sparse check catches it late but catches it.
    let diverging = AscentParams { check_every: 7, ..AscentParams::new(400, 1.0, 20.0) };
    let message = class_models(&model, &[1], &diverging, |_| ControlFlow::Continue(()))
        .unwrap_err()
        .to_string();
    assert!(message.contains("the ascent diverged") && message.contains("by step"), "{message}");
    let step: u32 =
        message.rsplit("by step ").next().unwrap().split(';').next().unwrap().parse().unwrap();
    assert_eq!(step % 7, 0, "{message}");
}
