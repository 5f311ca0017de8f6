//! The paper's gradient ascent, `x ← x + η·∇x(S_c(x) − λ‖x‖²)`, from the zero
//! image in the model's zero-centred input space, for a batch of classes at once.
//!
//! Knows nothing about files or terminals: progress is reported per step
//! through a callback, which can also stop the run.

use std::ops::ControlFlow;

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

use crate::model::{torch_error, Classifier, Objective};
use crate::natural::{self, Adam, Param, Parameterisation, Rng, Style};

/// The optimisation settings: the paper's procedure, and what goes beyond it.
#[derive(Debug, Clone, PartialEq)]
pub struct AscentParams {
    pub iters: u32,
    /// η, the step size on the gradient.
    pub learning_rate: f64,
    /// λ, the weight of the L2 penalty ‖x‖².
    pub l2_weight: f64,
    /// What is maximised: the paper's pre-softmax score S_c by default.
    pub objective: Objective,
    /// Parameterisation, transforms, priors, optimiser; `Style::simonyan()` is the paper.
    pub style: Style,
    /// Seeds the random transforms and the Fourier initialisation.
    pub seed: u64,
    /// Keep a copy of the images every this many steps (and at the end).
    pub frame_every: Option<u32>,
}

impl AscentParams {
    /// The paper's procedure on the pre-softmax score.
    pub fn new(iters: u32, learning_rate: f64, l2_weight: f64) -> AscentParams {
        AscentParams {
            iters,
            learning_rate,
            l2_weight,
            objective: Objective::Logit,
            style: Style::simonyan(),
            seed: 0,
            frame_every: None,
        }
    }

    /// Whether `step` is one whose images are kept as a frame.
    pub fn keeps_frame(&self, step: u32) -> bool {
        self.frame_every.is_some_and(|every| step.is_multiple_of(every) || step == self.iters)
    }
}

/// The result of an ascent: final images and the kept frames (step, images).
pub struct Ascent {
    pub images: Tensor,
    pub frames: Vec<(u32, Tensor)>,
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
    on_step: impl FnMut(&Step) -> ControlFlow<()>,
) -> Result<Tensor> {
    Ok(optimise(model, classes, params, on_step)?.images)
}

/// As [`class_models`], also returning the frames `params.frame_every` asks for.
pub fn optimise(
    model: &Classifier,
    classes: &[i64],
    params: &AscentParams,
    on_step: impl FnMut(&Step) -> ControlFlow<()>,
) -> Result<Ascent> {
    if params.style.is_plain() {
        paper(model, classes, params, on_step)
    } else {
        styled(model, classes, params, on_step)
    }
}

/// Stop on a non-finite score; report the step; honour a stop request.
fn checked_step(
    classes: &[i64],
    step: u32,
    scores: &Tensor,
    on_step: &mut impl FnMut(&Step) -> ControlFlow<()>,
) -> Result<()> {
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
    Ok(())
}

/// The batch size and the target classes as a `[N, 1]` index tensor on `device`.
fn targets(classes: &[i64], device: tch::Device) -> (i64, Tensor) {
    let count = classes.len() as i64;
    (count, Tensor::from_slice(classes).to_device(device).view([count, 1]))
}

/// The paper's procedure: pixels, plain gradient ascent, analytic L2 gradient.
fn paper(
    model: &Classifier,
    classes: &[i64],
    params: &AscentParams,
    mut on_step: impl FnMut(&Step) -> ControlFlow<()>,
) -> Result<Ascent> {
    let mut frames = Vec::new();
    let (count, targets) = targets(classes, model.device);
    let mut images = model.input.zeros(count, model.device)?;
    for step in 1..=params.iters {
        let input = images.detach().set_requires_grad(true);
        let scores = model.objective(&input, &targets, params.objective)?;
        let score_gradient =
            Tensor::f_run_backward(&[&scores.f_sum(Kind::Float)?], &[&input], false, false)
                .map_err(torch_error)?
                .remove(0);
        checked_step(classes, step, &scores, &mut on_step)?;
        // ∇x(S_c − λ‖x‖²) = ∇S_c − 2λx; the penalty's gradient is exact, so it
        // needs no backward pass.
        tch::no_grad(|| -> Result<()> {
            let ascent_direction = score_gradient.f_sub(&(&images * (2.0 * params.l2_weight)))?;
            let _ = images.f_add_(&(ascent_direction * params.learning_rate))?;
            Ok(())
        })?;
        if params.keeps_frame(step) {
            frames.push((step, images.detach().copy()));
        }
    }
    ensure_finite(&images)?;
    Ok(Ascent { images, frames })
}

fn ensure_finite(images: &Tensor) -> Result<()> {
    if images.f_isfinite()?.f_all()?.f_int64_value(&[])? == 0 {
        bail!("the ascent diverged: an image holds NaN or infinite values; try a smaller --lr");
    }
    Ok(())
}

/// Everything beyond the paper: any parameterisation, random transforms
/// before each forward pass, TV and L2 priors by autograd, blur and clipping
/// between steps, plain ascent or Adam.
fn styled(
    model: &Classifier,
    classes: &[i64],
    params: &AscentParams,
    mut on_step: impl FnMut(&Step) -> ControlFlow<()>,
) -> Result<Ascent> {
    let style = &params.style;
    natural::validate(style)?;
    tch::manual_seed(params.seed as i64);
    let mut rng = Rng::new(params.seed);
    let (count, targets) = targets(classes, model.device);
    let mut parameters = Parameterisation::new(style.param, count, &model.input, model.device)?;
    let mut adam =
        (style.optimizer == natural::Optimizer::Adam).then(|| Adam::new(&parameters.tensor));
    let mut frames = Vec::new();
    for step in 1..=params.iters {
        let images = parameters.images()?;
        let seen = natural::random_transform(&images, style, &mut rng)?;
        let scores = model.objective(&seen, &targets, params.objective)?;
        let mut objective = scores.f_sum(Kind::Float)?;
        if params.l2_weight > 0.0 {
            objective -= images.square().sum(Kind::Float) * params.l2_weight;
        }
        if style.tv > 0.0 {
            objective -= natural::total_variation(&images)? * style.tv;
        }
        let gradient = Tensor::f_run_backward(&[&objective], &[&parameters.tensor], false, false)
            .map_err(torch_error)?
            .remove(0);
        checked_step(classes, step, &scores, &mut on_step)?;
        tch::no_grad(|| -> Result<()> {
            let update = match adam.as_mut() {
                Some(adam) => adam.step(&gradient, params.learning_rate),
                None => gradient * params.learning_rate,
            };
            let _ = parameters.tensor.f_add_(&update)?;
            if parameters.kind() == Param::Pixel {
                if style.blur_every > 0 && step % style.blur_every == 0 {
                    let blurred = natural::gaussian_blur(&parameters.tensor, style.blur_sigma)?;
                    parameters.tensor.f_copy_(&blurred)?;
                }
                if style.clip_percentile > 0.0 {
                    let clipped =
                        natural::clip_low_norm(&parameters.tensor, style.clip_percentile)?;
                    parameters.tensor.f_copy_(&clipped)?;
                }
            }
            Ok(())
        })?;
        if params.keeps_frame(step) {
            frames.push((step, tch::no_grad(|| parameters.images())?.detach()));
        }
    }
    let images = tch::no_grad(|| parameters.images())?.detach();
    ensure_finite(&images)?;
    Ok(Ascent { images, frames })
}
