//! The main job: what the network has learned, as images. For each target (a
//! class, or a unit of a tap: a channel, a neuron, a layer) and each of its
//! facets, batch by batch, skipping finished images, with every finished
//! image kept on interruption.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use tch::{Device, Kind, Tensor};

use crate::ascent::{self, AscentParams, Stopped};
use crate::classes::{self, ClassSelection};
use crate::exit::Status;
use crate::files;
use crate::grid;
use crate::image_io::{self, Display, Fit, Pixels};
use crate::knobs;
use crate::model::{self, Classifier, ModelConfig};
use crate::natural;
use crate::objective::{self, Objective};
use crate::report::UnitResult;
use crate::report::{self, ClassResult, FacetSummary, Outcome, Progress, RunParams, SummaryLine};
use crate::saliency;
use crate::shard::{Shard, ShardSpec};

/// Default `--batch` on the CPU: the fastest per class in `bench/run.py` on a
/// 2-core machine (see README, "Performance").
pub const DEFAULT_CPU_BATCH: usize = 4;
/// Default `--batch` on CUDA: on an H200, all 1000 classes took 32.3 s at 128
/// and 34.6 s at 512 (`bench/gpu.sh`, README "GPU").
pub const DEFAULT_CUDA_BATCH: usize = 128;
/// Delay between GIF frames.
const GIF_FRAME_MS: u32 = 80;

/// Everything one visualisation run needs, validated: the program's "high" configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The classes, for class objectives.
    pub classes: ClassSelection,
    /// For channel and neuron objectives: `--channels` as written (e.g. `0-15`),
    /// else the unit K of `channel:TAP:K`.
    pub channels: Option<String>,
    pub unit: Option<i64>,
    pub ascent: AscentParams,
    /// Views per step on CUDA when `--views` was not given (the preset's).
    pub cuda_views: Option<u32>,
    /// Whether `--pad` and `--jitter` are the preset's, given for a 224-pixel
    /// input and so scaled to the model's (`natural::scaled_pixels`).
    pub preset_pad: bool,
    pub preset_jitter: bool,
    pub model: ModelConfig,
    pub out_dir: PathBuf,
    /// Images per forward/backward pass; `None` picks the device's default.
    pub batch: Option<usize>,
    pub force: bool,
    pub grid: bool,
    /// `--gallery`: write or refresh `<out>/index.html` at the end.
    pub gallery: bool,
    /// `--save-every K`: intermediate PNGs under `<out>/frames/`.
    pub save_every: Option<u32>,
    /// `--gif`: an animated GIF of the optimisation next to each PNG.
    pub gif: bool,
    /// Run only part of the target list (`--shard`), with `--shards` for `auto`.
    pub shard: Option<ShardSpec>,
    pub shards: Option<usize>,
    pub seed: u64,
    pub stretch: bool,
    pub quiet: bool,
    pub json: bool,
}

/// Set by Ctrl-C / SIGTERM; the ascent stops at its next step.
static STOP: AtomicBool = AtomicBool::new(false);

fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// One image of the run: its target (a class, or a channel of the tap) and,
/// with `--facets`, which facet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Job {
    index: i64,
    facet: Option<u32>,
}

/// What the run makes, resolved against the model.
struct Plan<'a> {
    config: &'a Config,
    /// The ascent's settings, completed for this model and device.
    ascent: AscentParams,
    labels: classes::Labels,
}

impl Plan<'_> {
    fn objective(&self) -> &Objective {
        &self.ascent.objective
    }

    fn facets(&self) -> u32 {
        self.ascent.facets.as_ref().map_or(1, |f| f.count)
    }

    /// `<index>_<slug>`, `<tap>_c<K>`, `<tap>_n<K>` or `<tap>_layer`, with `_f<j>` for a facet.
    fn stem(&self, job: Job) -> String {
        let base = if self.objective().is_class() {
            classes::output_stem(job.index, self.labels.name(job.index))
        } else {
            self.objective().unit_stem(job.index)
        };
        match job.facet {
            Some(facet) => format!("{base}_f{facet}"),
            None => base,
        }
    }

    fn path(&self, job: Job) -> PathBuf {
        self.config.out_dir.join(format!("{}.png", self.stem(job)))
    }

    /// A target's jobs: one, or one per facet.
    fn jobs(&self, index: i64) -> Vec<Job> {
        match &self.ascent.facets {
            Some(facets) => (0..facets.count).map(|f| Job { index, facet: Some(f) }).collect(),
            None => vec![Job { index, facet: None }],
        }
    }

    /// The label of an image on the contact sheet.
    fn label(&self, job: Job) -> String {
        let base = if self.objective().is_class() {
            format!("{} {}", job.index, self.labels.name(job.index))
        } else {
            self.objective().unit_stem(job.index).replace('_', " ").trim().to_string()
        };
        job.facet.map_or(base.clone(), |f| format!("{base} f{f}"))
    }
}

/// The targets: classes for a class objective; the channels of the tap for
/// channel and neuron objectives; the tap itself (one image) for a layer.
fn targets(config: &Config, model: &Classifier) -> Result<Vec<i64>> {
    let objective = &config.ascent.objective;
    let Some(tap) = objective.tap() else {
        return config.classes.resolve(&model.labels);
    };
    let tap = model.tap(tap)?;
    if let Objective::Layer(_) = objective {
        return Ok(vec![0]);
    }
    let channels = tap.shape[0] as usize;
    let what = format!("channel of tap {} ({channels} channels)", tap.name);
    match (&config.channels, config.unit) {
        (Some(list), _) => classes::resolve_indices(list, channels, &what),
        (None, Some(unit)) => classes::resolve_indices(&unit.to_string(), channels, &what),
        (None, None) => bail!("{objective} needs a channel: {objective}:K, or --channels LIST"),
    }
}

/// Visualise the configured targets, batch by batch, skipping finished ones.
///
/// The optimisation runs on this thread; a writer thread encodes and writes
/// each finished batch, re-scores the saved images and appends the summary
/// while the next batch optimises. On Ctrl-C the batch in flight is dropped
/// and every finished one is written before the run exits.
pub fn run(config: &Config) -> Result<Status> {
    // Without a handler (e.g. one was already installed) the default
    // signal behaviour still never leaves a partial PNG: writes are atomic.
    let _ = ctrlc::set_handler(|| STOP.store(true, Ordering::Relaxed));
    let shard = match config.shard {
        Some(spec) => spec.resolve_from_env(config.shards)?,
        None => Shard::ALL,
    };
    natural::validate(&config.ascent.style)?;
    // A missing or corrupt magnitude spectrum fails now, not after the first batch.
    natural::magnitude_for(&config.ascent.style, &config.ascent.magnitude)?;
    tch::manual_seed(config.seed as i64);
    files::ensure_writable_dir(&config.out_dir)?;
    files::remove_stale_temp_files(&config.out_dir)?;

    let model = report::with_warnings(config.model.load()?);
    let device = model.device;
    let indices = targets(config, &model)?;
    let mut ascent_params = config.ascent.clone();
    let side = model.input.height.min(model.input.width);
    if config.preset_pad {
        ascent_params.style.pad = natural::scaled_pixels(ascent_params.style.pad, side);
    }
    if config.preset_jitter {
        ascent_params.style.jitter = natural::scaled_pixels(ascent_params.style.jitter, side);
    }
    if device.is_cuda() {
        ascent_params.check_every = CUDA_CHECK_EVERY;
        if let Some(views) = config.cuda_views {
            ascent_params.style.views = views;
        }
    }
    if let Some(facets) = ascent_params.facets.as_mut() {
        if facets.tap.is_empty() {
            facets.tap = model
                .taps
                .get(model.taps.len() / 2)
                .map(|tap| tap.name.clone())
                .context("--facets compares the facets' activations at a tap, and this model has none: export it with `weights/export.py --taps`")?;
        }
        model.tap(&facets.tap)?;
    }
    let plan = Plan { config, ascent: ascent_params, labels: model.labels.clone() };
    let facets = plan.facets() as usize;
    let batch = config.batch.unwrap_or(match device {
        Device::Cpu => DEFAULT_CPU_BATCH,
        _ => DEFAULT_CUDA_BATCH,
    });
    // A target's facets are optimised together, so a batch holds whole targets.
    let batch = (batch / facets).max(1) * facets;
    let params = RunParams {
        model: config.model.path.display().to_string(),
        lr: config.ascent.learning_rate,
        l2: config.ascent.l2_weight,
        seed: config.seed,
        device: format!("{device:?}").to_lowercase(),
        batch,
    };

    let mine = shard.select(&indices);
    // A target is done when all its images are there.
    let (todo, done): (Vec<i64>, Vec<i64>) = mine.iter().partition(|&&index| {
        config.force || plan.jobs(index).iter().any(|&job| !plan.path(job).exists())
    });
    let todo_jobs: Vec<Job> = todo.iter().flat_map(|&index| plan.jobs(index)).collect();
    let batches = plan_batches(&todo_jobs, batch, device.is_cuda() && facets == 1);
    if let Some(first) = batches.first() {
        model.check_batch_fits(first.jobs.len())?;
    }
    model::enable_cudnn_benchmark(device, batches.len());
    // On request a second instance scores the saved images, so that the
    // optimising one never leaves gradient mode (measured: not worth it).
    let twin = if knobs::twin_scorer() { Some(model.twin()?) } else { None };
    let scorer = twin.as_ref().unwrap_or(&model);
    knobs::trace(|| format!("{} batches planned, twin scorer: {}", batches.len(), twin.is_some()));

    let progress = Progress::new(todo_jobs.len(), config.ascent.iters, config.quiet);
    if shard != Shard::ALL {
        progress.note(&format!("shard {shard}: {} of {} targets", mine.len(), indices.len()));
    }
    if !done.is_empty() {
        progress.note(&format!(
            "skipping {} of {} {} already in {} (--force redoes them)",
            done.len(),
            mine.len(),
            if plan.objective().is_class() { "classes" } else { "units" },
            config.out_dir.display()
        ));
        // Still report them: a script asking for these targets gets a line for each.
        let done_jobs: Vec<Job> = done.iter().flat_map(|&index| plan.jobs(index)).collect();
        for chunk in done_jobs.chunks(batch) {
            for result in score_existing(scorer, &plan, chunk)? {
                report::print_result(&result, config.json)?;
            }
        }
    }

    let mut interrupted = stop_requested();
    let (totals, optimised) = std::thread::scope(|scope| -> Result<(WriterTotals, Result<()>)> {
        let (sender, receiver) = mpsc::sync_channel::<Finished>(WRITER_QUEUE);
        let writer = scope.spawn(|| write_batches(receiver, scorer, &plan, &params, &progress));
        let optimised = (|| -> Result<()> {
            for (index, planned) in batches.iter().enumerate() {
                if interrupted {
                    break;
                }
                let label = planned
                    .real()
                    .iter()
                    .map(|j| j.index.to_string())
                    .collect::<Vec<_>>()
                    .join(",");
                progress.start_batch(&label);
                let started = Instant::now();
                let on_step = |step: &ascent::Step| {
                    progress.step(step);
                    if stop_requested() {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                };
                let rows: Vec<i64> = planned.jobs.iter().map(|job| job.index).collect();
                let result = ascent::optimise(&model, &rows, &plan.ascent, on_step);
                let ascent = match result {
                    Ok(ascent) => ascent,
                    Err(err) if err.is::<Stopped>() => {
                        interrupted = true;
                        break;
                    }
                    Err(err) => return Err(err),
                };
                let finished = Finished::from_ascent(planned, ascent, started)?;
                knobs::trace(|| format!("batch {}/{} optimised", index + 1, batches.len()));
                if sender.send(finished).is_err() {
                    // The writer stopped: its error is the one to report.
                    break;
                }
                interrupted |= stop_requested();
            }
            Ok(())
        })();
        drop(sender);
        let totals = writer.join().map_err(|_| anyhow!("the writer thread panicked"))??;
        Ok((totals, optimised))
    })?;
    optimised?;
    progress.finish();
    knobs::trace(|| "all batches written".to_string());

    if !totals.stalled.is_empty() {
        progress.note(&format!(
            "{} of {} images stalled ({}); rerun them with --init noise:0.01 --force",
            totals.stalled.len(),
            totals.written,
            totals.stalled.join(", ")
        ));
    }
    if config.grid {
        let entries: Vec<(PathBuf, String)> = indices
            .iter()
            .flat_map(|&index| plan.jobs(index))
            .map(|job| (plan.path(job), plan.label(job)))
            .collect();
        let (path, tiles) = grid::write_grid(&config.out_dir, &entries)?;
        progress.note(&format!("wrote {} ({tiles} tiles)", path.display()));
    }
    if config.gallery {
        let spec = crate::gallery::GallerySpec {
            dirs: vec![config.out_dir.clone()],
            scores: Vec::new(),
            out: config.out_dir.join(crate::gallery::GALLERY_FILE),
            embed: false,
            title: format!("classviz: {}", config.out_dir.display()),
        };
        let written = crate::gallery::write_gallery(&spec)?;
        for warning in &written.warnings {
            progress.note(&format!("warning: {warning}"));
        }
        progress.note(&format!("wrote {} ({} rows)", written.path.display(), written.rows));
    }
    if interrupted {
        progress.note(&format!(
            "interrupted: {} of {} images finished and kept; run the same command again to finish the rest",
            totals.written,
            todo_jobs.len()
        ));
        return Ok(Status::Interrupted);
    }
    Ok(Status::Success)
}

/// The alpha map is fully opaque from this percentile of its attribution up.
const ALPHA_PERCENTILE: f64 = 99.0;

/// `<out>/<stem>_<what>.png` beside an image (alpha, canvas).
fn suffixed(image: &Path, what: &str) -> PathBuf {
    let stem = image.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    image.with_file_name(format!("{stem}_{what}.png"))
}

/// Steps between host syncs on CUDA (divergence check and progress); the
/// CPU checks every step, where copying the scores costs nothing.
const CUDA_CHECK_EVERY: u32 = 25;
/// Finished batches waiting for the writer, at most: the optimisation waits
/// rather than holding more images in memory.
const WRITER_QUEUE: usize = 2;

/// One batch of the run: its jobs, and how many are real (the rest pad it).
struct Batch {
    jobs: Vec<Job>,
    real: usize,
}

impl Batch {
    fn real(&self) -> &[Job] {
        &self.jobs[..self.real]
    }
}

/// Split `todo` into batches of at most `batch` jobs. With `same_shape`
/// (CUDA) the batches are as even as possible and the last is padded with
/// repeats of its own jobs, so that every step has the same input shape:
/// a smaller last batch would cost a new cuDNN search and a new graph
/// specialisation. The padding's images are dropped.
fn plan_batches(todo: &[Job], batch: usize, same_shape: bool) -> Vec<Batch> {
    if todo.is_empty() {
        return Vec::new();
    }
    let batch = batch.max(1);
    let size = if same_shape {
        let count = todo.len().div_ceil(batch);
        todo.len().div_ceil(count)
    } else {
        batch
    };
    todo.chunks(size)
        .map(|chunk| {
            let mut jobs = chunk.to_vec();
            if same_shape {
                let mut repeats = chunk.iter().cycle();
                while jobs.len() < size {
                    jobs.extend(repeats.next());
                }
            }
            Batch { jobs, real: chunk.len() }
        })
        .collect()
}

/// A finished batch on the host, for the writer.
struct Finished {
    jobs: Vec<Job>,
    /// `[N, C, H, W]` in the model's space, on the CPU.
    images: Tensor,
    /// Kept frames, on the CPU.
    frames: Vec<(u32, Tensor)>,
    /// With `--alpha`: the accumulated attribution `[N, H, W]`, on the CPU.
    alpha: Option<Tensor>,
    /// With MaCo crops: the whole canvases, on the CPU.
    canvas: Option<Tensor>,
    stalled: Vec<bool>,
    /// Optimisation time per image.
    seconds: f64,
}

impl Finished {
    /// The real rows of an ascent, copied to the host (the batch's one sync).
    fn from_ascent(batch: &Batch, ascent: ascent::Ascent, started: Instant) -> Result<Finished> {
        let real = batch.real as i64;
        let host = |t: &Tensor| -> Result<Tensor> {
            Ok(t.f_narrow(0, 0, real)?.f_to_device(Device::Cpu)?)
        };
        let images = host(&ascent.images)?;
        let frames = ascent
            .frames
            .iter()
            .map(|(step, t)| Ok((*step, host(t)?)))
            .collect::<Result<Vec<_>>>()?;
        let alpha = ascent.alpha.as_ref().map(host).transpose()?;
        let canvas = ascent.canvas.as_ref().map(host).transpose()?;
        Ok(Finished {
            jobs: batch.real().to_vec(),
            images,
            frames,
            alpha,
            canvas,
            stalled: ascent.stalled[..batch.real].to_vec(),
            seconds: started.elapsed().as_secs_f64() / batch.real as f64,
        })
    }
}

/// What the writer did.
struct WriterTotals {
    written: usize,
    /// What each stalled image showed.
    stalled: Vec<String>,
}

/// The writer thread: PNGs (and frames), scores of the saved images, result
/// lines and summary lines, batch by batch in order.
fn write_batches(
    receiver: mpsc::Receiver<Finished>,
    scorer: &Classifier,
    plan: &Plan,
    params: &RunParams,
    progress: &Progress,
) -> Result<WriterTotals> {
    model::use_jit_mode(scorer.device)?;
    // One torch thread for this thread's work on the CPU. With a second
    // OpenMP team here, libgomp counts more threads than cores and the
    // optimiser's barriers sleep instead of spinning: every batch after the
    // first ran 20-25% slower (README, "Performance"). The optimising thread has
    // set its own count already, so it keeps it.
    if scorer.device == tch::Device::Cpu {
        tch::set_num_threads(1);
    }
    let config = plan.config;
    let mut totals = WriterTotals { written: 0, stalled: Vec::new() };
    for finished in receiver {
        let (saved, facets) = save_batch(scorer, plan, &finished)?;
        if !finished.frames.is_empty() {
            save_frames(scorer, plan, &finished.jobs, &finished.frames)?;
        }
        for result in &saved {
            if result.stalled() {
                progress.note(&stall_warning(result, &plan.ascent));
                totals.stalled.push(result.subject());
            }
            report::print_result(result, config.json)?;
            let line = SummaryLine { result, params };
            report::append_summary(&config.out_dir.join(report::SUMMARY_FILE), &line)?;
        }
        for summary in &facets {
            report::print_facets(summary, config.json)?;
        }
        totals.written += saved.len();
        progress.classes_done(saved.len());
    }
    Ok(totals)
}

/// One warning line for an image whose ascent stalled.
fn stall_warning(result: &Outcome, params: &AscentParams) -> String {
    let start = params.init.map_or("its start".to_string(), |init| format!("the {init} start"));
    format!(
        "warning: {}: the ascent stalled (the gradient was exactly zero on its last {} steps, or the image never left {start}), so {} shows nothing learned; try --init noise:0.01",
        result.subject(),
        ascent::STALL_STEPS.min(params.iters),
        result.path()
    )
}

/// The text chunks recorded in each PNG: enough to reproduce the run.
fn png_text(plan: &Plan, job: Job) -> Vec<(String, String)> {
    let params = &plan.ascent;
    let mut text = vec![
        ("Software", format!("classviz {}", env!("CARGO_PKG_VERSION"))),
        ("model", plan.config.model.path.display().to_string()),
    ];
    if plan.objective().is_class() {
        text.push(("class", job.index.to_string()));
        text.push(("class_name", plan.labels.name(job.index).to_string()));
    } else {
        text.push(("objective", plan.objective().to_string()));
        text.push(("unit", job.index.to_string()));
    }
    text.extend([
        ("iters", params.iters.to_string()),
        ("lr", params.learning_rate.to_string()),
        ("l2", params.l2_weight.to_string()),
        ("seed", params.seed.to_string()),
        ("version", env!("CARGO_PKG_VERSION").to_string()),
        ("style", format!("{:?}", params.style)),
    ]);
    if let Some(init) = params.init {
        text.push(("init", init.to_string()));
    }
    if let (Some(facet), Some(facets)) = (job.facet, &params.facets) {
        text.push((
            "facet",
            format!("{facet} of {}, diversity {} at {}", facets.count, facets.weight, facets.tap),
        ));
    }
    text.into_iter().map(|(key, value)| (key.to_string(), value)).collect()
}

/// Write the kept frames: PNGs under `<out>/frames/<stem>/` (`--save-every`)
/// and an animated GIF next to each image (`--gif`).
fn save_frames(
    model: &Classifier,
    plan: &Plan,
    jobs: &[Job],
    frames: &[(u32, Tensor)],
) -> Result<()> {
    let config = plan.config;
    for (row, &job) in jobs.iter().enumerate() {
        let stem = plan.stem(job);
        let mut pixels = Vec::with_capacity(frames.len());
        for (step, images) in frames {
            let frame = image_io::to_pixels(
                &images.f_narrow(0, row as i64, 1)?,
                &model.input,
                Display::Clamp,
            )?;
            if config.save_every.is_some() {
                let dir = config.out_dir.join("frames").join(&stem);
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                image_io::write_png_atomic(&dir.join(format!("{step:05}.png")), &frame, &[])?;
            }
            pixels.push(frame);
        }
        if config.gif {
            image_io::write_gif_atomic(
                &plan.path(job).with_extension("gif"),
                &pixels,
                GIF_FRAME_MS,
            )?;
        }
    }
    Ok(())
}

/// The results of saved images (`pixels`, in job order), scored as a PNG
/// reader gets them: for a class S_c, p and the top 5; for a unit its objective.
fn outcomes(
    scorer: &Classifier,
    plan: &Plan,
    jobs: &[Job],
    pixels: &[Pixels],
) -> Result<Vec<Outcome>> {
    let indices: Vec<i64> = jobs.iter().map(|job| job.index).collect();
    let objective = plan.objective();
    if objective.is_class() {
        let scores = scorer.score_images(pixels, &indices)?;
        return Ok(jobs
            .iter()
            .zip(&scores)
            .map(|(&job, scores)| {
                let result =
                    ClassResult::from_scores(job.index, &plan.labels, &plan.path(job), scores);
                Outcome::Class(ClassResult { facet: job.facet, ..result })
            })
            .collect());
    }
    let x = saved_input(scorer, pixels)?;
    let targets = Tensor::f_from_slice(&indices)?.f_to_device(scorer.device)?;
    let (scores, _) = tch::no_grad(|| objective::scores(scorer, &x, objective, &targets, None))?;
    let scores = Vec::<f64>::try_from(scores.f_to_kind(Kind::Double)?.f_to_device(Device::Cpu)?)?;
    let tap = objective.tap().unwrap_or_default().to_string();
    Ok(jobs
        .iter()
        .zip(scores)
        .map(|(&job, score)| {
            let channel = (!matches!(objective, Objective::Layer(_))).then_some(job.index);
            let unit = match channel {
                Some(channel) => format!("{objective}:{channel}"),
                None => objective.to_string(),
            };
            Outcome::Unit(UnitResult {
                unit,
                tap: tap.clone(),
                channel,
                path: plan.path(job).display().to_string(),
                score,
                iters: 0,
                seconds: 0.0,
                skipped: false,
                stalled: false,
                facet: job.facet,
            })
        })
        .collect())
}

/// Saved 8-bit images as the model's normalised input batch.
fn saved_input(model: &Classifier, pixels: &[Pixels]) -> Result<Tensor> {
    let batch = pixels
        .iter()
        .map(|p| {
            let fitted = image_io::fit_pixels(p, &model.input, Fit::Stretch)?;
            image_io::pixels_to_tensor(&fitted, model.device)
        })
        .collect::<Result<Vec<_>>>()?;
    model.input.normalise(&Tensor::f_cat(&batch, 0)?)
}

/// Each target's facets in `jobs` (consecutive, whole): their scores and the
/// mean pairwise similarity of their saved images at the facets' tap.
fn facet_summaries(
    scorer: &Classifier,
    plan: &Plan,
    jobs: &[Job],
    pixels: &[Pixels],
    results: &[Outcome],
) -> Result<Vec<FacetSummary>> {
    let Some(facets) = &plan.ascent.facets else { return Ok(Vec::new()) };
    let x = saved_input(scorer, pixels)?;
    let (_, activations) = tch::no_grad(|| scorer.forward_with_taps(&x, &[facets.tap.as_str()]))?;
    let similarity = objective::gram_similarity(&activations[0], i64::from(facets.count))?;
    let similarity =
        Vec::<f64>::try_from(similarity.f_to_kind(Kind::Double)?.f_to_device(Device::Cpu)?)?;
    Ok(jobs
        .chunks(facets.count as usize)
        .zip(results.chunks(facets.count as usize))
        .zip(similarity)
        .map(|((group, results), similarity)| FacetSummary {
            target: match &results[0] {
                Outcome::Class(result) => format!("{} ({})", result.class, result.name),
                Outcome::Unit(result) => result.unit.clone(),
            },
            facets: group.len() as u32,
            scores: results
                .iter()
                .map(|result| match result {
                    Outcome::Class(result) => result.logit,
                    Outcome::Unit(result) => result.score,
                })
                .collect(),
            similarity,
            tap: facets.tap.clone(),
            diversity: facets.weight,
        })
        .collect())
}

/// Re-score images already in `--out` (skipped targets), as saved.
fn score_existing(model: &Classifier, plan: &Plan, jobs: &[Job]) -> Result<Vec<Outcome>> {
    let mut pixels = Vec::with_capacity(jobs.len());
    let mut iters = Vec::with_capacity(jobs.len());
    for &job in jobs {
        let path = plan.path(job);
        pixels.push(image_io::load_photo(&path, &model.input, Fit::Stretch)?.pixels);
        let text = image_io::read_png_text(&path).unwrap_or_default();
        let recorded =
            text.iter().find(|(key, _)| key == "iters").and_then(|(_, value)| value.parse().ok());
        iters.push(recorded.unwrap_or(plan.ascent.iters));
    }
    let results = outcomes(model, plan, jobs, &pixels)?;
    Ok(results
        .into_iter()
        .zip(iters)
        .map(|(result, iters)| match result {
            Outcome::Class(r) => Outcome::Class(ClassResult { iters, skipped: true, ..r }),
            Outcome::Unit(r) => Outcome::Unit(UnitResult { iters, skipped: true, ..r }),
        })
        .collect())
}

/// Write each image of a finished batch and score it as saved; with facets
/// also summarise each target's facets.
fn save_batch(
    model: &Classifier,
    plan: &Plan,
    finished: &Finished,
) -> Result<(Vec<Outcome>, Vec<FacetSummary>)> {
    let config = plan.config;
    let jobs = &finished.jobs;
    let mut saved_pixels = Vec::with_capacity(jobs.len());
    let mut pngs = Vec::with_capacity(jobs.len());
    for (row, &job) in jobs.iter().enumerate() {
        let image = finished.images.f_narrow(0, row as i64, 1)?;
        let pixels = image_io::to_pixels(&image, &model.input, Display::Clamp)?;
        let shown = if config.stretch {
            image_io::to_pixels(&image, &model.input, Display::Stretch)?
        } else {
            pixels.clone()
        };
        pngs.push(image_io::PngJob {
            path: plan.path(job),
            pixels: shown,
            text: png_text(plan, job),
        });
        saved_pixels.push(pixels);
    }
    if let Some(canvas) = &finished.canvas {
        let mut canvases = Vec::with_capacity(pngs.len());
        for (row, png) in pngs.iter().enumerate() {
            let image = canvas.f_narrow(0, row as i64, 1)?;
            canvases.push(image_io::PngJob {
                path: suffixed(&png.path, "canvas"),
                pixels: image_io::to_pixels(&image, &model.input, Display::Clamp)?,
                text: png.text.clone(),
            });
        }
        image_io::write_pngs_atomic(&canvases)?;
    }
    image_io::write_pngs_atomic(&pngs)?;
    if let Some(alpha) = &finished.alpha {
        for (row, (png, pixels)) in pngs.iter().zip(&saved_pixels).enumerate() {
            let map = alpha.f_get(row as i64)?;
            let strength = saliency::normalised_map(&map, ALPHA_PERCENTILE)?;
            let bytes: Vec<u8> = strength.iter().map(|v| (v * 255.0).round() as u8).collect();
            image_io::write_rgba_png_atomic(&suffixed(&png.path, "alpha"), pixels, &bytes)?;
        }
    }
    // Score the images as saved (clamped to [0,1], 8-bit), not the unclamped
    // float tensors: that is what a reader of the PNG gets.
    let iters = plan.ascent.iters;
    let seconds = finished.seconds;
    let results: Vec<Outcome> = outcomes(model, plan, jobs, &saved_pixels)?
        .into_iter()
        .zip(&finished.stalled)
        .map(|(result, &stalled)| match result {
            Outcome::Class(r) => Outcome::Class(ClassResult { iters, seconds, stalled, ..r }),
            Outcome::Unit(r) => Outcome::Unit(UnitResult { iters, seconds, stalled, ..r }),
        })
        .collect();
    let facets = facet_summaries(model, plan, jobs, &saved_pixels, &results)?;
    Ok((results, facets))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs(indices: &[i64]) -> Vec<Job> {
        indices.iter().map(|&index| Job { index, facet: None }).collect()
    }

    fn plan(todo: &[i64], batch: usize, same_shape: bool) -> Vec<(Vec<i64>, usize)> {
        plan_batches(&jobs(todo), batch, same_shape)
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
}
