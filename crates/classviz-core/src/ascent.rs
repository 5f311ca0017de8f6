//! The one ascent loop. A [`Parameterisation`] makes images, random views show
//! them to the network, the network's vector-Jacobian product gives the
//! gradient of the objective at the views, autograd carries it back through
//! the views and the parameterisation (with the priors), and an [`Optimizer`]
//! steps. The paper's procedure, `x ← x + η·∇x(S_c(x) − λ‖x‖²)` from the zero
//! image, is the pixel parameterisation with plain gradient ascent.
//!
//! Knows nothing about files or terminals: progress is reported per step
//! through a callback, which can also stop the run (a return value).

use std::fmt;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use crate::objective::{Diversity, Goal, GoalSpec, Objective};
use crate::optim::Optimizer;
use crate::param::{Param, Parameterisation, Start};
use crate::presets::Style;
use crate::priors::total_variation;
use crate::rng::Rng;
use crate::spectrum::Magnitude;
use crate::views::{self, apply_views, canvas_spec, central_view, draw_views, Transforms};
use classviz_engine::error::torch_error;
use classviz_engine::input::Normalise;
use classviz_engine::model::Model;
use classviz_engine::model::TapRef;
use classviz_engine::network::{Cotangent, Outputs, Pass, TapId, Weights, Wrt};
use classviz_engine::precision::Precision;
use classviz_engine::tensors;
use classviz_records::input::InputSpec;
use classviz_records::pixels::Pixels;

/// A class whose score gradient was exactly zero on this many consecutive
/// final steps (or on every step of a shorter run) has stalled.
pub const STALL_STEPS: u32 = 10;

/// The optimisation settings, resolved once (by the plan, or
/// [`AscentParams::new`] for the paper's procedure).
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
    /// Where the ascent starts; `None` is the parameterisation's own start
    /// (the zero image for pixels, as in the paper).
    pub init: Option<Init>,
    /// Seeds the random transforms and the random starting points.
    pub seed: u64,
    /// Keep a copy of the images every this many steps (and at the end).
    pub frame_every: Option<u32>,
    /// The network's arithmetic: bf16 autocast or fp32 (the image stays fp32).
    pub precision: Precision,
    /// Copy the scores to the host (a device sync) to check for divergence and
    /// report progress every this many steps; 1 checks every step.
    pub check_every: u32,
    /// Accumulate |∂objective/∂image| over the steps (MaCo's attribution,
    /// written as the alpha channel of `<stem>_alpha.png`).
    pub alpha: bool,
    /// The natural magnitude spectrum MaCo needs, read once.
    pub magnitude: Option<Arc<Magnitude>>,
    /// Several images per target, kept apart by a diversity penalty.
    pub facets: Option<Facets>,
    /// Keep the image near its starting photo (`--accentuate`).
    pub accentuate: Option<Accentuation>,
}

/// `--facets N --diversity W`: N images per target, optimised together; the
/// objective loses W × the mean pairwise cosine similarity of their Gram
/// matrices at `tap` (Lucid's diversity term; Nguyen et al. 2016 show why
/// several images: one optimum hides a class's other facets). A batch holds
/// each target's facets as consecutive rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Facets {
    pub count: u32,
    pub weight: f64,
    pub tap: TapRef,
}

/// Facets of pixel images start from noise of this σ (seeded per facet): from
/// one shared start they would stay identical.
pub const FACET_NOISE: f64 = 0.01;
/// Seeds of a target's facets are this far apart.
const FACET_SEED_STRIDE: u64 = 1_000_003;

impl AscentParams {
    /// The paper's procedure on the pre-softmax score.
    pub fn new(iters: u32, learning_rate: f64, l2_weight: f64) -> AscentParams {
        AscentParams {
            iters,
            learning_rate,
            l2_weight,
            objective: Objective::Logit,
            style: Style::simonyan(),
            init: None,
            seed: 0,
            frame_every: None,
            precision: Precision::Fp32,
            check_every: 1,
            alpha: false,
            magnitude: None,
            facets: None,
            accentuate: None,
        }
    }

    /// The start of each row's random noise: the seed, the row's target and its facet.
    fn row_seeds(&self, indices: &[i64]) -> Vec<u64> {
        let count = self.facets.as_ref().map_or(1, |f| u64::from(f.count.max(1)));
        indices
            .iter()
            .enumerate()
            .map(|(row, &index)| {
                let facet = row as u64 % count;
                self.seed.wrapping_add(index as u64).wrapping_add(facet * FACET_SEED_STRIDE)
            })
            .collect()
    }

    /// The start, if not the parameterisation's own: `--init`, or for pixel
    /// facets a little noise.
    fn start(&self) -> Option<Init> {
        self.init.clone().or(self.facets.as_ref().map(|_| Init::Noise(FACET_NOISE)))
    }

    /// Whether `step` copies the scores to the host: every `check_every`-th
    /// step, and the last.
    pub fn checks(&self, step: u32) -> bool {
        step.is_multiple_of(self.check_every.max(1)) || step == self.iters
    }

    /// Whether `step` is one whose images are kept as a frame.
    pub fn keeps_frame(&self, step: u32) -> bool {
        self.frame_every.is_some_and(|every| step.is_multiple_of(every) || step == self.iters)
    }
}

/// `--init` as written: the starting point of the ascent.
#[derive(Debug, Clone, PartialEq)]
pub enum InitSpec {
    /// The zero image in the model's zero-centred space, i.e. the mean image (the paper).
    Zero,
    /// Gaussian noise of this σ in the model's zero-centred space, seeded per
    /// class so that a class starts alike in any batch.
    Noise(f64),
    /// A photo (`image:PATH`): feature accentuation starts from it.
    Image(PathBuf),
}

impl FromStr for InitSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("zero") {
            return Ok(InitSpec::Zero);
        }
        if let Some(path) = text.strip_prefix("image:") {
            if path.trim().is_empty() {
                return Err("image: needs a path (image:PHOTO.jpg)".into());
            }
            return Ok(InitSpec::Image(PathBuf::from(path)));
        }
        let sigma = text.strip_prefix("noise:").ok_or_else(|| {
            format!("'{text}' is not zero, noise:σ (e.g. noise:0.01) or image:PATH")
        })?;
        match sigma.trim().parse::<f64>() {
            Ok(sigma) if sigma.is_finite() && sigma > 0.0 => Ok(InitSpec::Noise(sigma)),
            _ => Err(format!("noise σ '{sigma}' must be a finite number greater than 0")),
        }
    }
}

impl fmt::Display for InitSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitSpec::Zero => write!(f, "zero"),
            InitSpec::Noise(sigma) => write!(f, "noise:{sigma}"),
            InitSpec::Image(path) => write!(f, "image:{}", path.display()),
        }
    }
}

/// The starting point, resolved: a photo is read and fitted once.
#[derive(Debug, Clone, PartialEq)]
pub enum Init {
    Zero,
    Noise(f64),
    /// Pixels start at the photo; Fourier at its spectrum; MaCo at its phase.
    Photo(Arc<StartPhoto>),
}

/// A photo to start from, fitted to the canvas (8-bit, host memory).
#[derive(Debug, Clone, PartialEq)]
pub struct StartPhoto {
    pub path: PathBuf,
    pub pixels: Pixels,
}

impl fmt::Display for Init {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Init::Zero => write!(f, "zero"),
            Init::Noise(sigma) => write!(f, "noise:{sigma}"),
            Init::Photo(photo) => write!(f, "image:{}", photo.path.display()),
        }
    }
}

/// `--accentuate W [--tap NAME]`: feature accentuation (Hamblin et al. 2024)
/// keeps the image near its starting photo by W × the mean squared difference
/// of f(x) and f(x₀), with f the activations at `tap` (the photo seen through
/// the same random views as the image), or the image itself (pixel space)
/// without one. A mean, so that W means the same at any tap and input size.
#[derive(Debug, Clone, PartialEq)]
pub struct Accentuation {
    pub weight: f64,
    pub tap: Option<TapRef>,
}

/// The result of an ascent: final images, the kept frames (step, images), and
/// which images stalled.
pub struct Ascent {
    /// `[N, C, H, W]` in the model's space at the input size.
    pub images: Tensor,
    pub frames: Vec<(u32, Tensor)>,
    /// Per image: its gradient was exactly zero on the last [`STALL_STEPS`]
    /// steps, or it ended exactly where it started.
    pub stalled: Vec<bool>,
    /// With `params.alpha`: Σ over steps of |∂objective/∂image| summed over
    /// channels, `[N, H, W]` (of `images`).
    pub alpha: Option<Tensor>,
    /// With MaCo crops: the whole canvas, of which `images` is the central view.
    pub canvas: Option<Tensor>,
}

/// How an ascent ended.
pub enum Ended {
    Finished(Ascent),
    /// The callback asked to stop (Ctrl-C, SIGTERM); nothing is kept.
    Stopped,
}

impl Ended {
    /// The ascent, or an error if it was stopped (for callers that never stop it).
    pub fn finished(self) -> Result<Ascent> {
        match self {
            Ended::Finished(ascent) => Ok(ascent),
            Ended::Stopped => bail!("the ascent was stopped"),
        }
    }
}

/// What one step reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// 1-based step number.
    pub step: u32,
    /// The objective of each image *before* this step's update, in batch
    /// order; only on the steps that copy scores to the host (`AscentParams::checks`).
    pub class_scores: Option<Vec<f64>>,
}

/// Optimise one image per entry of `targets`, all in one forward/backward per
/// step, and return them as `[N, C, H, W]` in the model's zero-centred space
/// (add the mean back with `InputSpec::denormalise`).
///
/// The objective is `Σ_i S_{c_i}(x_i) − λ‖x_i‖²`. In eval mode the images do
/// not interact, so each one gets exactly the gradient it would get alone.
pub fn optimise(
    model: &Model,
    targets: &[i64],
    params: &AscentParams,
    mut on_step: impl FnMut(&Step) -> ControlFlow<()>,
) -> Result<Ended> {
    let mut run = Run::start(model, targets, params)?;
    for step in 1..=params.iters {
        let gradient = run.gradient()?;
        let class_scores =
            if params.checks(step) { Some(run.checked_scores(&gradient, step)?) } else { None };
        if on_step(&Step { step, class_scores }).is_break() {
            return Ok(Ended::Stopped);
        }
        run.update(gradient, step)?;
    }
    Ok(Ended::Finished(run.finish()?))
}

/// As [`optimise`], for callers that never stop: the images.
pub fn class_models(
    model: &Model,
    targets: &[i64],
    params: &AscentParams,
    on_step: impl FnMut(&Step) -> ControlFlow<()>,
) -> Result<Tensor> {
    optimise(model, targets, params, on_step)?.finished().map(|ascent| ascent.images)
}

/// One step's gradient with respect to the parameters, and what goes with it.
struct Gradient {
    /// ∂objective/∂parameters (without the pixels' analytic L2 term).
    parameters: Tensor,
    /// ∂objective/∂image, for the alpha map (when asked for).
    image: Option<Tensor>,
    /// Each image's objective, averaged over its views: `[N]`.
    scores: Tensor,
}

/// An ascent in progress.
struct Run<'a> {
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
    fn start(model: &'a Model, targets: &[i64], params: &'a AscentParams) -> Result<Run<'a>> {
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

    fn gradient(&mut self) -> Result<Gradient> {
        let transforms = &self.params.style.transforms;
        let images = self.param.images()?;
        let drawn = draw_views(transforms, self.model.input(), &mut self.rng);
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
    /// with the priors that need it (TV; L2 and the photo anchor on non-pixel images).
    fn chain(
        &self,
        images: &Tensor,
        seen: &Tensor,
        at_input: &Tensor,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let style = &self.params.style;
        let mut objective = seen.f_mul(at_input)?.f_sum(Kind::Float)?;
        if !self.param.is_pixels() {
            if self.params.l2_weight > 0.0 {
                let penalty =
                    images.f_square()?.f_sum(Kind::Float)?.f_mul_scalar(self.params.l2_weight)?;
                objective = objective.f_sub(&penalty)?;
            }
            if let Some((photo, weight)) = &self.pixel_anchor {
                let distance = images.f_sub(photo)?.f_square()?.f_sum(Kind::Float)?;
                objective = objective.f_sub(&distance.f_mul_scalar(*weight)?)?;
            }
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

    /// Copy the scores to the host; a NaN or infinity is an error (it stays
    /// so once it appears, so a sparse check still catches it, at most
    /// `check_every − 1` steps late).
    fn checked_scores(&self, gradient: &Gradient, step: u32) -> Result<Vec<f64>> {
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
    fn update(&mut self, gradient: Gradient, step: u32) -> Result<()> {
        let params = self.params;
        self.watch.observe(&gradient.parameters)?;
        if let Some(image) = &gradient.image {
            add_strength(&mut self.alpha, image)?;
        }
        tch::no_grad(|| -> Result<()> {
            let direction = self.pixel_priors(gradient.parameters)?;
            let update = self.optimizer.step(&direction, params.learning_rate)?;
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

    /// The ascent direction for pixels: the gradient less the exact gradients
    /// of the L2 penalty, 2λx (no backward pass needed), and of the photo
    /// anchor, 2W(x − x₀). Other parameterisations have them from autograd.
    fn pixel_priors(&self, gradient: Tensor) -> Result<Tensor> {
        if !self.param.is_pixels() {
            return Ok(gradient);
        }
        let pixels = self.param.tensor();
        let mut direction = gradient;
        if self.params.l2_weight > 0.0 {
            // ∇x(S_c − λ‖x‖²) = ∇S_c − 2λx.
            direction = direction.f_sub(&pixels.f_mul_scalar(2.0 * self.params.l2_weight)?)?;
        }
        if let Some((photo, weight)) = &self.pixel_anchor {
            direction = direction.f_sub(&pixels.f_sub(photo)?.f_mul_scalar(2.0 * weight)?)?;
        }
        Ok(direction)
    }

    fn finish(self) -> Result<Ascent> {
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

/// The start photo as `count` images in the model's space over the canvas.
fn photo_images(
    photo: &StartPhoto,
    canvas: &InputSpec,
    count: i64,
    device: Device,
) -> Result<Tensor> {
    let x01 = tensors::pixels_to_tensor(&photo.pixels, device)?;
    let one = canvas.normalise(&x01)?;
    Ok(one.f_expand([count, -1, -1, -1], false)?.f_contiguous()?)
}

/// The starting images: Gaussian noise of σ, seeded per row (`seeds`), drawn
/// on the CPU row by row so that the start does not depend on the device or on
/// the rest of the batch.
fn noise_images(canvas: &InputSpec, seeds: &[u64], sigma: f64, device: Device) -> Result<Tensor> {
    let mut rows = Vec::with_capacity(seeds.len());
    for &seed in seeds {
        tch::manual_seed(seed as i64);
        rows.push(Tensor::f_randn(canvas.batch_shape(1), (Kind::Float, Device::Cpu))?);
    }
    let noise = Tensor::f_cat(&rows, 0)?.f_mul_scalar(sigma)?;
    let start = canvas.zeros(seeds.len() as i64, device)?;
    Ok(start.f_add(&noise.f_to_device(device)?)?)
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

/// Per image, how many consecutive steps ended with an exactly zero gradient.
struct StallWatch {
    streak: Tensor,
}

impl StallWatch {
    fn new(count: i64, device: Device) -> Result<StallWatch> {
        Ok(StallWatch { streak: Tensor::f_zeros([count], (Kind::Int64, device))? })
    }

    /// Count this step's zero gradients; stays on the device (no sync).
    fn observe(&mut self, gradient: &Tensor) -> Result<()> {
        let count = gradient.size()[0];
        let zero =
            gradient.f_reshape([count, -1])?.f_abs()?.f_amax([1].as_slice(), false)?.f_eq(0)?;
        self.streak = self.streak.f_add_scalar(1)?.f_mul(&zero)?;
        Ok(())
    }

    /// Which images stalled, given where they started and ended.
    fn stalled(&self, start: &Tensor, end: &Tensor, iters: u32) -> Result<Vec<bool>> {
        let count = start.size()[0];
        let unmoved = end
            .f_sub(start)?
            .f_reshape([count, -1])?
            .f_abs()?
            .f_amax([1].as_slice(), false)?
            .f_eq(0)?;
        let flat = self.streak.f_ge(i64::from(STALL_STEPS.min(iters)))?.f_logical_or(&unmoved)?;
        Ok(Vec::<bool>::try_from(flat.f_to_device(Device::Cpu)?)?)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_parses() {
        assert_eq!("zero".parse(), Ok(InitSpec::Zero));
        assert_eq!(" noise:0.01".parse(), Ok(InitSpec::Noise(0.01)));
        assert_eq!("image:cat.jpg".parse(), Ok(InitSpec::Image("cat.jpg".into())));
        for bad in ["noise", "noise:", "noise:-1", "noise:nan", "noise:0", "gauss:1", "", "image:"]
        {
            assert!(bad.parse::<InitSpec>().is_err(), "{bad}");
        }
        assert_eq!(InitSpec::Noise(0.5).to_string(), "noise:0.5");
    }

    #[test]
    fn zero_gradients_count_towards_a_stall() {
        let mut watch = StallWatch::new(2, Device::Cpu).unwrap();
        let gradient = Tensor::from_slice(&[0.0f32, 0.0, 1.0, 0.0]).view([2, 2]);
        for _ in 0..STALL_STEPS {
            watch.observe(&gradient).unwrap();
        }
        let start = Tensor::zeros([2, 2], (Kind::Float, Device::Cpu));
        let end = Tensor::from_slice(&[0.5f32, 0.0, 1.0, 0.0]).view([2, 2]);
        assert_eq!(watch.stalled(&start, &end, 100).unwrap(), vec![true, false]);
        let fresh = StallWatch::new(2, Device::Cpu).unwrap();
        assert_eq!(fresh.stalled(&start, &start, 100).unwrap(), vec![true, true], "unmoved");
    }
}
