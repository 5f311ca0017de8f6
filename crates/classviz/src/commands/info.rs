//! `classviz info`: what classviz makes of a model.

use std::ops::ControlFlow;
use std::time::Instant;

use anyhow::Result;

use crate::commands::load::load_model;
use crate::commands::visualise::provenance::device_name;
use crate::flags::InfoArgs;
use crate::printer::Printer;
use classviz_core::ascent::start::{Init, OFF_ZERO_NOISE};
use classviz_core::ascent::{self, AscentParams};
use classviz_records::exit::Status;
use classviz_records::reports::InfoReport;

/// Forward+backward passes timed (after one warm-up).
const TIMING_RUNS: usize = 5;

/// Describe the model as classviz will use it.
pub fn run(args: &InfoArgs) -> Result<Status> {
    let model = load_model(&args.model)?;
    let mut times = Vec::with_capacity(TIMING_RUNS);
    // The step timed is the paper's, from its start: off zero where the
    // model's gradient is not finite there.
    let mut params = AscentParams::new(1, 1.0, 0.0);
    if !model.info.gradient_finite_at_zero() {
        params.init = Some(Init::Noise(OFF_ZERO_NOISE));
    }
    for run in 0..=TIMING_RUNS {
        let started = Instant::now();
        let _ = ascent::class_models(&model, &[0], &params, |_| ControlFlow::Continue(()))?;
        if run > 0 {
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(f64::total_cmp);
    let info = &model.info;
    let input = &info.input;
    let report = InfoReport {
        model: info.path.display().to_string(),
        input_shape: vec![input.channels, input.height, input.width],
        input_source: info.shape_source.to_string(),
        classes: info.labels.len(),
        labels: info.labels_source.clone(),
        mean: input.mean.clone(),
        std: input.std.clone(),
        output: info.output.as_ref().map(ToString::to_string),
        outputs_probabilities: info.outputs_probabilities,
        parameters: info.parameter_count,
        device: device_name(model.device()),
        dtype: format!("{:?}", info.score_kind).to_lowercase(),
        forward_backward_ms: times[times.len() / 2],
        timing_runs: TIMING_RUNS,
        taps: info.taps.clone(),
        engine: model.network.engine(),
    };
    Printer::of(&args.printing).print(&report)?;
    Ok(Status::Success)
}
