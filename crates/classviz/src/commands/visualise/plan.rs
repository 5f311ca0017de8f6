//! The one place where a run's flags meet the model and the device: the
//! preset becomes a style scaled to the input, the objective's taps are
//! resolved to ids, the targets become jobs, the batch, views and check
//! cadence are chosen, the magnitude spectrum and a start photo are read, and
//! every image's name and provenance are fixed, once. Nothing downstream
//! resolves or re-validates. A conflict between flags is a [`UsageError`]
//! (exit 2).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use classviz_core::ascent::{Accentuation, AscentParams, Facets, Init, InitSpec, StartPhoto};
use classviz_core::objective::Objective;
use classviz_core::param::Param;
use classviz_core::presets::{Preset, Style};
use classviz_core::spectrum::Magnitude;
use classviz_core::views::{canvas_spec, scaled_pixels};
use classviz_engine::model::ModelInfo;
use classviz_records::classes::{self, Labels};
use classviz_records::exit::usage_error;
use classviz_records::formats::{PngRecord, Provenance, ProvenanceInput, RunParams};
use classviz_records::layout::{self, ImageName, Layout, Target, Unit};
use classviz_records::pixels;
use classviz_records::shard::Shard;
use tch::Device;

use crate::flags::run::{OutputArgs, RunArgs, TargetArgs};
use crate::flags::values::{ObjectiveFlag, ObjectiveKind};
use crate::home;

/// Default `--batch` on the CPU: the fastest per class in `make bench` on a
/// 2-core machine (docs/benchmarks.md).
pub const DEFAULT_CPU_BATCH: usize = 4;
/// Default `--batch` on CUDA: the fastest `--class all` on an H200 (32.3 s
/// at 256, 34.6 s at 512; bench/results/gpu-h200-2026-11-26.jsonl).
pub const DEFAULT_CUDA_BATCH: usize = 256;
/// Steps between host syncs on CUDA (divergence check and progress); the
/// CPU checks every step, where copying the scores costs nothing.
pub const CUDA_CHECK_EVERY: u32 = 25;
/// Frames in a GIF when `--save-every` does not say.
const GIF_FRAMES: u32 = 50;
/// Frames kept in memory per batch for `--gif` / `--save-every`, at most.
pub const MAX_FRAMES: u32 = 1000;

/// One image of the run: its target (a class, or a channel of the tap) and,
/// with `--facets`, which facet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    pub index: i64,
    pub facet: Option<u32>,
}

/// A visualisation run, resolved against the model and the device.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The ascent's settings: the only copy.
    pub ascent: AscentParams,
    /// The preset the settings started from, for reports.
    pub preset: Preset,
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
    pub output: OutputArgs,
    /// Recorded with every summary line.
    pub summary: RunParams,
    /// The model file, as recorded in each PNG.
    pub model: String,
    /// What makes this run's images: recorded in each, compared on resume.
    pub provenance: Provenance,
}

impl Plan {
    /// Resolve `args` for a model described by `model`, running on `device`.
    pub fn resolve(args: &RunArgs, model: &ModelInfo, device: Device) -> Result<Plan> {
        let shard = match args.scale_out.shard()? {
            Some(spec) => spec.resolve_from_env()?,
            None => Shard::ALL,
        };
        let preset = args.preset.preset.preset();
        let ascent = resolve_ascent(args, &preset, model, device)?;
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
        Ok(Plan {
            same_shape: device.is_cuda() && facets == 1,
            preset,
            ascent,
            targets,
            shard,
            batch,
            labels: model.labels.clone(),
            layout: Layout::new(&args.output.out),
            output: args.output.clone(),
            summary,
            model: model_path,
            provenance,
        })
    }

    fn objective(&self) -> &Objective {
        &self.ascent.objective
    }

    /// Whether the images are of classes (not units).
    pub fn is_class(&self) -> bool {
        self.objective().is_class()
    }

    /// This shard's targets.
    pub fn mine(&self) -> Vec<i64> {
        self.shard.select(&self.targets)
    }

    /// A target's jobs: one, or one per facet.
    pub fn jobs(&self, index: i64) -> Vec<Job> {
        match &self.ascent.facets {
            Some(facets) => (0..facets.count).map(|f| Job { index, facet: Some(f) }).collect(),
            None => vec![Job { index, facet: None }],
        }
    }

    /// What a target shows, for the layout.
    pub fn target(&self, index: i64) -> Target {
        let unit = |unit| Target::Unit {
            tap: self.objective().tap().map(|t| t.name.clone()).unwrap_or_default(),
            unit,
        };
        match self.objective() {
            Objective::Channel(_) => unit(Unit::Channel(index)),
            Objective::Neuron(_) => unit(Unit::Neuron(index)),
            Objective::Layer(_) => unit(Unit::Layer),
            _ => Target::Class { index, name: self.labels.name(index).to_string() },
        }
    }

    /// A job's image name: its target, its facet, and the photo an
    /// accentuation starts from.
    pub fn name(&self, job: Job) -> ImageName {
        let photo = match &self.ascent.init {
            Some(Init::Photo(photo)) => Some(layout::photo_stem(&photo.path)),
            _ => None,
        };
        ImageName { target: self.target(job.index), facet: job.facet, photo }
    }

    pub fn path(&self, job: Job) -> PathBuf {
        self.layout.image(&self.name(job))
    }

    /// The text chunks of a job's PNG: enough to reproduce the run, and its provenance.
    pub fn png_record(&self, job: Job) -> PngRecord {
        let (class, unit) = if self.is_class() {
            (Some((job.index, self.labels.name(job.index).to_string())), None)
        } else {
            (None, Some((self.objective().to_string(), job.index)))
        };
        let facet = job.facet.zip(self.ascent.facets.as_ref()).map(|(facet, facets)| {
            format!(
                "{facet} of {}, diversity {} at {}",
                facets.count, facets.weight, facets.tap.name
            )
        });
        PngRecord {
            model: self.model.clone(),
            class,
            unit,
            facet,
            provenance: self.provenance.clone(),
        }
    }
}

/// `cpu`, `cuda:0`: as `--device` takes it.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(index) => format!("cuda:{index}"),
        _ => "cpu".to_string(),
    }
}

/// What makes this run's images: the model, its input, and every resolved setting.
fn provenance(ascent: &AscentParams, model: &ModelInfo, stretch: bool) -> Result<Provenance> {
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

/// The objective, its tap resolved against the model.
fn resolve_objective(flag: &ObjectiveFlag, model: &ModelInfo) -> Result<Objective> {
    let tap = || model.tap(flag.tap.as_deref().unwrap_or_default());
    Ok(match flag.kind {
        ObjectiveKind::Logit => Objective::Logit,
        ObjectiveKind::LogProb => Objective::LogProb,
        ObjectiveKind::Prob => Objective::Prob,
        ObjectiveKind::Channel => Objective::Channel(tap()?),
        ObjectiveKind::Neuron => Objective::Neuron(tap()?),
        ObjectiveKind::Layer => Objective::Layer(tap()?),
    })
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
    match (&args.channels, args.objective.unit) {
        (Some(list), _) => classes::resolve_indices(list, channels, &what),
        (None, Some(unit)) => classes::resolve_indices(&unit.to_string(), channels, &what),
        (None, None) => Err(usage_error(format!(
            "{objective} needs a channel: {objective}:K, or --channels LIST"
        ))),
    }
}

/// The ascent's settings: the preset's, overridden by every flag given,
/// completed for this model and device.
fn resolve_ascent(
    args: &RunArgs,
    preset: &Preset,
    model: &ModelInfo,
    device: Device,
) -> Result<AscentParams> {
    let style = resolve_style(args, preset, model, device)?;
    let iters = args.preset.iters.unwrap_or(preset.iters);
    Ok(AscentParams {
        iters,
        learning_rate: args.preset.lr.unwrap_or(preset.learning_rate),
        l2_weight: args.preset.l2.unwrap_or(preset.l2_weight),
        objective: resolve_objective(&args.target.objective, model)?,
        magnitude: magnitude(args, &style)?,
        init: resolve_init(args, &style, model)?,
        accentuate: resolve_accentuation(args, model)?,
        facets: resolve_facets(&args.target, model)?,
        frame_every: frame_every(&args.output, iters)?,
        precision: args.optimiser.precision,
        check_every: if device.is_cuda() { CUDA_CHECK_EVERY } else { 1 },
        alpha: args.maco.alpha,
        seed: args.preset.seed,
        style,
    })
}

/// The preset's style with every flag given applied; the preset's padding and
/// jitter scaled to the model's input, and its CUDA views on CUDA.
fn resolve_style(
    args: &RunArgs,
    preset: &Preset,
    model: &ModelInfo,
    device: Device,
) -> Result<Style> {
    let base = &preset.style;
    let (o, t, m) = (&args.optimiser, &args.transforms, &args.maco);
    let side = model.input.height.min(model.input.width);
    let mut style = base.clone();
    style.param.param = o.param.unwrap_or(base.param.param);
    style.param.colour = o.colour.unwrap_or(base.param.colour);
    style.param.decay = o.decay.unwrap_or(base.param.decay);
    style.optimizer = o.optimizer.unwrap_or(base.optimizer);
    style.priors.blur_every = o.blur_every.unwrap_or(base.priors.blur_every);
    style.priors.blur_sigma = o.blur_sigma.unwrap_or(base.priors.blur_sigma);
    style.priors.clip_percentile = o.clip_percentile.unwrap_or(base.priors.clip_percentile);
    style.priors.tv = o.tv.unwrap_or(base.priors.tv);
    let views = &mut style.transforms;
    views.pad = t.pad.map_or(scaled_pixels(base.transforms.pad, side), i64::from);
    views.jitter = t.jitter.map_or(scaled_pixels(base.transforms.jitter, side), i64::from);
    views.scales = t.scale.clone().map_or(base.transforms.scales.clone(), |s| s.0);
    views.rotate = t.rotate.unwrap_or(base.transforms.rotate);
    views.view_noise = t.view_noise.unwrap_or(base.transforms.view_noise);
    let preset_views = if device.is_cuda() { preset.views_on_cuda } else { base.transforms.views };
    views.views = t.views.unwrap_or(preset_views);
    views.canvas = m.canvas.unwrap_or(base.transforms.canvas);
    views.crop_box = m.crop_box.or(base.transforms.crop_box);
    check_style(&style, model)?;
    Ok(style)
}

/// What a style cannot do: priors between steps act on pixels; MaCo's
/// spectrum is of colour photos.
fn check_style(style: &Style, model: &ModelInfo) -> Result<()> {
    if style.param.param != Param::Pixel && style.priors.between_steps() {
        return Err(usage_error(
            "--blur-every and --clip-percentile act on pixels: use them with --param pixel",
        ));
    }
    if style.param.param == Param::Maco && model.input.channels != 3 {
        bail!(
            "--param maco needs a 3-channel model; this one takes {} channels",
            model.input.channels
        );
    }
    Ok(())
}

/// MaCo's spectrum, read and checked once, if the style needs it.
fn magnitude(args: &RunArgs, style: &Style) -> Result<Option<Arc<Magnitude>>> {
    if style.param.param != Param::Maco {
        return Ok(None);
    }
    let path = match &args.maco.magnitude {
        Some(path) => path.clone(),
        None => {
            home::find(home::DEFAULT_MAGNITUDE, "MaCo's magnitude spectrum", home::MAKE_MAGNITUDE)?
        }
    };
    Ok(Some(Arc::new(Magnitude::load(&path)?)))
}

/// `--init`, with a start photo read and fitted to the canvas once.
fn resolve_init(args: &RunArgs, style: &Style, model: &ModelInfo) -> Result<Option<Init>> {
    Ok(match &args.preset.init {
        None => None,
        Some(InitSpec::Zero) => Some(Init::Zero),
        Some(InitSpec::Noise(sigma)) => Some(Init::Noise(*sigma)),
        Some(InitSpec::Image(path)) => {
            let canvas = canvas_spec(&model.input, style.transforms.canvas);
            let photo = pixels::load_photo(path, &canvas, args.preset.fit)
                .with_context(|| format!("--init image:{}", path.display()))?;
            Some(Init::Photo(Arc::new(StartPhoto { path: path.clone(), pixels: photo.pixels })))
        }
    })
}

/// `--accentuate W [--tap NAME]`: needs a start photo; a tap must be the model's.
fn resolve_accentuation(args: &RunArgs, model: &ModelInfo) -> Result<Option<Accentuation>> {
    let target = &args.target;
    let Some(weight) = target.accentuate else {
        if target.tap.is_some() {
            return Err(usage_error(
                "--tap names where --accentuate compares features: give --accentuate W too",
            ));
        }
        return Ok(None);
    };
    if !matches!(args.preset.init, Some(InitSpec::Image(_))) {
        return Err(usage_error(
            "--accentuate keeps the image near a photo: give --init image:PATH too",
        ));
    }
    let tap = target
        .tap
        .as_deref()
        .map(|name| model.tap(name))
        .transpose()
        .context("--accentuate --tap")?;
    Ok(Some(Accentuation { weight, tap }))
}

/// `--facets`, with its tap: `--diversity-tap`, else the model's middle tap.
fn resolve_facets(args: &TargetArgs, model: &ModelInfo) -> Result<Option<Facets>> {
    let Some(count) = args.facets else { return Ok(None) };
    let taps = &model.taps;
    let name = match &args.diversity_tap {
        Some(tap) => tap.clone(),
        None => taps
            .get(taps.len() / 2)
            .map(|tap| tap.name.clone())
            .context("--facets compares the facets' activations at a tap, and this model has none: export it with `weights/export.py --taps`")?,
    };
    Ok(Some(Facets { count, weight: args.diversity, tap: model.tap(&name)? }))
}

/// Steps between kept frames (`--save-every`, or 50 frames for `--gif`), if any.
fn frame_every(output: &OutputArgs, iters: u32) -> Result<Option<u32>> {
    let every = match (output.save_every, output.gif) {
        (Some(every), _) => every,
        (None, true) => (iters / GIF_FRAMES).max(1),
        (None, false) => return Ok(None),
    };
    let frames = iters / every + 1;
    if frames > MAX_FRAMES {
        return Err(usage_error(format!(
            "--save-every {every} over {iters} steps keeps {frames} frames per image in memory (at most {MAX_FRAMES}); use --save-every {} or more",
            iters.div_ceil(MAX_FRAMES)
        )));
    }
    Ok(Some(every))
}

/// Split `todo` into batches of at most `batch` jobs. With `same_shape`
/// (CUDA) the batches are as even as possible and the last is padded with
/// repeats of its own jobs, so that every step has the same input shape:
/// a smaller last batch would cost a new cuDNN search and a new graph
/// specialisation. The padding's images are dropped.
pub fn batches(todo: &[Job], batch: usize, same_shape: bool) -> Vec<Batch> {
    if todo.is_empty() {
        return Vec::new();
    }
    let batch = batch.max(1);
    let size = if same_shape { todo.len().div_ceil(todo.len().div_ceil(batch)) } else { batch };
    todo.chunks(size)
        .map(|chunk| {
            let mut jobs = chunk.to_vec();
            if same_shape {
                jobs.extend(chunk.iter().cycle().take(size - chunk.len()));
            }
            Batch { jobs, real: chunk.len() }
        })
        .collect()
}

/// One batch of the run: its jobs, and how many are real (the rest pad it).
#[derive(Debug, Clone)]
pub struct Batch {
    pub jobs: Vec<Job>,
    pub real: usize,
}

impl Batch {
    pub fn real(&self) -> &[Job] {
        &self.jobs[..self.real]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::{parse_args, Parsed};
    use classviz_core::views::TRANSFORM_REFERENCE_SIDE;
    use classviz_engine::probe::ShapeSource;
    use classviz_records::classes::ClassSelection;
    use classviz_records::input::InputSpec;
    use classviz_records::metadata::Tap;

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
        assert_eq!(plan.name(Job { index: 3, facet: None }).stem(), "3");
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
            (DEFAULT_CUDA_BATCH, CUDA_CHECK_EVERY, true)
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
        assert_eq!(units.name(Job { index: 2, facet: None }).stem(), "late_c2");
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

    fn jobs(indices: &[i64]) -> Vec<Job> {
        indices.iter().map(|&index| Job { index, facet: None }).collect()
    }

    fn plan(todo: &[i64], batch: usize, same_shape: bool) -> Vec<(Vec<i64>, usize)> {
        batches(&jobs(todo), batch, same_shape)
            .into_iter()
            .map(|b| (b.jobs.iter().map(|j| j.index).collect(), b.real))
            .collect()
    }

    #[test]
    fn cpu_batches_are_plain_chunks() {
        assert_eq!(
            plan(&[1, 2, 3, 4, 5], 2, false),
            vec![(vec![1, 2], 2), (vec![3, 4], 2), (vec![5], 1)]
        );
        assert!(plan(&[], 4, false).is_empty());
    }

    #[test]
    fn cuda_batches_share_one_shape() {
        // 1000 classes at 128: eight batches of 125, none padded.
        let all: Vec<i64> = (0..1000).collect();
        let batches = plan(&all, 128, true);
        assert_eq!(batches.len(), 8);
        assert!(batches.iter().all(|(classes, real)| classes.len() == 125 && *real == 125));
        // 10 classes at 4: three batches of 4, the last padded with its own classes.
        let batches = plan(&(0..10).collect::<Vec<_>>(), 4, true);
        assert_eq!(
            batches,
            vec![(vec![0, 1, 2, 3], 4), (vec![4, 5, 6, 7], 4), (vec![8, 9, 8, 9], 2)]
        );
        assert_eq!(plan(&[7], 64, true), vec![(vec![7], 1)]);
    }

    #[test]
    fn frames_are_bounded() {
        let output = OutputArgs { gif: true, ..request(&["--class", "1"]).output };
        assert_eq!(frame_every(&output, 150).unwrap(), Some(3));
        let every_step = OutputArgs { save_every: Some(1), ..request(&["--class", "1"]).output };
        let err = frame_every(&every_step, 5000).unwrap_err();
        assert_eq!(classviz_records::exit::status_of(&err), classviz_records::exit::Status::Usage);
        assert_eq!(frame_every(&request(&["--class", "1"]).output, 150).unwrap(), None);
    }
}
