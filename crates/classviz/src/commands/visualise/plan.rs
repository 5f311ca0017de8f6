//! The one place where a run's flags meet the model and the device: the
//! preset becomes a style scaled to the input, the objective's taps are
//! resolved to ids, the targets become jobs, the batch, views and check
//! cadence are chosen, the magnitude spectrum and a start photo are read, and
//! what the run writes is fixed, once (its names in `names`, its provenance
//! in `provenance`). Nothing downstream resolves or re-validates, and no clap
//! struct is kept. A conflict between flags is a [`UsageError`] (exit 2).

use anyhow::Result;
use classviz_core::ascent::AscentParams;
use classviz_core::objective::Objective;
use classviz_core::presets::PresetName;
use classviz_engine::model::ModelInfo;
use classviz_records::classes::{self, Labels};
use classviz_records::layout::Layout;
use classviz_records::provenance::Provenance;
use classviz_records::shard::Shard;
use classviz_records::summary::RunParams;
use tch::Device;

use super::provenance::{device_name, provenance};
use super::settings::{resolve_ascent, start_note};
use crate::flags::run::{OutputArgs, RunArgs, TargetArgs};

/// Default `--batch` on the CPU (docs/benchmarks.md measures it).
pub const DEFAULT_CPU_BATCH: usize = 4;
/// Default `--batch` on CUDA (docs/gpu.md measures it).
pub const DEFAULT_CUDA_BATCH: usize = 256;

/// What the run writes beside its images, and how.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    /// Redo images already in the folder, whatever made them.
    pub force: bool,
    /// Also write the contact sheet of the run's images.
    pub grid: bool,
    /// Also write or refresh the gallery page.
    pub gallery: bool,
    /// Stretch contrast for display instead of clamping.
    pub stretch: bool,
    /// Write every kept frame as a PNG (`--save-every`).
    pub frames: bool,
    /// Write an animated GIF of the kept frames.
    pub gif: bool,
}

impl Output {
    fn of(args: &OutputArgs) -> Output {
        Output {
            force: args.force,
            grid: args.grid,
            gallery: args.gallery,
            stretch: args.stretch,
            frames: args.save_every.is_some(),
            gif: args.gif,
        }
    }
}

/// A visualisation run, resolved against the model and the device.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The ascent's settings: the only copy.
    pub ascent: AscentParams,
    /// The preset the settings started from, for reports.
    pub preset: PresetName,
    /// Every target of the run, in order (all shards').
    pub targets: Vec<i64>,
    pub shard: Shard,
    /// Images per forward/backward pass: whole targets (all their facets).
    pub batch: usize,
    /// Pad the last batch to the others' shape (CUDA: no new kernels or graphs).
    pub same_shape: bool,
    pub labels: Labels,
    /// Where every file goes, and its name.
    pub layout: Layout,
    pub output: Output,
    /// Recorded with every summary line.
    pub summary: RunParams,
    /// The model file, as recorded in each PNG.
    pub model: String,
    /// What makes this run's images: recorded in each, compared on resume.
    pub provenance: Provenance,
    /// What the user should know of how the plan was resolved, one line each.
    pub notes: Vec<String>,
}

impl Plan {
    /// Resolve `args` for a model described by `model`, running on `device`.
    pub fn resolve(args: &RunArgs, model: &ModelInfo, device: Device) -> Result<Plan> {
        let shard = match args.scale_out.shard()? {
            Some(spec) => spec.resolve_from_env()?,
            None => Shard::ALL,
        };
        let preset = args.preset.preset;
        let ascent = resolve_ascent(args, preset, model, device)?;
        let targets = resolve_targets(&args.target, &ascent.objective, model)?;
        let facets = ascent.facets.as_ref().map_or(1, |f| f.count as usize);
        let default_batch = if device.is_cuda() { DEFAULT_CUDA_BATCH } else { DEFAULT_CPU_BATCH };
        // A target's facets are optimised together, so a batch holds whole targets.
        let batch = (args.scale_out.batch.unwrap_or(default_batch) / facets).max(1) * facets;
        let model_path = model.path.display().to_string();
        let summary = RunParams {
            model: model_path.clone(),
            lr: ascent.learning_rate,
            l2: ascent.l2_weight,
            seed: ascent.seed,
            device: device_name(device),
            batch,
        };
        let provenance = provenance(&ascent, model, args.output.stretch)?;
        let notes = start_note(args, &ascent, model).into_iter().collect();
        Ok(Plan {
            same_shape: device.is_cuda() && facets == 1,
            preset,
            ascent,
            targets,
            shard,
            batch,
            labels: model.labels.clone(),
            layout: Layout::new(&args.output.out),
            output: Output::of(&args.output),
            summary,
            model: model_path,
            provenance,
            notes,
        })
    }
}

/// The targets: classes for a class objective; the channels of the tap for
/// channel and neuron objectives; the tap itself (one image) for a layer.
fn resolve_targets(
    args: &TargetArgs,
    objective: &Objective,
    model: &ModelInfo,
) -> Result<Vec<i64>> {
    let Some(tap) = objective.tap() else {
        return args.classes.selection().resolve(&model.labels);
    };
    if let Objective::Layer(_) = objective {
        return Ok(vec![0]);
    }
    let channels = model.tap_info(tap.id).grid_shape()?[0] as usize;
    let what = format!("channel of tap {} ({channels} channels)", tap.name);
    // The flags make sure a channel or neuron objective names its channels.
    classes::resolve_indices(&args.channel_list().unwrap_or_default(), channels, &what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::{parse_args, Parsed};
    use classviz_core::views::TRANSFORM_REFERENCE_SIDE;
    use classviz_engine::probe::ShapeSource;
    use classviz_records::classes::ClassSelection;
    use classviz_records::input::InputSpec;
    use classviz_records::sidecar::Tap;

    /// A model as the plan sees it, without a network: `side`-pixel RGB input,
    /// ten classes, two taps.
    fn model(side: i64) -> ModelInfo {
        ModelInfo {
            path: "m.pt".into(),
            input: InputSpec {
                channels: 3,
                height: side,
                width: side,
                mean: vec![0.5; 3],
                std: vec![0.5; 3],
            },
            shape_source: ShapeSource::Sidecar,
            labels: Labels::indices(10),
            labels_source: None,
            output: None,
            outputs_probabilities: false,
            score_kind: tch::Kind::Float,
            parameter_count: 0,
            taps: vec![Tap::grid("early", [8, 16, 16]), Tap::grid("late", [32, 4, 4])],
            sidecar: None,
            digest: "0".repeat(64),
        }
    }

    fn request(args: &[&str]) -> RunArgs {
        let argv = std::iter::once("classviz").chain(args.iter().copied());
        match parse_args(argv).unwrap() {
            Parsed::Run(cli) => cli.run,
            Parsed::Exit(_) => panic!("printed help"),
        }
    }

    fn resolve(args: &[&str], side: i64, device: Device) -> Result<Plan> {
        Plan::resolve(&request(args), &model(side), device)
    }

    #[test]
    fn the_default_plan_is_the_papers_procedure() {
        let plan = resolve(&["--class", "1,3"], 224, Device::Cpu).unwrap();
        assert_eq!(
            plan.ascent,
            AscentParams {
                precision: classviz_engine::precision::Precision::Auto,
                ..AscentParams::new(150, 1.0, 1e-4)
            }
        );
        assert!(plan.ascent.style.is_plain());
        assert_eq!(
            (plan.targets.clone(), plan.batch, plan.same_shape),
            (vec![1, 3], DEFAULT_CPU_BATCH, false)
        );
        assert_eq!(plan.name(super::super::Job { index: 3, facet: None }).stem(), "3");
    }

    #[test]
    fn preset_transforms_scale_with_the_input_and_flags_win() {
        let natural = resolve(&["--class", "1", "--preset", "natural"], 28, Device::Cpu).unwrap();
        let transforms = &natural.ascent.style.transforms;
        assert_eq!(
            (transforms.pad, transforms.jitter),
            (2, 2),
            "16 px at {TRANSFORM_REFERENCE_SIDE} → 2 at 28"
        );
        let flags =
            resolve(&["--class", "1", "--preset", "natural", "--pad", "5"], 28, Device::Cpu)
                .unwrap();
        assert_eq!(flags.ascent.style.transforms.pad, 5);
        assert_eq!((natural.ascent.iters, natural.ascent.learning_rate), (256, 0.05));
    }

    #[test]
    fn cuda_gets_its_batch_views_and_check_cadence() {
        let Ok(magnitude) = crate::home::find(crate::home::DEFAULT_MAGNITUDE, "spectrum", "")
        else {
            return;
        };
        let args = ["--class", "1", "--preset", "maco", "--magnitude", magnitude.to_str().unwrap()];
        let cuda = resolve(&args, 224, Device::Cuda(0)).unwrap();
        assert_eq!(cuda.ascent.style.transforms.views, 16);
        assert_eq!(
            (cuda.batch, cuda.ascent.check_every, cuda.same_shape),
            (DEFAULT_CUDA_BATCH, super::super::settings::CUDA_CHECK_EVERY, true)
        );
        let cpu = resolve(&args, 224, Device::Cpu).unwrap();
        assert_eq!((cpu.ascent.style.transforms.views, cpu.ascent.check_every), (4, 1));
        let explicit =
            resolve(&[&args[..], &["--views", "2"]].concat(), 224, Device::Cuda(0)).unwrap();
        assert_eq!(explicit.ascent.style.transforms.views, 2);
    }

    #[test]
    fn units_and_facets_resolve_against_the_taps() {
        let units =
            resolve(&["--objective", "channel:late", "--channels", "0-3"], 224, Device::Cpu)
                .unwrap();
        assert_eq!(units.targets, vec![0, 1, 2, 3]);
        assert_eq!(units.name(super::super::Job { index: 2, facet: None }).stem(), "late_c2");
        let facets =
            resolve(&["--class", "1", "--facets", "3", "--batch", "4"], 224, Device::Cpu).unwrap();
        assert_eq!(
            facets.ascent.facets.as_ref().unwrap().tap.name,
            "late",
            "the middle tap by default"
        );
        assert_eq!(facets.batch, 3, "whole targets per batch");
        assert_eq!(facets.jobs(1).len(), 3);
        assert!(resolve(
            &["--class", "1", "--facets", "2", "--diversity-tap", "zz"],
            224,
            Device::Cpu
        )
        .is_err());
    }

    #[test]
    fn conflicts_found_in_the_plan_are_usage_errors() {
        use classviz_records::exit::{status_of, Status};
        for args in [
            &["--class", "1", "--preset", "natural", "--blur-every", "2"][..],
            &["--class", "1", "--accentuate", "1"][..],
            &["--class", "1", "--tap", "late"][..],
            &["--class", "1", "--save-every", "1", "--iters", "5000"][..],
        ] {
            let err = resolve(args, 224, Device::Cpu).unwrap_err();
            assert_eq!(status_of(&err), Status::Usage, "{args:?}: {err:#}");
        }
        let selection = request(&["--class", "1"]).target.classes.selection();
        assert_eq!(selection, ClassSelection { list: Some("1".into()), file: None });
    }
}
