//! The paper's gradient ascent, `x ← x + η·∇x(S_c(x) − λ‖x‖²)`, from the zero
//! image in the model's zero-centred input space, for a batch of classes at once.
//!
//! Knows nothing about files or terminals: progress is reported per step
//! through a callback, which can also stop the run.

use std::ops::ControlFlow;

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

use crate::model::{torch_error, Classifier, Objective};

/// The optimisation settings of the paper's procedure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AscentParams {
    pub iters: u32,
    /// η, the step size on the gradient.
    pub learning_rate: f64,
    /// λ, the weight of the L2 penalty ‖x‖².
    pub l2_weight: f64,
    /// What is maximised: the paper's pre-softmax score S_c by default.
    pub objective: Objective,
}

impl AscentParams {
    /// The paper's procedure on the pre-softmax score.
    pub fn new(iters: u32, learning_rate: f64, l2_weight: f64) -> AscentParams {
        AscentParams { iters, learning_rate, l2_weight, objective: Objective::Logit }
    }
}

/// What one step reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// 1-based step number.
    pub step: u32,
    /// S_c of each image *before* this step's update, in batch order.
    pub class_scores: Vec<f64>,
}

/// The callback asked the ascent to stop (Ctrl-C, SIGTERM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted")
    }
}

impl std::error::Error for Stopped {}

/// Optimise one image per entry of `classes`, all in one forward/backward per
/// step, and return them as `[N, C, H, W]` in the model's zero-centred space
/// (add the mean back with `InputSpec::denormalise`).
///
/// The objective is `Σ_i S_{c_i}(x_i) − λ‖x_i‖²`. In eval mode the images do
/// not interact, so each one gets exactly the gradient it would get alone.
/// Returns the [`Stopped`] error when `on_step` breaks.
pub fn class_models(
    model: &Classifier,
    classes: &[i64],
    params: &AscentParams,
    mut on_step: impl FnMut(&Step) -> ControlFlow<()>,
) -> Result<Tensor> {
    let count = classes.len() as i64;
    let targets = Tensor::from_slice(classes).to_device(model.device).view([count, 1]);
    let mut images = model.input.zeros(count, model.device)?;
    for step in 1..=params.iters {
        let input = images.detach().set_requires_grad(true);
        let scores = model.objective(&input, &targets, params.objective)?;
        let score_gradient =
            Tensor::f_run_backward(&[&scores.f_sum(Kind::Float)?], &[&input], false, false)
                .map_err(torch_error)?
                .remove(0);
        let class_scores = Vec::<f64>::try_from(scores.detach().to_kind(Kind::Double).view(-1))?;
        if let Some(i) = class_scores.iter().position(|s| !s.is_finite()) {
            bail!(
                "the ascent diverged: the score of class {} became {} at step {step}; try a smaller --lr",
                classes[i],
                class_scores[i]
            );
        }
        if on_step(&Step { step, class_scores }).is_break() {
            bail!(Stopped);
        }
        // ∇x(S_c − λ‖x‖²) = ∇S_c − 2λx; the penalty's gradient is exact, so it
        // needs no backward pass.
        tch::no_grad(|| -> Result<()> {
            let ascent_direction = score_gradient.f_sub(&(&images * (2.0 * params.l2_weight)))?;
            let _ = images.f_add_(&(ascent_direction * params.learning_rate))?;
            Ok(())
        })?;
    }
    let finite = images.f_isfinite()?.f_all()?.f_int64_value(&[])? != 0;
    if !finite {
        bail!("the ascent diverged: an image holds NaN or infinite values; try a smaller --lr");
    }
    Ok(images)
}
