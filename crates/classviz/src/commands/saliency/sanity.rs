//! `saliency --sanity`: the cascading randomisation test (Adebayo et al.
//! 2018). Each method's map on the trained model against the same method's
//! map on each variant with its top blocks re-initialised, by Spearman's ρ
//! and SSIM.

use anyhow::{bail, Result};
use tch::Tensor;

use super::plan::SaliencyPlan;
use super::subject::Subject;
use classviz_core::attribution::sanity::{self as statistics, FLAG_SPEARMAN};
use classviz_core::attribution::{self, Attribution};
use classviz_engine::model::Model;
use classviz_records::exit::Status;
use classviz_records::reports::SanityResult;
use classviz_records::sidecar::{beside_sidecar, Randomised, EXPORTER};

use crate::commands::load::load_model;
use crate::flags::ModelArgs;
use crate::printer::Printer;

/// Every method's map of every photo on the trained model, then on each
/// randomised variant the sidecar lists, compared.
pub fn check(
    plan: &SaliencyPlan,
    model: &Model,
    model_args: &ModelArgs,
    printer: &Printer,
) -> Result<Status> {
    let variants =
        model.info.sidecar.as_ref().and_then(|s| s.randomised.clone()).unwrap_or_default();
    if variants.is_empty() {
        bail!(
            "--sanity compares maps with the model's randomised variants, and {} lists none: export them with `{EXPORTER} MODEL --randomise` (with the same --taps)",
            model.info.path.display()
        );
    }
    let subjects: Vec<(Subject, Vec<Tensor>)> = plan
        .photos
        .iter()
        .map(|path| {
            let subject = Subject::of(model, plan, path)?;
            let attributor = subject.attributor(model, plan)?;
            let maps = plan
                .attributions
                .iter()
                .map(|&a| Subject::map(&attributor, plan, a))
                .collect::<Result<Vec<_>>>()?;
            Ok((subject, maps))
        })
        .collect::<Result<_>>()?;
    for variant in &variants {
        let path = beside_sidecar(&model.info.path, &variant.file);
        let randomised = load_model(&ModelArgs { model: Some(path), ..model_args.clone() })?;
        for (subject, maps) in &subjects {
            let attributor = subject.attributor(&randomised, plan)?;
            for (&attribution, trained) in plan.attributions.iter().zip(maps) {
                let map = Subject::map(&attributor, plan, attribution)?;
                printer.print(&compare(subject, attribution, variant, trained, &map)?)?;
            }
        }
    }
    Ok(Status::Success)
}

/// One method's map on the trained model against the randomised variant's.
fn compare(
    subject: &Subject,
    attribution: Attribution,
    variant: &Randomised,
    trained: &Tensor,
    map: &Tensor,
) -> Result<SanityResult> {
    let (a, b) = (attribution::map_values(trained)?, attribution::map_values(map)?);
    let (width, height) =
        (subject.photo.pixels.width as usize, subject.photo.pixels.height as usize);
    let spearman = statistics::spearman(&a, &b);
    Ok(SanityResult {
        image: subject.path.display().to_string(),
        class: subject.class,
        name: subject.name.clone(),
        method: attribution.method.to_string(),
        depth: variant.depth,
        blocks: variant.blocks.clone(),
        spearman,
        ssim: statistics::ssim(&a, &b, width, height),
        unchanged: spearman >= FLAG_SPEARMAN,
    })
}
