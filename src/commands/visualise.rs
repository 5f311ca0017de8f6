//! The main job: class model visualisation for a list of classes, batch by
//! batch, skipping finished classes, with every finished image kept on
//! interruption.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use tch::{Device, Tensor};

use crate::ascent::{self, AscentParams, Stopped};
use crate::classes::{self, ClassSelection};
use crate::exit::Status;
use crate::files;
use crate::grid;
use crate::image_io::{self, Display, Fit};
use crate::model::{Classifier, ModelConfig};
use crate::report::{self, ClassResult, Progress, RunParams, SummaryLine};
use crate::shard::{Shard, ShardSpec};

/// Default `--batch` on the CPU: the fastest per class in `bench/run.py` on a
/// 2-core machine (see README, "Performance").
pub const DEFAULT_CPU_BATCH: usize = 4;
/// Default `--batch` on CUDA. Not yet measured on a GPU (see README).
pub const DEFAULT_CUDA_BATCH: usize = 64;
/// Delay between GIF frames.
const GIF_FRAME_MS: u32 = 80;

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
    crate::natural::validate(&config.ascent.style)?;
    tch::manual_seed(config.seed as i64);
    files::ensure_writable_dir(&config.out_dir)?;
    files::remove_stale_temp_files(&config.out_dir)?;

    let model = report::with_warnings(config.model.load()?);
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
        config.force || !classes::class_image_path(&config.out_dir, class, &model.labels).exists()
    });
    if !todo.is_empty() {
        model.check_batch_fits(batch.min(todo.len()))?;
    }
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
    let mut stalled = Vec::new();
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
        let saved = save_batch(&model, chunk, &ascent, config, seconds)?;
        if !ascent.frames.is_empty() {
            save_frames(&model, chunk, &ascent.frames, config)?;
        }
        for result in &saved {
            if result.stalled {
                progress.note(&stall_warning(result, &config.ascent));
                stalled.push(result.class);
            }
            report::print_result(result, config.json)?;
            let line = SummaryLine { result, params: &params };
            report::append_summary(&config.out_dir.join(report::SUMMARY_FILE), &line)?;
        }
        finished += chunk.len();
        progress.classes_done(chunk.len());
        interrupted |= stop_requested();
    }
    progress.finish();

    if !stalled.is_empty() {
        let list = stalled.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        progress.note(&format!(
            "{} of {finished} classes stalled ({list}); rerun them with --init noise:0.01 --force",
            stalled.len()
        ));
    }
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

/// One warning line for a class whose ascent stalled.
fn stall_warning(result: &ClassResult, params: &AscentParams) -> String {
    let start = params.init.map_or("its start".to_string(), |init| format!("the {init} start"));
    format!(
        "warning: class {} ({}): the ascent stalled (the gradient was exactly zero on its last {} steps, or the image never left {start}), so {} shows no class model; try --init noise:0.01",
        result.class,
        result.name,
        ascent::STALL_STEPS.min(params.iters),
        result.path
    )
}

/// The text chunks recorded in each PNG: enough to reproduce the run.
fn png_text(model: &Path, class: i64, name: &str, params: &AscentParams) -> Vec<(String, String)> {
    let mut text = vec![
        ("Software", format!("classviz {}", env!("CARGO_PKG_VERSION"))),
        ("model", model.display().to_string()),
        ("class", class.to_string()),
        ("class_name", name.to_string()),
        ("iters", params.iters.to_string()),
        ("lr", params.learning_rate.to_string()),
        ("l2", params.l2_weight.to_string()),
        ("seed", params.seed.to_string()),
        ("version", env!("CARGO_PKG_VERSION").to_string()),
        ("style", format!("{:?}", params.style)),
    ];
    if let Some(init) = params.init {
        text.push(("init", init.to_string()));
    }
    text.into_iter().map(|(key, value)| (key.to_string(), value)).collect()
}

/// Write the kept frames: PNGs under `<out>/frames/<stem>/` (`--save-every`)
/// and an animated GIF next to each image (`--gif`).
fn save_frames(
    model: &Classifier,
    classes: &[i64],
    frames: &[(u32, Tensor)],
    config: &Config,
) -> Result<()> {
    for (row, &class) in classes.iter().enumerate() {
        let path = classes::class_image_path(&config.out_dir, class, &model.labels);
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
        let path = classes::class_image_path(&config.out_dir, class, &model.labels);
        pixels.push(image_io::load_photo(&path, &model.input, Fit::Stretch)?.pixels);
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
            let path = classes::class_image_path(&config.out_dir, class, &model.labels);
            let result = ClassResult::from_scores(class, &model.labels, &path, scores);
            ClassResult { iters, skipped: true, ..result }
        })
        .collect())
}

/// Write each image of a finished batch and score it as saved.
fn save_batch(
    model: &Classifier,
    classes: &[i64],
    ascent: &ascent::Ascent,
    config: &Config,
    seconds: f64,
) -> Result<Vec<ClassResult>> {
    let mut saved_pixels = Vec::with_capacity(classes.len());
    let mut paths = Vec::with_capacity(classes.len());
    for (row, &class) in classes.iter().enumerate() {
        let image = ascent.images.f_narrow(0, row as i64, 1)?;
        let pixels = image_io::to_pixels(&image, &model.input, Display::Clamp)?;
        let shown = if config.stretch {
            image_io::to_pixels(&image, &model.input, Display::Stretch)?
        } else {
            pixels.clone()
        };
        let name = model.labels.name(class);
        let text = png_text(&config.model.path, class, name, &config.ascent);
        let path = classes::class_image_path(&config.out_dir, class, &model.labels);
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
        .zip(&ascent.stalled)
        .map(|(((&class, scores), path), &stalled)| {
            let result = ClassResult::from_scores(class, &model.labels, &path, scores);
            ClassResult { iters: config.ascent.iters, seconds, stalled, ..result }
        })
        .collect())
}
