//! classviz: class model visualisation for TorchScript image classifiers.
//!
//! Reproduces Simonyan, Vedaldi & Zisserman, "Deep Inside Convolutional
//! Networks" (arXiv 1312.6034): starting from the zero image in the model's
//! zero-centred input space, gradient ascent on `S_c(I) − λ‖I‖²` finds an image
//! that the classifier scores highly for class `c`; adding the dataset mean
//! back and writing a PNG shows what the model has learned about that class.
//!
//! ```no_run
//! let config = classviz::cli::parse_args(["classviz", "--class", "100"]).unwrap();
//! if let classviz::cli::Parsed::Run(config) = config {
//!     classviz::run(&config).unwrap();
//! }
//! ```

pub mod ascent;
pub mod classes;
pub mod cli;
pub mod image_io;
pub mod metadata;
pub mod model;
pub mod report;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::ascent::AscentParams;
use crate::image_io::Display;
use crate::model::{Classifier, DeviceChoice, InputOverrides};
use crate::report::{ClassResult, Progress};

/// Everything one run needs, validated: the program's "high" configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The class as the user wrote it: an index or a name.
    pub class: String,
    pub ascent: AscentParams,
    pub model_path: PathBuf,
    pub overrides: InputOverrides,
    pub out_dir: PathBuf,
    pub device: DeviceChoice,
    pub seed: u64,
    pub threads: Option<usize>,
    pub stretch: bool,
    pub quiet: bool,
    pub json: bool,
}

/// The process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success = 0,
    /// The run failed: bad model, bad class, unwritable output, divergence.
    Failure = 1,
    /// The command line itself was wrong.
    Usage = 2,
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> ExitCode {
        ExitCode::from(status as u8)
    }
}

/// Visualise the configured class and write its PNG.
pub fn run(config: &Config) -> Result<()> {
    if let Some(threads) = config.threads {
        tch::set_num_threads(i32::try_from(threads).context("--threads is too large")?);
    }
    tch::manual_seed(config.seed as i64);
    image_io::ensure_writable_dir(&config.out_dir)?;

    let device = config.device.resolve()?;
    let model = Classifier::load(&config.model_path, device, &config.overrides)?;
    let class = model.labels.resolve(&config.class)?;
    let name = model.labels.name(class).to_string();

    let started = Instant::now();
    let progress = Progress::new(config.ascent.iters, config.quiet, &format!("{class} {name}"));
    let image = ascent::class_model(&model, class, &config.ascent, |step| progress.step(step))?;
    progress.finish();

    let path = config.out_dir.join(image_io::output_file_name(class, &name));
    let pixels = image_io::to_pixels(&image, &model.input, Display::Clamp)?;
    let shown = if config.stretch {
        image_io::to_pixels(&image, &model.input, Display::Stretch)?
    } else {
        pixels.clone()
    };
    let text =
        image_io::run_metadata(&config.model_path, class, &name, &config.ascent, config.seed);
    image_io::write_png_atomic(&path, &shown, &text)?;

    // Score the image as it was saved (clamped to [0,1], 8-bit), not the
    // unclamped float tensor: that is what a reader of the PNG gets.
    let scores = model.score_pixels(&pixels, class)?;
    let result = ClassResult {
        class,
        name,
        path: path.display().to_string(),
        logit: scores.logit,
        prob: scores.prob,
        top5: scores.top5(&model.labels),
        iters: config.ascent.iters,
        seconds: started.elapsed().as_secs_f64(),
    };
    report::print_result(&result, config.json)
}
