//! The paper's gradient ascent, `x ← x + η·∇x(S_c(x) − λ‖x‖²)`, from the zero
//! image in the model's zero-centred input space, for a batch of classes at once.
//!
//! Knows nothing about files or terminals: progress is reported per step
//! through a callback, which can also stop the run.

use std::fmt;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use crate::model::{torch_error, Classifier};
use crate::natural::{self, Adam, Param, Parameterisation, Rng, Style};
use crate::objective::{self, Objective};
use crate::precision::{self, Precision};

/// A class whose score gradient was exactly zero on this many consecutive
/// final steps (or on every step of a shorter run) has stalled.
pub const STALL_STEPS: u32 = 10;

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
    /// The natural magnitude spectrum MaCo needs (`weights/maco_spectrum.py`).
    pub magnitude: PathBuf,
    /// Several images per target, kept apart by a diversity penalty.
    pub facets: Option<Facets>,
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
    pub tap: String,
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
            magnitude: natural::default_magnitude(),
            facets: None,
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
        self.init.or(self.facets.as_ref().map(|_| Init::Noise(FACET_NOISE)))
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

/// `--init`: the starting point of the ascent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// The zero image in the model's zero-centred space, i.e. the mean image (the paper).
    Zero,
    /// Gaussian noise of this σ in the model's zero-centred space, seeded per
    /// class so that a class starts alike in any batch.
    Noise(f64),
}

impl FromStr for Init {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("zero") {
            return Ok(Init::Zero);
        }
        let sigma = text
            .strip_prefix("noise:")
            .ok_or_else(|| format!("'{text}' is not zero or noise:σ (e.g. noise:0.01)"))?;
        match sigma.trim().parse::<f64>() {
            Ok(sigma) if sigma.is_finite() && sigma > 0.0 => Ok(Init::Noise(sigma)),
            _ => Err(format!("noise σ '{sigma}' must be a finite number greater than 0")),
        }
    }
}

impl fmt::Display for Init {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Init::Zero => write!(f, "zero"),
            Init::Noise(sigma) => write!(f, "noise:{sigma}"),
        }
    }
}

/// The result of an ascent: final images, the kept frames (step, images), and
/// which images stalled.
pub struct Ascent {
    /// `[N, C, H, W]` in the model's space; H × W is the canvas (the input
    /// size unless `--canvas` enlarges it).
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

/// What one step reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// 1-based step number.
    pub step: u32,
    /// S_c of each image *before* this step's update, in batch order; only on
    /// the steps that copy scores to the host (`AscentParams::checks`).
    pub class_scores: Option<Vec<f64>>,
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

/// As [`class_models`], also returning the frames `params.frame_every` asks
/// for and which images stalled.
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

/// On checking steps, stop on a non-finite score; report the step; honour a
/// stop request. Other steps touch nothing on the device.
fn checked_step(
    classes: &[i64],
    step: u32,
    scores: &Tensor,
    params: &AscentParams,
    on_step: &mut impl FnMut(&Step) -> ControlFlow<()>,
) -> Result<()> {
    let class_scores = if params.checks(step) {
        let scores = Vec::<f64>::try_from(scores.f_detach()?.f_to_kind(Kind::Double)?.f_view(-1)?)?;
        // A NaN or infinity stays so once it appears, so a sparse check still
        // catches it, at most `check_every − 1` steps late.
        if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
            let when = if params.check_every > 1 { "by step" } else { "at step" };
            bail!(
                "the ascent diverged: the score of class {} became {} {when} {step}; try a smaller --lr",
                classes[i],
                scores[i]
            );
        }
        Some(scores)
    } else {
        None
    };
    if on_step(&Step { step, class_scores }).is_break() {
        bail!(Stopped);
    }
    Ok(())
}

/// The target classes as a `[N, 1]` index tensor on `device`.
fn targets(classes: &[i64], device: Device) -> Result<Tensor> {
    Ok(Tensor::f_from_slice(classes)?.f_to_device(device)?.f_view([classes.len() as i64, 1])?)
}

/// The starting images: zeros, or noise seeded per row (`seeds`).
fn initial_images(model: &Classifier, seeds: &[u64], init: Init) -> Result<Tensor> {
    let count = seeds.len() as i64;
    match init {
        Init::Zero => model.input.zeros(count, model.device),
        Init::Noise(sigma) => {
            // Drawn on the CPU, row by row, so that the start does not
            // depend on the device or on the rest of the batch.
            let mut rows = Vec::with_capacity(seeds.len());
            for &seed in seeds {
                tch::manual_seed(seed as i64);
                rows.push(Tensor::f_randn(model.input.batch_shape(1), (Kind::Float, Device::Cpu))?);
            }
            let noise = Tensor::f_cat(&rows, 0)?.f_mul_scalar(sigma)?;
            let start = model.input.zeros(count, model.device)?;
            Ok(start.f_add(&noise.f_to_device(model.device)?)?)
        }
    }
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

/// The paper's procedure: pixels, plain gradient ascent, analytic L2 gradient.
fn paper(
    model: &Classifier,
    classes: &[i64],
    params: &AscentParams,
    mut on_step: impl FnMut(&Step) -> ControlFlow<()>,
) -> Result<Ascent> {
    let mut frames = Vec::new();
    let targets = targets(classes, model.device)?;
    let seeds = params.row_seeds(classes);
    let start = initial_images(model, &seeds, params.start().unwrap_or(Init::Zero))?;
    let mut images = detached_copy(&start)?;
    let mut watch = StallWatch::new(classes.len() as i64, model.device)?;
    let mut alpha = AlphaMap::new(params.alpha);
    for step in 1..=params.iters {
        let input = images.f_detach()?.f_set_requires_grad(true)?;
        let (scores, total) = objective_of(model, &input, &targets, params, 1)?;
        let score_gradient = Tensor::f_run_backward(&[&total], &[&input], false, false)
            .map_err(torch_error)?
            .remove(0);
        checked_step(classes, step, &scores, params, &mut on_step)?;
        watch.observe(&score_gradient)?;
        alpha.add(&score_gradient)?;
        // ∇x(S_c − λ‖x‖²) = ∇S_c − 2λx; the penalty's gradient is exact, so it
        // needs no backward pass.
        tch::no_grad(|| -> Result<()> {
            let penalty = images.f_mul_scalar(2.0 * params.l2_weight)?;
            let ascent_direction = score_gradient.f_sub(&penalty)?;
            let _ = images.f_add_(&ascent_direction.f_mul_scalar(params.learning_rate)?)?;
            Ok(())
        })?;
        if params.keeps_frame(step) {
            frames.push((step, detached_copy(&images)?));
        }
    }
    ensure_finite(&images)?;
    let stalled = watch.stalled(&start, &images, params.iters)?;
    Ok(Ascent { images, frames, stalled, alpha: alpha.total, canvas: None })
}

/// The per-row objective `[K·N]` for images seen through `views` views, and
/// the total to ascend: their sum divided by the views, less the facets'
/// diversity penalty.
fn objective_of(
    model: &Classifier,
    x: &Tensor,
    targets: &Tensor,
    params: &AscentParams,
    views: i64,
) -> Result<(Tensor, Tensor)> {
    let tap = params.facets.as_ref().map(|f| f.tap.as_str());
    let batch = x.size()[0] / views;
    let (scores, activations) = precision::run(params.precision, model.device, batch, || {
        objective::scores(model, x, &params.objective, targets, tap)
    })?;
    let mut total = scores.f_sum(Kind::Float)?;
    if views > 1 {
        total = total.f_div_scalar(views as f64)?;
    }
    if let (Some(facets), Some(activations)) = (&params.facets, activations) {
        if facets.weight != 0.0 {
            let per_view = activations.size()[0] / views;
            let mut similarity = Tensor::f_zeros([], (Kind::Float, model.device))?;
            for view in 0..views {
                let rows = activations.f_narrow(0, view * per_view, per_view)?;
                let groups = objective::gram_similarity(&rows, i64::from(facets.count))?;
                similarity = similarity.f_add(&groups.f_sum(Kind::Float)?)?;
            }
            total = total.f_sub(&similarity.f_mul_scalar(facets.weight / views as f64)?)?;
        }
    }
    Ok((scores, total))
}

/// The running sum of |∂objective/∂image| over channels, when asked for.
struct AlphaMap {
    wanted: bool,
    total: Option<Tensor>,
}

impl AlphaMap {
    fn new(wanted: bool) -> AlphaMap {
        AlphaMap { wanted, total: None }
    }

    fn add(&mut self, image_gradient: &Tensor) -> Result<()> {
        if !self.wanted {
            return Ok(());
        }
        let strength =
            image_gradient.f_abs()?.f_sum_dim_intlist([1].as_slice(), false, Kind::Float)?;
        self.total = Some(match self.total.take() {
            Some(total) => total.f_add(&strength)?,
            None => strength,
        });
        Ok(())
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
    let count = classes.len() as i64;
    let views = i64::from(style.views.max(1));
    // Each image is seen through `views` random views per step: the targets
    // repeat view by view, and the objective is the mean over views.
    let repeated: Vec<i64> = (0..views).flat_map(|_| classes.iter().copied()).collect();
    let targets = targets(&repeated, model.device)?;
    let magnitude = natural::magnitude_for(style, &params.magnitude)?;
    let mut parameters =
        Parameterisation::new(style, count, &model.input, magnitude.as_ref(), model.device)?;
    if let (Param::Pixel, Some(init)) = (style.param, params.start()) {
        let start = initial_images(model, &params.row_seeds(classes), init)?;
        tch::no_grad(|| parameters.tensor.f_copy_(&start))?;
    }
    let start = detached_copy(&parameters.tensor)?;
    let mut adam = match style.optimizer {
        natural::Optimizer::Adam => Some(Adam::new(&parameters.tensor)?),
        natural::Optimizer::Sga => None,
    };
    let mut watch = StallWatch::new(count, model.device)?;
    let mut alpha = AlphaMap::new(params.alpha);
    let mut frames = Vec::new();
    for step in 1..=params.iters {
        let images = parameters.images()?;
        let drawn = natural::draw_views(style, &model.input, &mut rng);
        let seen = natural::apply_views(&images, style, &drawn, &model.input)?;
        let (scores, mut objective) = objective_of(model, &seen, &targets, params, views)?;
        if params.l2_weight > 0.0 {
            let penalty = images.f_square()?.f_sum(Kind::Float)?.f_mul_scalar(params.l2_weight)?;
            objective = objective.f_sub(&penalty)?;
        }
        if style.tv > 0.0 {
            objective =
                objective.f_sub(&natural::total_variation(&images)?.f_mul_scalar(style.tv)?)?;
        }
        let wants_image_gradient = params.alpha && parameters.kind() != Param::Pixel;
        let inputs: Vec<&Tensor> = if wants_image_gradient {
            vec![&parameters.tensor, &images]
        } else {
            vec![&parameters.tensor]
        };
        let mut gradients =
            Tensor::f_run_backward(&[&objective], &inputs, false, false).map_err(torch_error)?;
        let gradient = gradients.remove(0);
        alpha.add(gradients.first().unwrap_or(&gradient))?;
        let per_class =
            scores.f_view([views, count])?.f_mean_dim([0].as_slice(), false, Kind::Float)?;
        checked_step(classes, step, &per_class, params, &mut on_step)?;
        watch.observe(&gradient)?;
        tch::no_grad(|| -> Result<()> {
            let update = match adam.as_mut() {
                Some(adam) => adam.step(&gradient, params.learning_rate)?,
                None => gradient.f_mul_scalar(params.learning_rate)?,
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
            let canvas = tch::no_grad(|| parameters.images())?.f_detach()?;
            frames.push((step, natural::central_view(&canvas, style, &model.input)?));
        }
    }
    let canvas = tch::no_grad(|| parameters.images())?.f_detach()?;
    ensure_finite(&canvas)?;
    let images = natural::central_view(&canvas, style, &model.input)?;
    let alpha = match alpha.total {
        Some(map) => Some(
            natural::central_view(&map.f_unsqueeze(1)?, style, &model.input)?.f_squeeze_dim(1)?,
        ),
        None => None,
    };
    let stalled = watch.stalled(&start, &parameters.tensor.f_detach()?, params.iters)?;
    let canvas = style.crop_box.is_some().then_some(canvas);
    Ok(Ascent { images, frames, stalled, alpha, canvas })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_parses() {
        assert_eq!("zero".parse(), Ok(Init::Zero));
        assert_eq!(" noise:0.01".parse(), Ok(Init::Noise(0.01)));
        for bad in ["noise", "noise:", "noise:-1", "noise:nan", "noise:0", "gauss:1", ""] {
            assert!(bad.parse::<Init>().is_err(), "{bad}");
        }
        assert_eq!(Init::Noise(0.5).to_string(), "noise:0.5");
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
