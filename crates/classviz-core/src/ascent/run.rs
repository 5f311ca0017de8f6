//! One ascent in progress: the parameterisation, the optimiser, the goal
//! and the random views, stepped once per call, and what is kept on the way
//! (frames, the alpha map, stalls).

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

use super::outcome::Ascent;
use super::settings::{Accentuation, AscentParams};
use super::stall::StallWatch;
use super::start::{noise_images, photo_images, Init};
use crate::objective::{Diversity, Goal, GoalSpec};
use crate::optim::Optimizer;
use crate::param::{Param, Parameterisation, Start};
use crate::priors::total_variation;
use crate::rng::Rng;
use crate::views::{self, apply_views, canvas_spec, central_view, draw_views, Transforms};
use classviz_engine::error::torch_error;
use classviz_engine::model::Model;
use classviz_engine::network::{Cotangent, Outputs, Pass, TapId, Weights, Wrt};
use classviz_engine::precision::Precision;

/// One step's gradient with respect to the parameters, and what goes with it.
pub(super) struct Gradient {
    /// ∂objective/∂parameters (for pixels, without the priors' gradient,
    /// which the update adds).
    parameters: Tensor,
    /// ∂objective/∂image, for the alpha map (when asked for).
    image: Option<Tensor>,
    /// Each image's objective, averaged over its views: `[N]`.
    scores: Tensor,
}

/// An ascent in progress.
pub(super) struct Run<'a> {
    model: &'a Model,
    params: &'a AscentParams,
    targets: Vec<i64>,
    param: Box<dyn Parameterisation>,
    optimizer: Box<dyn Optimizer>,
    goal: Goal,
    /// The goal's weights when they do not depend on the outputs.
    fixed: Option<Weights>,
    precision: Precision,
    rng: Rng,
    start: Tensor,
    watch: StallWatch,
    alpha: Option<Tensor>,
    frames: Vec<(u32, Tensor)>,
    /// Pixel-space accentuation: the starting images and W per pixel value.
    pixel_anchor: Option<(Tensor, f64)>,
    /// Accentuation at a tap: the starting images and the model's tap.
    tap_anchor: Option<(Tensor, TapId)>,
}

impl<'a> Run<'a> {
    pub(super) fn start(
        model: &'a Model,
        targets: &[i64],
        params: &'a AscentParams,
    ) -> Result<Run<'a>> {
        let style = &params.style;
        let device = model.device();
        let count = targets.len() as i64;
        tch::manual_seed(params.seed as i64);
        let canvas = canvas_spec(model.input(), style.transforms.canvas);
        let photo = match &params.init {
            Some(Init::Photo(photo)) => Some(photo_images(photo, &canvas, count, device)?),
            _ => None,
        };
        let start = match (&photo, params.start()) {
            (Some(images), _) => Start::Images(images.shallow_clone()),
            (None, Some(Init::Noise(sigma))) if style.param.param == Param::Pixel => {
                Start::Images(noise_images(&canvas, &params.row_seeds(targets), sigma, device)?)
            }
            _ => Start::Own,
        };
        let param =
            style.param.build(count, &canvas, params.magnitude.as_deref(), start, device)?;
        let optimizer = style.optimizer.start(param.tensor())?;
        let goal = goal(model, targets, params, photo.is_some())?;
        let fixed =
            if goal.is_linear() { Some(goal.weights(&zero_outputs(model, &goal)?)?) } else { None };
        let (pixel_anchor, tap_anchor) = match (&params.accentuate, photo) {
            (Some(Accentuation { tap: None, weight }), Some(images)) => {
                // W × the mean squared difference over each image's pixels.
                let per_image = (canvas.channels * canvas.height * canvas.width) as f64;
                (Some((images, *weight / per_image)), None)
            }
            (Some(Accentuation { tap: Some(tap), .. }), Some(images)) => {
                (None, Some((images, tap.id)))
            }
            _ => (None, None),
        };
        Ok(Run {
            model,
            params,
            targets: targets.to_vec(),
            start: detached_copy(param.tensor())?,
            watch: StallWatch::new(count, device)?,
            precision: params.precision.resolve(device, count),
            rng: Rng::new(params.seed),
            param,
            optimizer,
            goal,
            fixed,
            alpha: None,
            frames: Vec::new(),
            pixel_anchor,
            tap_anchor,
        })
    }

    /// Whether the gradient at the network's input is the parameters'
    /// gradient as it is: pixels seen as they are, with no autograd prior.
    fn direct(&self) -> bool {
        let style = &self.params.style;
        self.param.is_pixels() && style.transforms.is_identity() && style.priors.tv == 0.0
    }

    pub(super) fn gradient(&mut self, step: u32) -> Result<Gradient> {
        let transforms = &self.params.style.transforms;
        let images = self.param.images()?;
        let strength = self.params.style.schedule.strength(step, self.params.iters);
        let drawn = draw_views(transforms, self.model.input(), strength, &mut self.rng);
        let seen = apply_views(&images, transforms, &drawn, self.model.input())?;
        self.refresh_anchor(&drawn)?;
        let weights_of = |outputs: &Outputs| self.goal.weights(outputs);
        let cotangent = match &self.fixed {
            Some(weights) => Cotangent::Fixed(weights),
            None => Cotangent::Of(&weights_of),
        };
        let pass =
            Pass { taps: &self.goal.taps, cotangent, wrt: Wrt::Input, precision: self.precision };
        let (outputs, at_input) = self.model.network.vjp(&seen.f_detach()?, pass)?;
        let per_row = self.goal.per_row(&outputs)?;
        let views = i64::from(transforms.views.max(1));
        let scores = if views > 1 { views::mean_over_views(&per_row, views)? } else { per_row };
        if self.direct() {
            let image = self.params.alpha.then(|| at_input.shallow_clone());
            return Ok(Gradient { parameters: at_input, image, scores });
        }
        let (parameters, image) = self.chain(&images, &seen, &at_input)?;
        Ok(Gradient { parameters, image, scores })
    }

    /// Accentuation at a tap compares the image's features with the photo's
    /// seen through the same views (without the views' noise), so that the
    /// two are aligned whatever the transforms.
    fn refresh_anchor(&mut self, drawn: &[views::View]) -> Result<()> {
        let Some((photo, tap)) = &self.tap_anchor else { return Ok(()) };
        let transforms = &self.params.style.transforms;
        // Views that are not random show the photo the same way every step.
        if !transforms.random() && self.goal.has_anchor_reference() {
            return Ok(());
        }
        let still = Transforms { view_noise: 0.0, ..transforms.clone() };
        let seen = apply_views(photo, &still, drawn, self.model.input())?;
        let reference = self.model.forward(&seen, &[*tap])?.taps.remove(0);
        self.goal.set_anchor_reference(reference)
    }

    /// Carry the gradient at the views back to the parameters through autograd,
    /// with the priors on the images (their gradient, and TV's through autograd).
    fn chain(
        &self,
        images: &Tensor,
        seen: &Tensor,
        at_input: &Tensor,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let style = &self.params.style;
        let mut objective = seen.f_mul(at_input)?.f_sum(Kind::Float)?;
        // Pixels take the priors' gradient on the update (`update`).
        if !self.param.is_pixels() && self.has_image_priors() {
            let gradient = self.with_prior_gradients(images.f_zeros_like()?, images)?;
            objective =
                objective.f_add(&images.f_mul(&gradient.f_detach()?)?.f_sum(Kind::Float)?)?;
        }
        if style.priors.tv > 0.0 {
            objective =
                objective.f_sub(&total_variation(images)?.f_mul_scalar(style.priors.tv)?)?;
        }
        let wants_image = self.params.alpha && !self.param.is_pixels();
        let mut inputs = vec![self.param.tensor()];
        if wants_image {
            inputs.push(images);
        }
        let mut gradients =
            Tensor::f_run_backward(&[&objective], &inputs, false, false).map_err(torch_error)?;
        let parameters = gradients.remove(0);
        let image = match gradients.pop() {
            Some(image) => Some(image),
            None => self.params.alpha.then(|| parameters.shallow_clone()),
        };
        Ok((parameters, image))
    }

    /// Whether a prior acts on the images themselves: the L2 penalty, or
    /// accentuation in pixel space.
    fn has_image_priors(&self) -> bool {
        self.params.l2_weight > 0.0 || self.pixel_anchor.is_some()
    }

    /// `gradient` plus the exact gradients of the priors on `images`: of the
    /// L2 penalty −λ‖x‖², −2λx, and of the photo anchor −W‖x − x₀‖²,
    /// −2W(x − x₀). Pixels take them on the update; other parameterisations
    /// carry them back through autograd.
    fn with_prior_gradients(&self, gradient: Tensor, images: &Tensor) -> Result<Tensor> {
        let mut direction = gradient;
        if self.params.l2_weight > 0.0 {
            direction = direction.f_sub(&images.f_mul_scalar(2.0 * self.params.l2_weight)?)?;
        }
        if let Some((photo, weight)) = &self.pixel_anchor {
            direction = direction.f_sub(&images.f_sub(photo)?.f_mul_scalar(2.0 * weight)?)?;
        }
        Ok(direction)
    }

    /// The first step's gradient must be finite: a model whose gradient is
    /// not finite at the start image (a norm or a square root of the input
    /// there) cannot climb from it.
    pub(super) fn check_start(&self, gradient: &Gradient) -> Result<()> {
        if gradient.parameters.f_isfinite()?.f_all()?.f_int64_value(&[])? == 0 {
            let start =
                self.params.init.as_ref().map_or("its own start".to_string(), |i| i.to_string());
            bail!(
                "the model's input gradient is not finite at the ascent's start ({start}): a norm or a square root of the input there; start elsewhere, e.g. --init noise:{}",
                super::start::OFF_ZERO_NOISE
            );
        }
        Ok(())
    }

    /// Copy the scores to the host; a NaN or infinity is an error (it stays
    /// so once it appears, so a sparse check still catches it, at most
    /// `check_every − 1` steps late).
    pub(super) fn checked_scores(&self, gradient: &Gradient, step: u32) -> Result<Vec<f64>> {
        let scores =
            Vec::<f64>::try_from(gradient.scores.f_detach()?.f_to_kind(Kind::Double)?.f_view(-1)?)?;
        if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
            let when = if self.params.check_every > 1 { "by step" } else { "at step" };
            bail!(
                "the ascent diverged: the score of class {} became {} {when} {step}; try a smaller --lr",
                self.targets[i],
                scores[i]
            );
        }
        Ok(scores)
    }

    /// Step the parameters up the gradient; blur and clip pixels as asked;
    /// keep the frame if this step's is wanted.
    pub(super) fn update(&mut self, gradient: Gradient, step: u32) -> Result<()> {
        let params = self.params;
        self.watch.observe(&gradient.parameters)?;
        if let Some(image) = &gradient.image {
            add_strength(&mut self.alpha, image)?;
        }
        tch::no_grad(|| -> Result<()> {
            let direction = if self.param.is_pixels() {
                self.with_prior_gradients(gradient.parameters, self.param.tensor())?
            } else {
                gradient.parameters
            };
            let learning_rate =
                params.style.schedule.learning_rate(params.learning_rate, step, params.iters);
            let update = self.optimizer.step(&direction, learning_rate)?;
            let _ = self.param.tensor_mut().f_add_(&update)?;
            Ok(())
        })?;
        if self.param.is_pixels() && params.style.priors.between_steps() {
            params.style.priors.apply_between_steps(self.param.tensor_mut(), step)?;
        }
        if params.keeps_frame(step) {
            let canvas = detached_copy(&tch::no_grad(|| self.param.images())?)?;
            self.frames
                .push((step, central_view(&canvas, &params.style.transforms, self.model.input())?));
        }
        Ok(())
    }

    pub(super) fn finish(self) -> Result<Ascent> {
        let transforms = &self.params.style.transforms;
        let input = self.model.input();
        let canvas = tch::no_grad(|| self.param.images())?.f_detach()?;
        ensure_finite(&canvas)?;
        let images = central_view(&canvas, transforms, input)?;
        let alpha = match self.alpha {
            Some(map) => {
                Some(central_view(&map.f_unsqueeze(1)?, transforms, input)?.f_squeeze_dim(1)?)
            }
            None => None,
        };
        let stalled =
            self.watch.stalled(&self.start, &self.param.tensor().f_detach()?, self.params.iters)?;
        let canvas = transforms.crop_box.is_some().then_some(canvas);
        Ok(Ascent { images, frames: self.frames, stalled, alpha, canvas })
    }
}

/// The goal of an ascent over `targets`: each image seen through the style's
/// views, with the facets' diversity term and the accentuation's anchor at a
/// tap when asked for.
fn goal(model: &Model, targets: &[i64], params: &AscentParams, photo: bool) -> Result<Goal> {
    let views = i64::from(params.style.transforms.views.max(1));
    // The targets repeat view by view: rows are view-major.
    let repeated: Vec<i64> = (0..views).flat_map(|_| targets.iter().copied()).collect();
    let diversity = params.facets.as_ref().map(|facets| Diversity {
        weight: facets.weight,
        count: i64::from(facets.count),
        tap: facets.tap.id,
    });
    let mut goal = Goal::new(GoalSpec {
        objective: &params.objective,
        targets: &repeated,
        views,
        probabilities: model.info.outputs_probabilities,
        diversity,
        device: model.device(),
    })?;
    if let (Some(Accentuation { weight, tap: Some(tap) }), true) = (&params.accentuate, photo) {
        goal.anchor(tap.id, *weight);
    }
    Ok(goal)
}

/// Zero outputs of the shapes the goal's pass returns, for a linear goal's
/// weights (which do not depend on the outputs' values).
fn zero_outputs(model: &Model, goal: &Goal) -> Result<Outputs> {
    let device = model.device();
    let rows = goal.rows();
    let classes = model.info.labels.len() as i64;
    let scores = Tensor::f_zeros([rows, classes], (Kind::Float, device))?;
    let taps = goal
        .taps
        .iter()
        .map(|&tap| {
            let [c, h, w] = model.info.tap_info(tap).grid_shape()?;
            Ok(Tensor::f_zeros([rows, c, h, w], (Kind::Float, device))?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Outputs { scores, taps })
}

/// Add |image gradient| summed over channels to the running alpha map.
fn add_strength(total: &mut Option<Tensor>, image_gradient: &Tensor) -> Result<()> {
    let strength = image_gradient.f_abs()?.f_sum_dim_intlist([1].as_slice(), false, Kind::Float)?;
    *total = Some(match total.take() {
        Some(total) => total.f_add(&strength)?,
        None => strength,
    });
    Ok(())
}

/// A copy of `tensor`, outside autograd, with its own storage and the same layout.
fn detached_copy(tensor: &Tensor) -> Result<Tensor> {
    let mut copy = tensor.f_detach()?.f_zeros_like()?;
    tch::no_grad(|| copy.f_copy_(tensor))?;
    Ok(copy)
}

fn ensure_finite(images: &Tensor) -> Result<()> {
    if images.f_isfinite()?.f_all()?.f_int64_value(&[])? == 0 {
        bail!("the ascent diverged: an image holds NaN or infinite values; try a smaller --lr");
    }
    Ok(())
}
