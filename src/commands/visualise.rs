//! The main job: class model visualisation for a list of classes, batch by
//! batch, skipping finished classes, with every finished image kept on
//! interruption.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use tch::{Device, Tensor};

use crate::ascent::{self, AscentParams, Stopped};
use crate::classes::{self, ClassSelection};
use crate::exit::Status;
use crate::files;
use crate::grid;
use crate::image_io::{self, Display, Fit};
use crate::knobs;
use crate::model::{self, Classifier, ModelConfig};
use crate::natural;
use crate::report::{self, ClassResult, Progress, RunParams, SummaryLine};
use crate::saliency;
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
    let classes = config.classes.resolve(&model.labels)?;
    let batch = config.batch.unwrap_or(match device {
        Device::Cpu => DEFAULT_CPU_BATCH,
        _ => DEFAULT_CUDA_BATCH,
    });
    let mut ascent_params = config.ascent.clone();
    if device.is_cuda() {
        ascent_params.check_every = CUDA_CHECK_EVERY;
    }
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
    let batches = plan_batches(&todo, batch, device.is_cuda());
    if let Some(first) = batches.first() {
        model.check_batch_fits(first.classes.len())?;
    }
    model::enable_cudnn_benchmark(device, batches.len());
    // A second instance scores the saved images, so that the optimising one
    // never leaves gradient mode; one short batch is not worth its load.
    let twin = if knobs::twin_scorer(batches.len()) { Some(model.twin()?) } else { None };
    let scorer = twin.as_ref().unwrap_or(&model);
    knobs::trace(|| format!("{} batches planned, twin scorer: {}", batches.len(), twin.is_some()));

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
            for result in score_existing(scorer, chunk, config)? {
                report::print_result(&result, config.json)?;
            }
        }
    }

    let mut interrupted = stop_requested();
    let (totals, optimised) = std::thread::scope(|scope| -> Result<(WriterTotals, Result<()>)> {
        let (sender, receiver) = mpsc::sync_channel::<Finished>(WRITER_QUEUE);
        let writer = scope.spawn(|| write_batches(receiver, scorer, config, &params, &progress));
        let optimised = (|| -> Result<()> {
            for (index, planned) in batches.iter().enumerate() {
                if interrupted {
                    break;
                }
                let label = planned.real().iter().map(i64::to_string).collect::<Vec<_>>().join(",");
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
                let result = ascent::optimise(&model, &planned.classes, &ascent_params, on_step);
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
        let list = totals.stalled.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        progress.note(&format!(
            "{} of {} classes stalled ({list}); rerun them with --init noise:0.01 --force",
            totals.stalled.len(),
            totals.written
        ));
    }
    if config.grid {
        let (path, tiles) = grid::write_grid(&config.out_dir, &classes, &model.labels)?;
        progress.note(&format!("wrote {} ({tiles} tiles)", path.display()));
    }
    if interrupted {
        progress.note(&format!(
            "interrupted: {} of {} classes finished and kept; run the same command again to finish the rest",
            totals.written,
            todo.len()
        ));
        return Ok(Status::Interrupted);
    }
    Ok(Status::Success)
}

/// The alpha map is fully opaque from this percentile of its attribution up.
const ALPHA_PERCENTILE: f64 = 99.0;

/// `<out>/<index>_<slug>_<what>.png` beside the class image (alpha, canvas).
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

/// One batch of the run: its classes, and how many are real (the rest pad it).
struct Batch {
    classes: Vec<i64>,
    real: usize,
}

impl Batch {
    fn real(&self) -> &[i64] {
        &self.classes[..self.real]
    }
}

/// Split `todo` into batches of at most `batch` classes. With `same_shape`
/// (CUDA) the batches are as even as possible and the last is padded with
/// repeats of its own classes, so that every step has the same input shape:
/// a smaller last batch would cost a new cuDNN search and a new graph
/// specialisation. The padding's images are dropped.
fn plan_batches(todo: &[i64], batch: usize, same_shape: bool) -> Vec<Batch> {
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
            let mut classes = chunk.to_vec();
            if same_shape {
                let mut repeats = chunk.iter().cycle();
                while classes.len() < size {
                    classes.extend(repeats.next());
                }
            }
            Batch { classes, real: chunk.len() }
        })
        .collect()
}

/// A finished batch on the host, for the writer.
struct Finished {
    classes: Vec<i64>,
    /// `[N, C, H, W]` in the model's space, on the CPU.
    images: Tensor,
    /// Kept frames, on the CPU.
    frames: Vec<(u32, Tensor)>,
    /// With `--alpha`: the accumulated attribution `[N, H, W]`, on the CPU.
    alpha: Option<Tensor>,
    /// With MaCo crops: the whole canvases, on the CPU.
    canvas: Option<Tensor>,
    stalled: Vec<bool>,
    /// Optimisation time per class.
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
            classes: batch.real().to_vec(),
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
    stalled: Vec<i64>,
}

/// The writer thread: PNGs (and frames), scores of the saved images, result
/// lines and summary lines, batch by batch in order.
fn write_batches(
    receiver: mpsc::Receiver<Finished>,
    scorer: &Classifier,
    config: &Config,
    params: &RunParams,
    progress: &Progress,
) -> Result<WriterTotals> {
    model::use_jit_mode(scorer.device)?;
    let mut totals = WriterTotals { written: 0, stalled: Vec::new() };
    for finished in receiver {
        let saved = save_batch(scorer, &finished, config)?;
        if !finished.frames.is_empty() {
            save_frames(scorer, &finished.classes, &finished.frames, config)?;
        }
        for result in &saved {
            if result.stalled {
                progress.note(&stall_warning(result, &config.ascent));
                totals.stalled.push(result.class);
            }
            report::print_result(result, config.json)?;
            let line = SummaryLine { result, params };
            report::append_summary(&config.out_dir.join(report::SUMMARY_FILE), &line)?;
        }
        totals.written += saved.len();
        progress.classes_done(saved.len());
    }
    Ok(totals)
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
    finished: &Finished,
    config: &Config,
) -> Result<Vec<ClassResult>> {
    let classes = &finished.classes;
    let mut saved_pixels = Vec::with_capacity(classes.len());
    let mut jobs = Vec::with_capacity(classes.len());
    for (row, &class) in classes.iter().enumerate() {
        let image = finished.images.f_narrow(0, row as i64, 1)?;
        let pixels = image_io::to_pixels(&image, &model.input, Display::Clamp)?;
        let shown = if config.stretch {
            image_io::to_pixels(&image, &model.input, Display::Stretch)?
        } else {
            pixels.clone()
        };
        let name = model.labels.name(class);
        jobs.push(image_io::PngJob {
            path: classes::class_image_path(&config.out_dir, class, &model.labels),
            pixels: shown,
            text: png_text(&config.model.path, class, name, &config.ascent),
        });
        saved_pixels.push(pixels);
    }
    if let Some(canvas) = &finished.canvas {
        let mut canvases = Vec::with_capacity(jobs.len());
        for (row, job) in jobs.iter().enumerate() {
            let image = canvas.f_narrow(0, row as i64, 1)?;
            canvases.push(image_io::PngJob {
                path: suffixed(&job.path, "canvas"),
                pixels: image_io::to_pixels(&image, &model.input, Display::Clamp)?,
                text: job.text.clone(),
            });
        }
        image_io::write_pngs_atomic(&canvases)?;
    }
    image_io::write_pngs_atomic(&jobs)?;
    if let Some(alpha) = &finished.alpha {
        for (row, (job, pixels)) in jobs.iter().zip(&saved_pixels).enumerate() {
            let map = alpha.f_get(row as i64)?;
            let strength = saliency::normalised_map(&map, ALPHA_PERCENTILE)?;
            let bytes: Vec<u8> = strength.iter().map(|v| (v * 255.0).round() as u8).collect();
            image_io::write_rgba_png_atomic(&suffixed(&job.path, "alpha"), pixels, &bytes)?;
        }
    }
    let paths = jobs.into_iter().map(|job| job.path);
    // Score the images as saved (clamped to [0,1], 8-bit), not the unclamped
    // float tensors: that is what a reader of the PNG gets.
    let scores = model.score_images(&saved_pixels, classes)?;
    Ok(classes
        .iter()
        .zip(&scores)
        .zip(paths)
        .zip(&finished.stalled)
        .map(|(((&class, scores), path), &stalled)| {
            let result = ClassResult::from_scores(class, &model.labels, &path, scores);
            ClassResult { iters: config.ascent.iters, seconds: finished.seconds, stalled, ..result }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(todo: &[i64], batch: usize, same_shape: bool) -> Vec<(Vec<i64>, usize)> {
        plan_batches(todo, batch, same_shape).into_iter().map(|b| (b.classes, b.real)).collect()
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
