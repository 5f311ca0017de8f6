//! What an ascent gives back: each step's report, and how it ended (the
//! images and what was kept on the way, or stopped).

use anyhow::{bail, Result};
use tch::Tensor;

/// The result of an ascent: final images, the kept frames (step, images), and
/// which images stalled.
pub struct Ascent {
    /// `[N, C, H, W]` in the model's space at the input size.
    pub images: Tensor,
    pub frames: Vec<(u32, Tensor)>,
    /// Per image: its gradient was exactly zero on the last [`STALL_STEPS`](super::stall::STALL_STEPS)
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
