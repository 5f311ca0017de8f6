//! The ascent's settings, resolved once: the preset's, overridden by every
//! flag given, completed for the model (padding and jitter scaled to its
//! input, taps resolved, MaCo's spectrum and a start photo read) and the
//! device (its views and check cadence).

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use classviz_core::ascent::start::OFF_ZERO_NOISE;
use classviz_core::ascent::{Accentuation, AscentParams, Facets, Init, InitSpec, StartPhoto};
use classviz_core::objective::Objective;
use classviz_core::param::Param;
use classviz_core::presets::{Preset, PresetName, Style};
use classviz_core::spectrum::Magnitude;
use classviz_core::views::{canvas_spec, scaled_pixels};
use classviz_engine::model::ModelInfo;
use classviz_records::exit::usage_error;
use classviz_records::pixels;
use tch::Device;

use crate::flags::run::{OutputArgs, RunArgs, TargetArgs};
use crate::flags::values::{ObjectiveFlag, ObjectiveKind};
use crate::home;

/// Steps between host syncs on CUDA (divergence check and progress); the
/// CPU checks every step, where copying the scores costs nothing.
pub const CUDA_CHECK_EVERY: u32 = 25;
/// Frames in a GIF when `--save-every` does not say.
const GIF_FRAMES: u32 = 50;
/// Frames kept in memory per batch for `--gif` / `--save-every`, at most.
pub const MAX_FRAMES: u32 = 1000;

/// The ascent's settings: the preset's, overridden by every flag given,
/// completed for this model and device.
pub fn resolve_ascent(
    args: &RunArgs,
    name: PresetName,
    model: &ModelInfo,
    device: Device,
) -> Result<AscentParams> {
    let preset = name.preset();
    let style = resolve_style(args, &preset, model, device)?;
    let iters = args.preset.iters.unwrap_or(preset.iters);
    Ok(AscentParams {
        iters,
        learning_rate: args.preset.lr.unwrap_or(preset.learning_rate),
        l2_weight: args.preset.l2.unwrap_or(preset.l2_weight),
        objective: resolve_objective(args.target.objective.as_ref(), &preset, model)?,
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

/// The objective: `--objective` with its tap resolved against the model, else
/// the preset's class score.
fn resolve_objective(
    flag: Option<&ObjectiveFlag>,
    preset: &Preset,
    model: &ModelInfo,
) -> Result<Objective> {
    let Some(flag) = flag else { return Ok(Objective::Class(preset.objective)) };
    let tap = || model.tap(flag.tap.as_deref().unwrap_or_default());
    Ok(match flag.kind {
        ObjectiveKind::Class(score) => Objective::Class(score),
        ObjectiveKind::Channel => Objective::Channel(tap()?),
        ObjectiveKind::Neuron => Objective::Neuron(tap()?),
        ObjectiveKind::Layer => Objective::Layer(tap()?),
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
    style.schedule.lr = o.lr_schedule.unwrap_or(base.schedule.lr);
    style.schedule.warmup = o.warmup.unwrap_or(base.schedule.warmup);
    style.schedule.anneal = t.anneal.unwrap_or(base.schedule.anneal);
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
        _ if starts_off_zero(args, style, model) => Some(Init::Noise(OFF_ZERO_NOISE)),
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

/// Whether the zero start (the paper's, pixels from the zero image) must move
/// off zero: the model's input gradient is not finite there (its sidecar says so).
fn starts_off_zero(args: &RunArgs, style: &Style, model: &ModelInfo) -> bool {
    let zero_start = matches!(args.preset.init, None | Some(InitSpec::Zero));
    zero_start && !model.gradient_finite_at_zero() && style.param.param == Param::Pixel
}

/// What the user should know of the ascent's start: that it moved off zero.
pub fn start_note(args: &RunArgs, ascent: &AscentParams, model: &ModelInfo) -> Option<String> {
    starts_off_zero(args, &ascent.style, model).then(|| {
        format!(
            "{}'s input gradient is not finite at the zero image (a norm or a square root of the input there), so the ascent starts from noise:{OFF_ZERO_NOISE} instead (--init noise:σ chooses another)",
            model.path.display()
        )
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

/// `--facets`, with its tap: `--diversity-tap`, else the model's default unit tap.
fn resolve_facets(args: &TargetArgs, model: &ModelInfo) -> Result<Option<Facets>> {
    let Some(count) = args.facets else { return Ok(None) };
    let tap = match &args.diversity_tap {
        Some(name) => model.tap(name)?,
        None => model.default_unit_tap("--facets compares the facets' activations at a tap")?,
    };
    Ok(Some(Facets { count, weight: args.diversity, tap }))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::{parse_args, Parsed};

    fn request(args: &[&str]) -> RunArgs {
        let argv = std::iter::once("classviz").chain(args.iter().copied());
        match parse_args(argv).unwrap() {
            Parsed::Run(cli) => cli.run,
            Parsed::Exit(_) => panic!("printed help"),
        }
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
