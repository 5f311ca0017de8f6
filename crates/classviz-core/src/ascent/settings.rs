//! What an ascent is asked to do, resolved once (by the plan, or
//! [`AscentParams::new`] for the paper's procedure): steps, learning rate,
//! L2 weight, objective, style, start, seed, and the facets' and the
//! accentuation's settings.

use std::sync::Arc;

use super::start::Init;
use crate::objective::Objective;
use crate::presets::Style;
use crate::spectrum::Magnitude;
use classviz_engine::precision::Precision;
use classviz_engine::taps::TapRef;

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
            objective: Objective::default(),
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
    pub(super) fn row_seeds(&self, indices: &[i64]) -> Vec<u64> {
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
    pub(super) fn start(&self) -> Option<Init> {
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
