//! Help text for defaults that live elsewhere: each preset's value of a
//! setting, read from the presets themselves, and the plan's batch sizes and
//! precision threshold. A flag's doc comment says what it does; this module
//! appends `[default: …]` built from the facts, so that no number is typed twice.

use clap::Command;
use classviz_core::attribution::faithfulness::{
    passes_per_order, DECIDED_AT_STANDARD_ERRORS, MIN_BASELINE_ORDERS,
};
use classviz_core::presets::{Preset, PresetName};
use classviz_core::views::TRANSFORM_REFERENCE_SIDE;
use classviz_engine::precision::AUTO_BF16_BATCH;
use classviz_records::choice::Choice;

use crate::commands::visualise::plan::{DEFAULT_CPU_BATCH, DEFAULT_CUDA_BATCH};

/// A setting as each preset has it, for the flag `id`.
type Shown = fn(&Preset) -> String;

/// The flags whose default is the preset's, and how each preset's value is shown.
const PRESET_FLAGS: [(&str, Shown); 21] = [
    ("iters", |p| p.iters.to_string()),
    ("lr", |p| p.learning_rate.to_string()),
    ("l2", |p| p.l2_weight.to_string()),
    ("objective", |p| p.objective.to_string()),
    ("param", |p| p.style.param.param.to_string()),
    ("colour", |p| p.style.param.colour.to_string()),
    ("decay", |p| p.style.param.decay.to_string()),
    ("optimizer", |p| p.style.optimizer.to_string()),
    ("lr_schedule", |p| p.style.schedule.lr.to_string()),
    ("warmup", |p| p.style.schedule.warmup.to_string()),
    ("anneal", |p| p.style.schedule.anneal.to_string()),
    ("blur_every", |p| p.style.priors.blur_every.to_string()),
    ("blur_sigma", |p| p.style.priors.blur_sigma.to_string()),
    ("clip_percentile", |p| p.style.priors.clip_percentile.to_string()),
    ("tv", |p| p.style.priors.tv.to_string()),
    ("views", views),
    ("jitter", |p| p.style.transforms.jitter.to_string()),
    ("pad", |p| p.style.transforms.pad.to_string()),
    ("scale", |p| range(&p.style.transforms.scales)),
    ("rotate", |p| p.style.transforms.rotate.to_string()),
    ("view_noise", |p| p.style.transforms.view_noise.to_string()),
];

/// The MaCo group's flags whose default is the preset's.
const CANVAS_FLAGS: [(&str, Shown); 2] = [
    ("canvas", |p| format!("{:.2}", p.style.transforms.canvas)),
    ("crop_box", |p| {
        p.style.transforms.crop_box.map_or("none".into(), |(l, h)| format!("{l}..{h}"))
    }),
];

/// `command` with the defaults appended to its flags' help, and to `status`'s,
/// which takes the same flags.
pub fn with_defaults(command: Command) -> Command {
    run_defaults(command)
        .mut_subcommand("status", run_defaults)
        .mut_subcommand("saliency", saliency)
}

/// What `saliency --faithfulness` costs, from the metric's own constants.
fn saliency(command: Command) -> Command {
    let passes = passes_per_order();
    let cost = format!(
        "It costs {passes} forward passes per map, and {passes} per random order of the baseline: orders are drawn until each map's verdict is decided (its areas {DECIDED_AT_STANDARD_ERRORS} standard errors from the means), from {MIN_BASELINE_ORDERS} up to --random-orders"
    );
    append(command, "faithfulness", &cost)
}

fn run_defaults(mut command: Command) -> Command {
    for (id, shown) in PRESET_FLAGS.iter().chain(&CANVAS_FLAGS) {
        command = append(command, id, &preset_defaults(*shown));
    }
    let pixels = format!("(for a {TRANSFORM_REFERENCE_SIDE}-pixel input, scaled to the model's)");
    command = append(command, "jitter", &pixels);
    command = append(command, "pad", &pixels);
    let batch = format!("[default: {DEFAULT_CPU_BATCH} on CPU, {DEFAULT_CUDA_BATCH} on CUDA]");
    command = append(command, "batch", &batch);
    let precision =
        format!("(auto: bf16 on CUDA for batches of {AUTO_BF16_BATCH} or more, else fp32)");
    append(command, "precision", &precision)
}

/// `[default: the preset's: simonyan 150, natural 256, maco 160]`, or
/// `[default: X in every preset]`.
fn preset_defaults(shown: Shown) -> String {
    let values: Vec<(PresetName, String)> =
        PresetName::ALL.iter().map(|&name| (name, shown(&name.preset()))).collect();
    if values.iter().all(|(_, value)| *value == values[0].1) {
        return format!("[default: {} in every preset]", values[0].1);
    }
    let each: Vec<String> = values.iter().map(|(name, value)| format!("{name} {value}")).collect();
    format!("[default: the preset's: {}]", each.join(", "))
}

/// Views per step, with the CUDA count where it differs.
fn views(preset: &Preset) -> String {
    let cpu = preset.style.transforms.views;
    if preset.views_on_cuda == cpu {
        cpu.to_string()
    } else {
        format!("{cpu} ({} on CUDA)", preset.views_on_cuda)
    }
}

/// A list of scales as the flag takes it: one value, or LOW..HIGH.
fn range(scales: &[f64]) -> String {
    let low = scales.iter().copied().fold(f64::INFINITY, f64::min);
    let high = scales.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if low == high {
        low.to_string()
    } else {
        format!("{low}..{high}")
    }
}

/// Append `text` to the help of the flag `id`.
fn append(command: Command, id: &str, text: &str) -> Command {
    command.mut_arg(id, |arg| {
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        let long = arg.get_long_help().map(ToString::to_string);
        // A sentence appended to one that clap left without its full stop.
        let joined = |before: &str| {
            let stop = text.starts_with(char::is_uppercase) && !before.ends_with('.');
            format!("{before}{} {text}", if stop { "." } else { "" })
        };
        let arg = arg.help(joined(&help));
        match long {
            Some(long) => arg.long_help(joined(&long)),
            None => arg,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn help_of(id: &str) -> String {
        let command = with_defaults(crate::flags::Cli::command());
        let arg = command.get_arguments().find(|a| a.get_id() == id).unwrap();
        arg.get_help().unwrap().to_string()
    }

    #[test]
    fn preset_defaults_come_from_the_presets() {
        let iters = help_of("iters");
        for name in PresetName::ALL {
            let expected = format!("{name} {}", name.preset().iters);
            assert!(iters.contains(&expected), "{iters} lacks {expected}");
        }
        assert!(help_of("tv").contains("in every preset"), "{}", help_of("tv"));
        assert!(help_of("batch").contains(&DEFAULT_CPU_BATCH.to_string()));
    }

    #[test]
    fn scale_ranges_show_their_ends() {
        assert_eq!(range(&[1.0]), "1");
        assert_eq!(range(&[0.8, 0.8200000000000001, 1.2]), "0.8..1.2");
    }
}
