//! What makes a run's images: the model, its input and every resolved
//! setting, recorded in each image and compared on resume.

use anyhow::Result;
use classviz_core::ascent::AscentParams;
use classviz_engine::model::ModelInfo;
use classviz_records::provenance::{Provenance, ProvenanceInput};
use tch::Device;

/// `cpu`, `cuda:0`: as `--device` takes it.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(index) => format!("cuda:{index}"),
        _ => "cpu".to_string(),
    }
}

/// What makes this run's images: the model, its input, and every resolved setting.
pub fn provenance(ascent: &AscentParams, model: &ModelInfo, stretch: bool) -> Result<Provenance> {
    let input = &model.input;
    let facets = ascent
        .facets
        .as_ref()
        .map(|f| serde_json::json!({"count": f.count, "diversity": f.weight, "tap": f.tap.name}));
    let accentuate = ascent.accentuate.as_ref().map(
        |a| serde_json::json!({"weight": a.weight, "tap": a.tap.as_ref().map(|t| t.name.clone())}),
    );
    Ok(Provenance {
        model: model.digest.clone(),
        input: ProvenanceInput {
            shape: vec![input.channels, input.height, input.width],
            mean: input.mean.clone(),
            std: input.std.clone(),
        },
        objective: ascent.objective.to_string(),
        iters: ascent.iters,
        lr: ascent.learning_rate,
        l2: ascent.l2_weight,
        seed: ascent.seed,
        init: ascent.init.as_ref().map(ToString::to_string),
        style: serde_json::to_value(&ascent.style)?,
        facets,
        accentuate,
        stretch,
    })
}
