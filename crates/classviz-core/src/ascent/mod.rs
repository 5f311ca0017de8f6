//! The one ascent loop. A [`Parameterisation`](crate::param::Parameterisation)
//! makes images, random views show them to the network, the network's
//! vector-Jacobian product gives the gradient of the objective at the views,
//! autograd carries it back through the views and the parameterisation (with
//! the priors), and an [`Optimizer`](crate::optim::Optimizer) steps. The
//! paper's procedure, `x ← x + η·∇x(S_c(x) − λ‖x‖²)` from the zero image, is
//! the pixel parameterisation with plain gradient ascent.
//!
//! Knows nothing about files or terminals: progress is reported per step
//! through a callback, which can also stop the run (a return value).
//!
//! - [`settings`]: what the ascent is asked to do;
//! - [`start`]: where it starts (`--init`);
//! - [`stall`]: how a stalled image is told;
//! - [`outcome`]: what a step reports and how an ascent ends;
//! - `run`: one ascent in progress, step by step.

pub mod outcome;
mod run;
pub mod settings;
pub mod stall;
pub mod start;

use std::ops::ControlFlow;

use anyhow::Result;
use tch::Tensor;

use classviz_engine::model::Model;
pub use outcome::{Ascent, Ended, Step};
use run::Run;
pub use settings::{Accentuation, AscentParams, Facets, FACET_NOISE};
pub use stall::STALL_STEPS;
pub use start::{Init, InitSpec, StartPhoto};

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
        let gradient = run.gradient(step)?;
        if step == 1 {
            run.check_start(&gradient)?;
        }
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
