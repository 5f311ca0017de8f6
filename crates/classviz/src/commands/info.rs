//! `classviz info`: what classviz makes of a model.

use std::ops::ControlFlow;
use std::time::Instant;

use anyhow::Result;

use crate::report;
use classviz_core::ascent::{self, AscentParams};
use classviz_engine::model::ModelRequest;
use classviz_records::exit::Status;
use classviz_records::formats::InfoReport;

/// `classviz info`.
#[derive(Debug, Clone)]
pub struct InfoRequest {
    pub model: ModelRequest,
    pub json: bool,
}

/// Forward+backward passes timed (after one warm-up).
const TIMING_RUNS: usize = 5;

/// Describe the model as classviz will use it.
pub fn run(request: &InfoRequest) -> Result<Status> {
    let model = report::with_warnings(crate::commands::load_model(&request.model)?);
    let mut times = Vec::with_capacity(TIMING_RUNS);
    let params = AscentParams::new(1, 1.0, 0.0);
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
        device: format!("{:?}", model.device()).to_lowercase(),
        dtype: format!("{:?}", info.score_kind).to_lowercase(),
        forward_backward_ms: times[times.len() / 2],
        timing_runs: TIMING_RUNS,
        taps: info.taps.clone(),
        engine: model.network.engine(),
    };
    report::print_info(&report, request.json)?;
    Ok(Status::Success)
}
