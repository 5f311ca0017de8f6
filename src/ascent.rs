//! The paper's gradient ascent, `x ← x + η·∇x(S_c(x) − λ‖x‖²)`, from the zero
//! image in the model's zero-centred input space.
//!
//! Knows nothing about files or terminals: progress is reported per step
//! through a callback.

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

use crate::model::{torch_error, Classifier};

/// The optimisation settings of the paper's procedure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AscentParams {
    pub iters: u32,
    /// η, the step size on the gradient.
    pub learning_rate: f64,
    /// λ, the weight of the L2 penalty ‖x‖².
    pub l2_weight: f64,
}

/// What one step reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// 1-based step number.
    pub step: u32,
    /// S_c of the image *before* this step's update.
    pub class_score: f64,
}

/// Optimise one image for `class` and return it, `[1, C, H, W]`, in the model's
/// zero-centred space (add the mean back with `InputSpec::denormalise`).
pub fn class_model(
    model: &Classifier,
    class: i64,
    params: &AscentParams,
    mut on_step: impl FnMut(Step),
) -> Result<Tensor> {
    let mut image = Tensor::zeros(model.input.batch_shape(1), (Kind::Float, model.device));
    for step in 1..=params.iters {
        let input = image.detach().set_requires_grad(true);
        let class_score = model.logits(&input)?.f_select(1, class)?.f_sum(Kind::Float)?;
        let score_gradient = Tensor::f_run_backward(&[&class_score], &[&input], false, false)
            .map_err(torch_error)?
            .remove(0);
        let score = class_score.f_double_value(&[])?;
        if !score.is_finite() {
            bail!("the ascent diverged: the class score became {score} at step {step}; try a smaller --lr");
        }
        on_step(Step { step, class_score: score });
        // ∇x(S_c − λ‖x‖²) = ∇S_c − 2λx; the penalty's gradient is exact, so it
        // needs no backward pass.
        tch::no_grad(|| -> Result<()> {
            let ascent_direction = score_gradient.f_sub(&(&image * (2.0 * params.l2_weight)))?;
            let _ = image.f_add_(&(ascent_direction * params.learning_rate))?;
            Ok(())
        })?;
    }
    let finite = image.f_isfinite()?.f_all()?.f_int64_value(&[])? != 0;
    if !finite {
        bail!("the ascent diverged: the image holds NaN or infinite values; try a smaller --lr");
    }
    Ok(image)
}
