//! Named sets of defaults for the ascent, and the `Style` they give: how the
//! image is parameterised and optimised, which random views the network sees,
//! and which priors hold the image. Explicit flags override each value (the
//! plan applies them).

use crate::objective::ClassScore;
use crate::optim::OptimizerKind;
use crate::param::{Colour, Param, ParamSpec};
use crate::priors::Priors;
use crate::schedule::Schedule;
use crate::views::{scale_range, Transforms};

/// Everything beyond the paper's plain ascent. `Style::simonyan()` is the paper.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Style {
    pub param: ParamSpec,
    pub optimizer: OptimizerKind,
    pub transforms: Transforms,
    pub priors: Priors,
    /// How the learning rate and the views' strength change over the steps;
    /// absent from records when constant.
    #[serde(default, skip_serializing_if = "Schedule::is_constant")]
    pub schedule: Schedule,
}

impl Style {
    /// The paper: pixels, plain ascent, no transforms, no priors.
    pub fn simonyan() -> Style {
        Style {
            param: ParamSpec { param: Param::Pixel, colour: Colour::Decorrelated, decay: 1.0 },
            optimizer: OptimizerKind::Sga,
            transforms: Transforms::none(),
            priors: Priors::none(),
            schedule: Schedule::constant(),
        }
    }

    /// The Lucid recipe (Fourier colour-decorrelated parameterisation, Adam)
    /// with stronger transformation robustness than Lucid's, chosen on
    /// `make bench-quality` (docs/benchmarks.md). Padding and jitter are for a
    /// `TRANSFORM_REFERENCE_SIDE`-pixel input; the plan scales them.
    pub fn natural() -> Style {
        let plain = Style::simonyan();
        Style {
            param: ParamSpec { param: Param::Fourier, ..plain.param },
            optimizer: OptimizerKind::Adam,
            transforms: Transforms {
                pad: 16,
                jitter: 16,
                scales: scale_range(0.8, 1.2),
                rotate: 20.0,
                ..Transforms::none()
            },
            ..plain
        }
    }

    /// MaCo: phase only, natural magnitude, a canvas seen through random
    /// crops of a fraction of its side with a little noise, Adam. The canvas
    /// is sized so that a crop of the mean size is the input's size.
    pub fn maco() -> Style {
        let plain = Style::simonyan();
        Style {
            param: ParamSpec { param: Param::Maco, ..plain.param },
            optimizer: OptimizerKind::Adam,
            transforms: Transforms {
                canvas: 1.0 / 0.35,
                crop_box: Some((0.2, 0.5)),
                views: 4,
                view_noise: 0.05,
                ..Transforms::none()
            },
            ..plain
        }
    }

    /// Whether this is exactly the paper's procedure.
    pub fn is_plain(&self) -> bool {
        self == &Style::simonyan()
    }
}

classviz_records::choice! {
    /// `--preset`: a named set of defaults.
    pub enum PresetName {
        /// The paper's plain ascent on pixels.
        Simonyan = "simonyan",
        /// The Lucid recipe: a decorrelated Fourier image under random transforms, with Adam.
        Natural = "natural",
        /// MaCo: the Fourier phase only, with natural photos' magnitude, seen through crops.
        Maco = "maco",
    }
}

/// A named set of defaults: the style and the ascent's step count, learning
/// rate and L2 weight. Padding and jitter are given for a
/// `views::TRANSFORM_REFERENCE_SIDE`-pixel input; the plan scales them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Preset {
    pub style: Style,
    /// What of a class's score the images maximise (units have their own objective).
    pub objective: ClassScore,
    pub iters: u32,
    pub learning_rate: f64,
    pub l2_weight: f64,
    /// Views per step on CUDA, where they are cheap (the style's are the CPU's).
    pub views_on_cuda: u32,
}

impl PresetName {
    /// The preset's settings.
    pub fn preset(self) -> Preset {
        match self {
            PresetName::Simonyan => Preset {
                style: Style::simonyan(),
                objective: ClassScore::Logit,
                iters: 150,
                learning_rate: 1.0,
                l2_weight: 1e-4,
                views_on_cuda: 1,
            },
            PresetName::Natural => Preset {
                style: Style::natural(),
                objective: ClassScore::Logit,
                iters: 256,
                learning_rate: 0.05,
                l2_weight: 0.0,
                views_on_cuda: 1,
            },
            // The phase lives in radians, so its rate is its own
            // (docs/benchmarks.md#quality has the tuning).
            PresetName::Maco => Preset {
                style: Style::maco(),
                objective: ClassScore::Logit,
                iters: 160,
                learning_rate: 0.3,
                l2_weight: 0.0,
                views_on_cuda: 16,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_simonyan_preset_is_plain() {
        assert!(PresetName::Simonyan.preset().style.is_plain());
        assert!(!PresetName::Natural.preset().style.is_plain());
        assert!(!PresetName::Maco.preset().style.is_plain());
    }

    #[test]
    fn the_paper_preset_is_the_papers_settings() {
        let paper = PresetName::Simonyan.preset();
        assert_eq!((paper.iters, paper.learning_rate, paper.l2_weight), (150, 1.0, 1e-4));
    }
}
