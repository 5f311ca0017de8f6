//! The main command's flags, in the groups `--help` shows them under: what
//! the images maximise, the preset and what overrides it, the output, the
//! model and the scale-out. Nothing is resolved here (every `None` is "the
//! preset's value"); `commands::visualise::plan` resolves them once.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use classviz_core::ascent::InitSpec;
use classviz_core::optim::OptimizerKind;
use classviz_core::param::{Colour, Param};
use classviz_core::presets::PresetName;
use classviz_core::schedule::LrDecay;
use classviz_engine::precision::Precision;
use classviz_records::classes::ClassSelection;
use classviz_records::input::ChannelValues;
use classviz_records::pixels::Fit;
use classviz_records::shard::{Shard, ShardSpec};

use crate::flags::model::{ModelArgs, Printing};
use crate::flags::values::*;

/// `--diversity`'s default.
pub const DEFAULT_DIVERSITY: f64 = 10.0;

/// `--class` / `--classes-file`.
#[derive(Args, Debug, Clone)]
pub struct ClassArgs {
    /// Classes: indices (100), names matched case-insensitively ("black swan"),
    /// ranges (0-99) and `all`, comma-separated: --class 1,100,flamingo.
    #[arg(long = "class", value_name = "C", value_parser = parse_class_list)]
    pub class: Option<String>,

    /// Read classes from a file: one index, name or range per line, `#` starts a comment.
    #[arg(long, value_name = "FILE")]
    pub classes_file: Option<PathBuf>,
}

/// The main command: visualise classes.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten, next_help_heading = "Objective")]
    pub target: TargetArgs,
    #[command(flatten, next_help_heading = "Preset")]
    pub preset: PresetArgs,
    #[command(flatten, next_help_heading = "Optimiser")]
    pub optimiser: OptimiserArgs,
    #[command(flatten, next_help_heading = "Transforms")]
    pub transforms: TransformArgs,
    #[command(flatten, next_help_heading = "MaCo")]
    pub maco: MacoArgs,
    #[command(flatten, next_help_heading = "Output")]
    pub output: OutputArgs,
    #[command(flatten, next_help_heading = "Model")]
    pub model: ModelArgs,
    #[command(flatten, next_help_heading = "Scale-out")]
    pub scale_out: ScaleOutArgs,
}

/// What the images maximise.
#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    #[command(flatten)]
    pub classes: ClassArgs,

    /// What to maximise: a class's logit (the paper's pre-softmax S_c), centred-logit (S_c
    /// less the mean score), log-prob or prob; or a unit of a tapped model (no --class):
    /// channel:TAP:K (channel K's mean activation),
    /// neuron:TAP:K (channel K at the centre), layer:TAP (DeepDream: mean squared activation).
    /// With channel:TAP or neuron:TAP, --channels lists the channels.
    #[arg(long, value_name = "OBJ", value_parser = parse_objective)]
    pub objective: Option<ObjectiveFlag>,

    /// The channels of the tap to show, batched: indices, ranges and all (e.g. 0-15).
    #[arg(long, value_name = "LIST")]
    pub channels: Option<String>,

    /// Images per class (or unit), optimised together and kept apart by a diversity penalty
    /// on their activations (Lucid; Nguyen et al. 2016): <index>_<name>_f<j>.png.
    #[arg(long, value_name = "N", value_parser = parse_facets)]
    pub facets: Option<u32>,

    /// Weight of the facets' diversity penalty: W × the mean pairwise cosine similarity of
    /// their Gram matrices at --diversity-tap.
    #[arg(long, value_name = "W", default_value_t = DEFAULT_DIVERSITY, value_parser = parse_non_negative_f64)]
    pub diversity: f64,

    /// The tap whose activations the diversity penalty compares [default: the middle tap].
    #[arg(long, value_name = "TAP")]
    pub diversity_tap: Option<String>,

    /// Feature accentuation (Hamblin et al. 2024): with --init image:PATH, keep the image
    /// near the photo by W × the mean squared difference of f(x) and f(photo), f the
    /// activations at --tap (the pixels without one), the photo seen through the same
    /// random views, while the image moves toward the class: <photo>_to_<index>_<name>.png.
    /// Start near 1 and lower W to let the class show more.
    #[arg(long, value_name = "W", value_parser = parse_non_negative_f64)]
    pub accentuate: Option<f64>,

    /// The tap where --accentuate compares the image's features with the photo's.
    #[arg(long, value_name = "TAP")]
    pub tap: Option<String>,
}

/// The preset and the settings every preset has.
#[derive(Args, Debug, Clone)]
pub struct PresetArgs {
    /// A named set of defaults; explicit flags override each of its values.
    #[arg(long, value_name = "P", value_parser = choice::<PresetName>(), default_value_t = PresetName::Simonyan)]
    pub preset: PresetName,

    /// Number of gradient-ascent steps.
    #[arg(long, value_name = "N", value_parser = parse_positive_u32)]
    pub iters: Option<u32>,

    /// Learning rate η: each step is x ← x + η·∇x(S_c(x) − λ‖x‖²) (for Adam, η bounds each
    /// parameter's step).
    #[arg(long, value_name = "η", value_parser = parse_positive_f64)]
    pub lr: Option<f64>,

    /// L2 regularisation weight λ on the zero-centred image.
    #[arg(long, value_name = "λ", value_parser = parse_non_negative_f64)]
    pub l2: Option<f64>,

    /// Where the ascent starts: zero (the paper: the mean image), noise:σ (Gaussian noise of σ
    /// in the model's zero-centred space, the way out of a stalled ascent), or image:PATH (a
    /// photo: pixels start at it, fourier at its spectrum, maco at its phase) [default: zero
    /// for pixels; a small random spectrum for fourier; a random phase for maco].
    #[arg(long, value_name = "zero|noise:σ|image:PATH", value_parser = parse_init)]
    pub init: Option<InitSpec>,

    /// How an --init image: photo is fitted to the canvas: crop (resize the shorter side,
    /// then centre-crop) or stretch.
    #[arg(long, value_name = "FIT", value_parser = choice::<Fit>(), default_value_t = Fit::Crop)]
    pub fit: Fit,

    /// Random seed (recorded in the PNG; the paper's ascent itself is deterministic).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
}

/// What is optimised, and how.
#[derive(Args, Debug, Clone)]
pub struct OptimiserArgs {
    /// What is optimised.
    #[arg(long, value_name = "P", value_parser = choice::<Param>())]
    pub param: Option<Param>,

    /// Colour space of the fourier and maco parameterisations.
    #[arg(long, value_name = "C", value_parser = choice::<Colour>())]
    pub colour: Option<Colour>,

    /// fourier: scale each frequency f by 1/f^P (Lucid: 1; larger damps fine texture).
    #[arg(long, value_name = "P", value_parser = parse_non_negative_f64)]
    pub decay: Option<f64>,

    /// How the gradient becomes a step.
    #[arg(long, value_name = "OPT", value_parser = choice::<OptimizerKind>())]
    pub optimizer: Option<OptimizerKind>,

    /// How the learning rate falls over the steps after any warm-up.
    #[arg(long, value_name = "S", value_parser = choice::<LrDecay>())]
    pub lr_schedule: Option<LrDecay>,

    /// The fraction of the steps (0 to 1) over which the learning rate ramps up linearly.
    #[arg(long, value_name = "F", value_parser = parse_fraction)]
    pub warmup: Option<f64>,

    /// Gaussian blur of the image every K steps, 0 never (Yosinski et al. 2015); pixel
    /// parameterisation.
    #[arg(long, value_name = "K")]
    pub blur_every: Option<u32>,

    /// σ of that blur, in pixels.
    #[arg(long, value_name = "S", value_parser = parse_non_negative_f64)]
    pub blur_sigma: Option<f64>,

    /// Zero pixels whose colour norm is below this percentile (0–100, 0 off) after each step
    /// (Yosinski et al. 2015).
    #[arg(long, value_name = "P", value_parser = parse_percentile)]
    pub clip_percentile: Option<f64>,

    /// Weight of a total-variation penalty Σ(Δx)²+(Δy)² (Mahendran & Vedaldi 2015).
    #[arg(long, value_name = "W", value_parser = parse_non_negative_f64)]
    pub tv: Option<f64>,

    /// The network's arithmetic. The image and its gradient stay fp32; saved images are
    /// scored in fp32.
    #[arg(long, value_name = "P", value_parser = choice::<Precision>(), default_value_t = Precision::Auto)]
    pub precision: Precision,
}

/// The random views of each step.
#[derive(Args, Debug, Clone)]
pub struct TransformArgs {
    /// Random views of each image per step, batched through the network as one pass; the
    /// objective is their mean (expectation over transformations).
    #[arg(long, value_name = "K", value_parser = parse_views)]
    pub views: Option<u32>,

    /// Random translation of up to ± PX pixels before every forward pass (Olah et al. 2017).
    #[arg(long, value_name = "PX")]
    pub jitter: Option<u32>,

    /// Scale factors, one drawn at random for every view: a list (0.9,1,1.1) or a range
    /// LOW..HIGH, taken in steps of 0.02 (Olah et al. 2017).
    #[arg(long, value_name = "S,S,…|LOW..HIGH", value_parser = parse_scales)]
    pub scale: Option<ChannelValues>,

    /// Random rotation of up to ± DEG degrees before every forward pass (Olah et al. 2017).
    #[arg(long, value_name = "DEG", value_parser = parse_non_negative_f64)]
    pub rotate: Option<f64>,

    /// Reflection padding in pixels before the random transforms (Olah et al. 2017).
    #[arg(long, value_name = "PX")]
    pub pad: Option<u32>,

    /// The views' strength on the last step as a fraction (0 to 1) of the first's: jitter,
    /// rotation and the scales' distance from 1 shrink linearly to it, and the smallest
    /// crop grows towards the largest (1: constant).
    #[arg(long, value_name = "F", value_parser = parse_fraction)]
    pub anneal: Option<f64>,

    /// σ of Gaussian noise, and half-width of uniform noise, added to every view (model units).
    #[arg(long, value_name = "σ", value_parser = parse_non_negative_f64)]
    pub view_noise: Option<f64>,
}

/// MaCo's canvas, crops and spectrum.
#[derive(Args, Debug, Clone)]
pub struct MacoArgs {
    /// Optimise a canvas this many times the model's input side (1 to 8); the class image is its
    /// central view at the mean crop size, and the whole canvas goes to <index>_<name>_canvas.png.
    #[arg(long, value_name = "X", value_parser = parse_canvas)]
    pub canvas: Option<f64>,

    /// Views are square crops of the canvas whose side is a random fraction LOW..HIGH of the
    /// canvas side, placed around its centre (MaCo), instead of pad/jitter/scale/rotate.
    #[arg(long, value_name = "LOW..HIGH", value_parser = parse_crop_box)]
    pub crop_box: Option<(f64, f64)>,

    /// Also write <index>_<name>_alpha.png: the image with an alpha channel from the
    /// accumulated |∂objective/∂image| (MaCo's attribution), so that what matters stands out.
    #[arg(long)]
    pub alpha: bool,

    /// MaCo's natural magnitude spectrum [default: maco_magnitude.npy, found like the default model].
    #[arg(long, value_name = "PATH")]
    pub magnitude: Option<PathBuf>,
}

/// Where results go and how they look.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Output folder; images are written to <out>/<index>_<name>.png.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub out: PathBuf,

    /// Redo classes whose image already exists in --out (they are skipped otherwise).
    #[arg(long)]
    pub force: bool,

    /// Also write <out>/grid.png: every image of the class list found in --out, labelled.
    #[arg(long)]
    pub grid: bool,

    /// Also write or refresh <out>/index.html, a page to browse the folder (classviz gallery).
    #[arg(long)]
    pub gallery: bool,

    /// Also write every K-th step's image to <out>/frames/<index>_<name>/<step>.png.
    #[arg(long, value_name = "K", value_parser = parse_positive_u32)]
    pub save_every: Option<u32>,

    /// Also write an animated GIF of the optimisation next to each PNG (a frame every
    /// --save-every steps, else 50 frames in all).
    #[arg(long)]
    pub gif: bool,

    /// Stretch contrast for display (1st–99th percentile to full range); off keeps the paper's clamp to [0,1].
    #[arg(long)]
    pub stretch: bool,

    /// Resolve the run and print its plan (device, engine, batch, the preset's values, the
    /// images it would write and those it would skip, and why) without running the network.
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub printing: Printing,
}

/// Batching and sharding.
#[derive(Args, Debug, Clone)]
pub struct ScaleOutArgs {
    /// Classes optimised together in one forward/backward pass.
    #[arg(long, value_name = "N", value_parser = parse_positive_usize)]
    pub batch: Option<usize>,

    /// Run only shard K of N (0-based): the classes at list positions p with p mod N = K.
    /// `auto` reads Slurm array variables; `auto/N` also Kubernetes Indexed Jobs (N shards).
    #[arg(long, value_name = "K/N|auto[/N]", value_parser = parse_shard)]
    pub shard: Option<ShardSpec>,

    /// `--shard auto/N`, spelled as in classviz 0.1 (hidden; CHANGELOG.md).
    #[arg(long, value_name = "N", value_parser = parse_positive_usize, hide = true)]
    pub shards: Option<usize>,
}

impl ClassArgs {
    pub fn given(&self) -> bool {
        self.class.is_some() || self.classes_file.is_some()
    }

    /// The classes as written, resolved against the model's labels later.
    pub fn selection(&self) -> ClassSelection {
        ClassSelection { list: self.class.clone(), file: self.classes_file.clone() }
    }
}

impl TargetArgs {
    /// `--objective` as given, else a class's score (the preset's: the plan resolves it).
    pub fn objective(&self) -> ObjectiveFlag {
        self.objective.clone().unwrap_or_default()
    }

    /// The channels a channel or neuron objective shows, as written: `--channels`,
    /// or the K of `channel:TAP:K`.
    pub fn channel_list(&self) -> Option<String> {
        self.channels.clone().or(self.objective().unit.map(|unit| unit.to_string()))
    }

    /// A class objective needs classes; a unit objective takes channels instead.
    fn check(&self) -> Result<()> {
        let has_classes = self.classes.given();
        let spec = &self.objective();
        let layer = spec.kind == ObjectiveKind::Layer;
        match (spec.is_unit(), spec.unit, &self.channels) {
            (false, _, _) if !has_classes => bail!("the following required arguments were not provided: --class <C> (or --classes-file; or a unit --objective)"),
            (false, _, Some(_)) => bail!("--channels needs a channel or neuron --objective (channel:TAP, neuron:TAP)"),
            (true, _, _) if has_classes => {
                bail!("--objective {spec} shows a unit, not a class: drop --class and --classes-file")
            }
            (true, Some(unit), Some(_)) => bail!("--objective {spec}:{unit} names its channel already: drop --channels"),
            (true, _, Some(_)) if layer => bail!("--channels does not apply to a layer objective"),
            (true, None, None) if !layer => bail!("--objective {spec} needs a channel: {spec}:K, or --channels LIST"),
            _ => Ok(()),
        }
    }
}

impl ScaleOutArgs {
    /// `--shard`, with the old `--shards N` folded into `auto/N`.
    pub fn shard(&self) -> Result<Option<ShardSpec>> {
        Ok(match (self.shard, self.shards) {
            (spec, None) => spec,
            (Some(ShardSpec::Auto(None)), Some(count)) => Some(ShardSpec::Auto(Some(count))),
            (Some(ShardSpec::Auto(Some(n))), Some(count))
            | (Some(ShardSpec::Fixed(Shard { count: n, .. })), Some(count))
                if n != count =>
            {
                bail!("--shards {count} disagrees with --shard's {n} shards")
            }
            (Some(spec), Some(_)) => Some(spec),
            (None, Some(_)) => {
                bail!("--shards N goes with --shard auto (now spelled --shard auto/N)")
            }
        })
    }
}

impl RunArgs {
    /// What clap cannot check: the targets' flags fit each other, and the shards.
    pub fn check(&self) -> Result<()> {
        self.target.check()?;
        self.scale_out.shard().map(|_| ())
    }
}
