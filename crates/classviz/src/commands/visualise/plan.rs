//! The one place where a visualisation request meets the model and the
//! device: presets become a style scaled to the input, the targets become
//! jobs, the batch, views and check cadence are chosen, and the magnitude
//! spectrum and a start photo are read, once. Nothing downstream resolves or
//! re-validates. A conflict between flags is a [`UsageError`] (exit 2).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use tch::Device;

use crate::commands::visualise::request::{ObjectiveRequest, OutputRequest, Request};
use crate::home;
use classviz_core::ascent::{Accentuation, AscentParams, Facets, Init, InitSpec, StartPhoto};
use classviz_core::objective::Objective;
use classviz_core::param::Param;
use classviz_core::presets::{Preset, Style};
use classviz_core::spectrum::Magnitude;
use classviz_core::views::{canvas_spec, scaled_pixels};
use classviz_engine::model::ModelInfo;
use classviz_records::classes::{self, Labels};
use classviz_records::exit::usage_error;
use classviz_records::formats::{PngRecord, RunParams};
use classviz_records::pixels;
use classviz_records::shard::Shard;

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
    /// Every target of the request, in order (all shards').
    pub targets: Vec<i64>,
    pub shard: Shard,
    /// Images per forward/backward pass: whole targets (all their facets).
    pub batch: usize,
    /// Pad the last batch to the others' shape (CUDA: no new kernels or graphs).
    pub same_shape: bool,
    pub labels: Labels,
    pub output: OutputRequest,
    /// Recorded with every summary line.
    pub summary: RunParams,
    /// The model file, as recorded in each PNG.
    pub model: String,
}

impl Plan {
    /// Resolve `request` for a model described by `model`, running on `device`.
    pub fn resolve(request: &Request, model: &ModelInfo, device: Device) -> Result<Plan> {
        let shard = match request.scale_out.shard {
            Some(spec) => spec.resolve_from_env()?,
            None => Shard::ALL,
        };
        let ascent = resolve_ascent(request, model, device)?;
        let targets = resolve_targets(&request.objective, &ascent.objective, model)?;
        let facets = ascent.facets.as_ref().map_or(1, |f| f.count as usize);
        let batch = request.scale_out.batch.unwrap_or(if device.is_cuda() {
            DEFAULT_CUDA_BATCH
        } else {
            DEFAULT_CPU_BATCH
        });
        // A target's facets are optimised together, so a batch holds whole targets.
        let batch = (batch / facets).max(1) * facets;
        let model_path = model.path.display().to_string();
        let summary = RunParams {
            model: model_path.clone(),
            lr: ascent.learning_rate,
            l2: ascent.l2_weight,
            seed: ascent.seed,
            device: format!("{device:?}").to_lowercase(),
            batch,
        };
        Ok(Plan {
            same_shape: device.is_cuda() && facets == 1,
            ascent,
            targets,
            shard,
            batch,
            labels: model.labels.clone(),
            output: request.output.clone(),
            summary,
            model: model_path,
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

    /// `<index>_<slug>`, `<tap>_c<K>`, `<tap>_n<K>` or `<tap>_layer`, with
    /// `_f<j>` for a facet; with a start photo, `<photo>_to_<index>_<slug>`.
    pub fn stem(&self, job: Job) -> String {
        let base = if self.is_class() {
            classes::output_stem(job.index, self.labels.name(job.index))
        } else {
            self.objective().unit_stem(job.index)
        };
        let base = match &self.ascent.init {
            Some(Init::Photo(photo)) => format!("{}_to_{base}", file_stem(&photo.path)),
            _ => base,
        };
        match job.facet {
            Some(facet) => format!("{base}_f{facet}"),
            None => base,
        }
    }

    pub fn path(&self, job: Job) -> PathBuf {
        self.output.out_dir.join(format!("{}.png", self.stem(job)))
    }

    /// The label of an image on the contact sheet.
    pub fn label(&self, job: Job) -> String {
        let base = if self.is_class() {
            format!("{} {}", job.index, self.labels.name(job.index))
        } else {
            self.objective().unit_stem(job.index).replace('_', " ").trim().to_string()
        };
        job.facet.map_or(base.clone(), |f| format!("{base} f{f}"))
    }

    /// The text chunks of a job's PNG: enough to reproduce the run.
    pub fn png_record(&self, job: Job) -> PngRecord {
        let params = &self.ascent;
        let (class, unit) = if self.is_class() {
            (Some((job.index, self.labels.name(job.index).to_string())), None)
        } else {
            (None, Some((self.objective().to_string(), job.index)))
        };
        let facet = job.facet.zip(params.facets.as_ref()).map(|(facet, facets)| {
            format!("{facet} of {}, diversity {} at {}", facets.count, facets.weight, facets.tap)
        });
        PngRecord {
            model: self.model.clone(),
            class,
            unit,
            iters: params.iters,
            lr: params.learning_rate,
            l2: params.l2_weight,
            seed: params.seed,
            style: format!("{:?}", params.style),
            init: params.init.as_ref().map(ToString::to_string),
            facet,
        }
    }
}

fn file_stem(path: &std::path::Path) -> String {
    path.file_stem().map_or("photo".to_string(), |s| classes::slug(&s.to_string_lossy()))
}

/// The targets: classes for a class objective; the channels of the tap for
/// channel and neuron objectives; the tap itself (one image) for a layer.
fn resolve_targets(
    request: &ObjectiveRequest,
    objective: &Objective,
    model: &ModelInfo,
) -> Result<Vec<i64>> {
    let Some(tap) = objective.tap() else {
        return request.classes.resolve(&model.labels);
    };
    let tap = &model.taps[model.tap_index(tap)?];
    if let Objective::Layer(_) = objective {
        return Ok(vec![0]);
    }
    let channels = tap.grid_shape()?[0] as usize;
    let what = format!("channel of tap {} ({channels} channels)", tap.name);
    match (&request.channels, request.objective.unit) {
        (Some(list), _) => classes::resolve_indices(list, channels, &what),
        (None, Some(unit)) => classes::resolve_indices(&unit.to_string(), channels, &what),
        (None, None) => Err(usage_error(format!(
            "{objective} needs a channel: {objective}:K, or --channels LIST"
        ))),
    }
}

/// The ascent's settings: the preset's, overridden by every flag given,
/// completed for this model and device.
fn resolve_ascent(request: &Request, model: &ModelInfo, device: Device) -> Result<AscentParams> {
    let preset = request.preset.preset.preset();
    let style = resolve_style(request, &preset, model, device)?;
    let iters = request.preset.iters.unwrap_or(preset.iters);
    Ok(AscentParams {
        iters,
        learning_rate: request.preset.lr.unwrap_or(preset.learning_rate),
        l2_weight: request.preset.l2.unwrap_or(preset.l2_weight),
        objective: request.objective.objective.objective.clone(),
        magnitude: magnitude(request, &style)?,
        init: resolve_init(request, &style, model)?,
        accentuate: resolve_accentuation(request, model)?,
        facets: resolve_facets(&request.objective, model)?,
        frame_every: frame_every(&request.output, iters)?,
        precision: request.optimiser.precision,
        check_every: if device.is_cuda() { CUDA_CHECK_EVERY } else { 1 },
        alpha: request.maco.alpha,
        seed: request.preset.seed,
        style,
    })
}

/// The preset's style with every flag given applied; the preset's padding and
/// jitter scaled to the model's input, and its CUDA views on CUDA.
fn resolve_style(
    request: &Request,
    preset: &Preset,
    model: &ModelInfo,
    device: Device,
) -> Result<Style> {
    let base = &preset.style;
    let (o, t, m) = (&request.optimiser, &request.transforms, &request.maco);
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
    views.scales = t.scale.clone().unwrap_or(base.transforms.scales.clone());
    views.rotate = t.rotate.unwrap_or(base.transforms.rotate);
    views.view_noise = t.view_noise.unwrap_or(base.transforms.view_noise);
    views.views = t.views.unwrap_or(if device.is_cuda() {
        preset.views_on_cuda
    } else {
        base.transforms.views
    });
    views.canvas = m.canvas.unwrap_or(base.transforms.canvas);
    views.crop_box = m.crop_box.or(base.transforms.crop_box);
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
    Ok(style)
}

/// MaCo's spectrum, read and checked once, if the style needs it.
fn magnitude(request: &Request, style: &Style) -> Result<Option<Arc<Magnitude>>> {
    if style.param.param != Param::Maco {
        return Ok(None);
    }
    let path = match &request.maco.magnitude {
        Some(path) => path.clone(),
        None => {
            home::find(home::DEFAULT_MAGNITUDE, "MaCo's magnitude spectrum", home::MAKE_MAGNITUDE)?
        }
    };
    Ok(Some(Arc::new(Magnitude::load(&path)?)))
}

/// `--init`, with a start photo read and fitted to the canvas once.
fn resolve_init(request: &Request, style: &Style, model: &ModelInfo) -> Result<Option<Init>> {
    Ok(match &request.preset.init {
        None => None,
        Some(InitSpec::Zero) => Some(Init::Zero),
        Some(InitSpec::Noise(sigma)) => Some(Init::Noise(*sigma)),
        Some(InitSpec::Image(path)) => {
            let canvas = canvas_spec(&model.input, style.transforms.canvas);
            let photo = pixels::load_photo(path, &canvas, request.preset.fit)
                .with_context(|| format!("--init image:{}", path.display()))?;
            Some(Init::Photo(Arc::new(StartPhoto { path: path.clone(), pixels: photo.pixels })))
        }
    })
}

/// `--accentuate W [--tap NAME]`: needs a start photo; a tap must be the model's.
fn resolve_accentuation(request: &Request, model: &ModelInfo) -> Result<Option<Accentuation>> {
    let objective = &request.objective;
    let Some(weight) = objective.accentuate else {
        if objective.tap.is_some() {
            return Err(usage_error(
                "--tap names where --accentuate compares features: give --accentuate W too",
            ));
        }
        return Ok(None);
    };
    if !matches!(request.preset.init, Some(InitSpec::Image(_))) {
        return Err(usage_error(
            "--accentuate keeps the image near a photo: give --init image:PATH too",
        ));
    }
    if let Some(tap) = &objective.tap {
        model.tap_index(tap).context("--accentuate --tap")?;
    }
    Ok(Some(Accentuation { weight, tap: objective.tap.clone() }))
}

/// `--facets`, with its tap: `--diversity-tap`, else the model's middle tap.
fn resolve_facets(request: &ObjectiveRequest, model: &ModelInfo) -> Result<Option<Facets>> {
    let Some(count) = request.facets else { return Ok(None) };
    let taps = &model.taps;
    let tap = match &request.diversity_tap {
        Some(tap) => tap.clone(),
        None => taps
            .get(taps.len() / 2)
            .map(|tap| tap.name.clone())
            .context("--facets compares the facets' activations at a tap, and this model has none: export it with `weights/export.py --taps`")?,
    };
    model.tap_index(&tap)?;
    Ok(Some(Facets { count, weight: request.diversity, tap }))
}

/// Steps between kept frames (`--save-every`, or 50 frames for `--gif`), if any.
fn frame_every(output: &OutputRequest, iters: u32) -> Result<Option<u32>> {
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
    use crate::cli::{parse_args, Parsed};
    use crate::commands::Request as AnyRequest;
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
        }
    }

    fn request(args: &[&str]) -> Request {
        let argv = std::iter::once("classviz").chain(args.iter().copied());
        match parse_args(argv).unwrap() {
            Parsed::Run(request) => match *request {
                AnyRequest::Visualise(request) => *request,
                other => panic!("not a visualise request: {other:?}"),
            },
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
        assert_eq!(plan.stem(Job { index: 3, facet: None }), "3");
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
        assert_eq!(units.stem(Job { index: 2, facet: None }), "late_c2");
        let facets =
            resolve(&["--class", "1", "--facets", "3", "--batch", "4"], 224, Device::Cpu).unwrap();
        assert_eq!(facets.ascent.facets.as_ref().unwrap().tap, "late", "the middle tap by default");
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
        let selection = &request(&["--class", "1"]).objective.classes;
        assert_eq!(selection, &ClassSelection { list: Some("1".into()), file: None });
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
        let output = OutputRequest { gif: true, ..OutputRequest::default() };
        assert_eq!(frame_every(&output, 150).unwrap(), Some(3));
        let every_step = OutputRequest { save_every: Some(1), ..OutputRequest::default() };
        let err = frame_every(&every_step, 5000).unwrap_err();
        assert_eq!(classviz_records::exit::status_of(&err), classviz_records::exit::Status::Usage);
        assert_eq!(frame_every(&OutputRequest::default(), 150).unwrap(), None);
    }
}
