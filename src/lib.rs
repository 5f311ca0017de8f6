//! classviz: class model visualisation for TorchScript image classifiers.
//!
//! Reproduces Simonyan, Vedaldi & Zisserman, "Deep Inside Convolutional
//! Networks" (arXiv 1312.6034): starting from the zero image in the model's
//! zero-centred input space, gradient ascent on `S_c(I) − λ‖I‖²` finds an image
//! that the classifier scores highly for class `c`; adding the dataset mean
//! back and writing a PNG shows what the model has learned about that class.
//! Many classes run as batches; finished images survive interruption.
//!
//! ```no_run
//! use classviz::cli::{parse_args, Parsed};
//! if let Parsed::Run(task) = parse_args(["classviz", "--class", "100,130"])? {
//!     classviz::execute(&task)?;
//! }
//! # Ok::<(), anyhow::Error>(())
//! ```

pub mod ascent;
pub mod classes;
pub mod cli;
pub mod commands;
pub mod grid;
pub mod image_io;
pub mod metadata;
pub mod model;
pub mod natural;
pub mod report;
pub mod saliency;
pub mod shard;

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use tch::{Device, Tensor};

use crate::ascent::{AscentParams, Stopped};
use crate::image_io::Display;
use crate::model::{Classifier, DeviceChoice, InputOverrides};
use crate::report::{ClassResult, Progress, RunParams, SummaryLine};
use crate::shard::{Shard, ShardSpec};

/// Default `--batch` on the CPU: the fastest per class in `bench/run.py` on a
/// 2-core machine (see README, "Performance").
pub const DEFAULT_CPU_BATCH: usize = 4;
/// Default `--batch` on CUDA. Not yet measured on a GPU (see README).
pub const DEFAULT_CUDA_BATCH: usize = 64;

/// What the command line asked for.
#[derive(Debug, Clone)]
pub enum Task {
    /// The main job: visualise classes.
    Visualise(Config),
    /// `classviz status`: which classes of a list are done in a folder.
    Status(StatusConfig),
    /// `classviz info`: what classviz makes of a model.
    Info(InfoConfig),
    /// `classviz saliency`: saliency maps of photos.
    Saliency(SaliencyConfig),
    /// `classviz score`: does a model see the intended class in images?
    Score(ScoreConfig),
}

/// Run a task; the status is the process's exit status.
pub fn execute(task: &Task) -> Result<Status> {
    match task {
        Task::Visualise(config) => run(config),
        Task::Status(config) => commands::status(config),
        Task::Info(config) => commands::info(config),
        Task::Saliency(config) => commands::explain(config),
        Task::Score(config) => commands::score(config),
    }
}

/// Which model, how to feed it, where to run it.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub path: PathBuf,
    pub overrides: InputOverrides,
    pub device: DeviceChoice,
    pub threads: Option<usize>,
}

impl ModelConfig {
    /// Apply the thread count and load the model on the chosen device; its
    /// warnings go to stderr once.
    pub fn load(&self) -> Result<Classifier> {
        if let Some(threads) = self.threads {
            tch::set_num_threads(i32::try_from(threads).context("--threads is too large")?);
        }
        let device = self.device.resolve()?;
        if device.is_cuda() {
            // Fixed input shapes: let cuDNN pick its fastest algorithms once.
            tch::Cuda::cudnn_set_benchmark(true);
        }
        let model = Classifier::load(&self.path, device, &self.overrides)?;
        for warning in &model.warnings {
            eprintln!("classviz: warning: {warning}");
        }
        Ok(model)
    }
}

/// Everything one visualisation run needs, validated: the program's "high" configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub classes: ClassSelection,
    pub ascent: AscentParams,
    pub model: ModelConfig,
    pub out_dir: PathBuf,
    /// Classes per forward/backward pass; `None` picks the device's default.
    pub batch: Option<usize>,
    pub force: bool,
    pub grid: bool,
    /// `--save-every K`: intermediate PNGs under `<out>/frames/`.
    pub save_every: Option<u32>,
    /// `--gif`: an animated GIF of the optimisation next to each PNG.
    pub gif: bool,
    /// Run only part of the class list (`--shard`), with `--shards` for `auto`.
    pub shard: Option<ShardSpec>,
    pub shards: Option<usize>,
    pub seed: u64,
    pub stretch: bool,
    pub quiet: bool,
    pub json: bool,
}

/// `classviz score`.
#[derive(Debug, Clone)]
pub struct ScoreConfig {
    pub images: Vec<PathBuf>,
    pub class: Option<String>,
    pub fit: saliency::Fit,
    pub model: ModelConfig,
    pub json: bool,
}

/// `classviz saliency`.
#[derive(Debug, Clone)]
pub struct SaliencyConfig {
    pub images: Vec<PathBuf>,
    /// The class as written; `None` explains each photo's top-1.
    pub class: Option<String>,
    pub method: saliency::Method,
    pub fit: saliency::Fit,
    pub draw_box: bool,
    pub model: ModelConfig,
    pub out_dir: PathBuf,
    pub seed: u64,
    pub json: bool,
}

/// `classviz info`.
#[derive(Debug, Clone)]
pub struct InfoConfig {
    pub model: ModelConfig,
    pub json: bool,
}

/// `classviz status`.
#[derive(Debug, Clone)]
pub struct StatusConfig {
    pub classes: ClassSelection,
    pub model: ModelConfig,
    pub out_dir: PathBuf,
    pub json: bool,
}

/// `--class` and `--classes-file`, as written; resolved against the model's labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassSelection {
    pub list: Option<String>,
    pub file: Option<PathBuf>,
}

impl ClassSelection {
    /// The classes in order, duplicates removed (first occurrence kept).
    pub fn resolve(&self, labels: &classes::Labels) -> Result<Vec<i64>> {
        let mut resolved = Vec::new();
        if let Some(list) = &self.list {
            resolved.extend(labels.resolve_list(list)?);
        }
        if let Some(file) = &self.file {
            resolved.extend(labels.resolve_file(file)?);
        }
        Ok(classes::dedup_keep_order(resolved))
    }
}

/// The process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success = 0,
    /// The run failed: bad model, bad class, unwritable output, divergence.
    Failure = 1,
    /// The command line itself was wrong.
    Usage = 2,
    /// Ctrl-C or SIGTERM: finished images are kept; rerun to finish.
    Interrupted = 130,
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> ExitCode {
        ExitCode::from(status as u8)
    }
}

/// Set by Ctrl-C / SIGTERM; the ascent stops at its next step.
static STOP: AtomicBool = AtomicBool::new(false);

fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Visualise the configured classes, batch by batch, skipping finished ones.
pub fn run(config: &Config) -> Result<Status> {
    // Without a handler (e.g. one was already installed) the default
    // signal behaviour still never leaves a partial PNG: writes are atomic.
    let _ = ctrlc::set_handler(|| STOP.store(true, Ordering::Relaxed));
    let shard = match config.shard {
        Some(spec) => spec.resolve_from_env(config.shards)?,
        None => Shard::ALL,
    };
    natural::validate(&config.ascent.style)?;
    tch::manual_seed(config.seed as i64);
    image_io::ensure_writable_dir(&config.out_dir)?;
    image_io::remove_stale_temp_files(&config.out_dir)?;

    let model = config.model.load()?;
    let device = model.device;
    let classes = config.classes.resolve(&model.labels)?;
    let batch = config.batch.unwrap_or(match device {
        Device::Cpu => DEFAULT_CPU_BATCH,
        _ => DEFAULT_CUDA_BATCH,
    });
    let params = RunParams {
        model: config.model.path.display().to_string(),
        lr: config.ascent.learning_rate,
        l2: config.ascent.l2_weight,
        seed: config.seed,
        device: format!("{device:?}").to_lowercase(),
        batch,
    };

    let mine = shard.select(&classes);
    let (todo, done): (Vec<i64>, Vec<i64>) = mine.iter().partition(|&&class| {
        config.force || !image_io::class_image_path(&config.out_dir, class, &model.labels).exists()
    });
    let progress = Progress::new(todo.len(), config.ascent.iters, config.quiet);
    if shard != Shard::ALL {
        progress.note(&format!("shard {shard}: {} of {} classes", mine.len(), classes.len()));
    }
    if !done.is_empty() {
        progress.note(&format!(
            "skipping {} of {} classes already in {} (--force redoes them)",
            done.len(),
            mine.len(),
            config.out_dir.display()
        ));
        // Still report them: a script asking for these classes gets a line for each.
        for chunk in done.chunks(batch) {
            for result in score_existing(&model, chunk, config)? {
                report::print_result(&result, config.json)?;
            }
        }
    }

    let mut finished = 0;
    let mut interrupted = stop_requested();
    for chunk in todo.chunks(batch) {
        if interrupted {
            break;
        }
        let label = chunk.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
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
        let ascent = match ascent::optimise(&model, chunk, &config.ascent, on_step) {
            Ok(ascent) => ascent,
            Err(err) if err.is::<Stopped>() => {
                interrupted = true;
                break;
            }
            Err(err) => return Err(err),
        };
        let seconds = started.elapsed().as_secs_f64() / chunk.len() as f64;
        let saved = save_batch(&model, chunk, &ascent.images, config, seconds)?;
        if !ascent.frames.is_empty() {
            save_frames(&model, chunk, &ascent.frames, config)?;
        }
        for result in &saved {
            report::print_result(result, config.json)?;
            let line = SummaryLine { result, params: &params };
            report::append_summary(&config.out_dir.join(report::SUMMARY_FILE), &line)?;
        }
        finished += chunk.len();
        progress.classes_done(chunk.len());
        interrupted |= stop_requested();
    }
    progress.finish();

    if config.grid {
        let (path, tiles) = grid::write_grid(&config.out_dir, &classes, &model.labels)?;
        progress.note(&format!("wrote {} ({tiles} tiles)", path.display()));
    }
    if interrupted {
        progress.note(&format!(
            "interrupted: {finished} of {} classes finished and kept; run the same command again to finish the rest",
            todo.len()
        ));
        return Ok(Status::Interrupted);
    }
    Ok(Status::Success)
}

/// Delay between GIF frames.
const GIF_FRAME_MS: u32 = 80;

/// Write the kept frames: PNGs under `<out>/frames/<stem>/` (`--save-every`)
/// and an animated GIF next to each image (`--gif`).
fn save_frames(
    model: &Classifier,
    classes: &[i64],
    frames: &[(u32, Tensor)],
    config: &Config,
) -> Result<()> {
    for (row, &class) in classes.iter().enumerate() {
        let path = image_io::class_image_path(&config.out_dir, class, &model.labels);
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
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
            image_io::write_gif_atomic(&path.with_extension("gif"), &pixels, GIF_FRAME_MS)?;
        }
    }
    Ok(())
}

/// Re-score images already in `--out` (skipped classes), as saved.
fn score_existing(
    model: &Classifier,
    classes: &[i64],
    config: &Config,
) -> Result<Vec<ClassResult>> {
    let mut pixels = Vec::with_capacity(classes.len());
    let mut iters = Vec::with_capacity(classes.len());
    for &class in classes {
        let path = image_io::class_image_path(&config.out_dir, class, &model.labels);
        pixels.push(saliency::load_photo(&path, &model.input, saliency::Fit::Stretch)?.pixels);
        let text = image_io::read_png_text(&path).unwrap_or_default();
        let recorded =
            text.iter().find(|(key, _)| key == "iters").and_then(|(_, value)| value.parse().ok());
        iters.push(recorded.unwrap_or(config.ascent.iters));
    }
    let scores = model.score_images(&pixels, classes)?;
    Ok(classes
        .iter()
        .zip(&scores)
        .zip(iters)
        .map(|((&class, scores), iters)| {
            let path = image_io::class_image_path(&config.out_dir, class, &model.labels);
            ClassResult::from_scores(class, &model.labels, &path, scores, iters, 0.0, true)
        })
        .collect())
}

/// Write each image of a finished batch and score it as saved.
fn save_batch(
    model: &Classifier,
    classes: &[i64],
    images: &Tensor,
    config: &Config,
    seconds: f64,
) -> Result<Vec<ClassResult>> {
    let mut saved_pixels = Vec::with_capacity(classes.len());
    let mut paths = Vec::with_capacity(classes.len());
    for (row, &class) in classes.iter().enumerate() {
        let image = images.f_narrow(0, row as i64, 1)?;
        let pixels = image_io::to_pixels(&image, &model.input, Display::Clamp)?;
        let shown = if config.stretch {
            image_io::to_pixels(&image, &model.input, Display::Stretch)?
        } else {
            pixels.clone()
        };
        let name = model.labels.name(class);
        let text =
            image_io::run_metadata(&config.model.path, class, name, &config.ascent, config.seed);
        let path = image_io::class_image_path(&config.out_dir, class, &model.labels);
        image_io::write_png_atomic(&path, &shown, &text)?;
        saved_pixels.push(pixels);
        paths.push(path);
    }
    // Score the images as saved (clamped to [0,1], 8-bit), not the unclamped
    // float tensors: that is what a reader of the PNG gets.
    let scores = model.score_images(&saved_pixels, classes)?;
    Ok(classes
        .iter()
        .zip(&scores)
        .zip(paths)
        .map(|((&class, scores), path)| {
            ClassResult::from_scores(
                class,
                &model.labels,
                &path,
                scores,
                config.ascent.iters,
                seconds,
                false,
            )
        })
        .collect())
}
