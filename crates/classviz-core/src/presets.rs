//! Named sets of defaults for the ascent, and the `Style` they give: how the
//! image is parameterised and optimised, which random views the network sees,
//! and which priors hold the image. Explicit flags override each value (the
//! plan applies them).

use crate::optim::OptimizerKind;
use crate::param::{Colour, Param, ParamSpec};
use crate::priors::Priors;
use crate::views::{scale_range, Transforms};

/// Everything beyond the paper's plain ascent. `Style::simonyan()` is the paper.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Style {
    pub param: ParamSpec,
    pub optimizer: OptimizerKind,
    pub transforms: Transforms,
    pub priors: Priors,
}

impl Style {
    /// The paper: pixels, plain ascent, no transforms, no priors.
    pub fn simonyan() -> Style {
        Style {
            param: ParamSpec { param: Param::Pixel, colour: Colour::Decorrelated, decay: 1.0 },
            optimizer: OptimizerKind::Sga,
            transforms: Transforms::none(),
            priors: Priors::none(),
        }
    }

    /// The Lucid recipe (Fourier colour-decorrelated parameterisation, Adam)
    /// with stronger transformation robustness than Lucid's (jitter 8, scales
    /// 0.9–1.1, ±10°), measured on `make bench-quality`: padding 16, jitter
    /// ±16 (both for a 224-pixel input, scaled to others), scales 0.8–1.2,
    /// rotation ±20°.
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
    /// crops of 20–50% of its side with a little noise, Adam. The canvas is
    /// sized so that a crop of the mean size is the input's size.
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
                iters: 150,
                learning_rate: 1.0,
                l2_weight: 1e-4,
                views_on_cuda: 1,
            },
            PresetName::Natural => Preset {
                style: Style::natural(),
                iters: 256,
                learning_rate: 0.05,
                l2_weight: 0.0,
                views_on_cuda: 1,
            },
            // The phase lives in radians: lr 1 overshot and 3 diverged when
            // the preset was tuned, 0.3 recognised the most classes; 200 steps
            // gave no more classes than 160 on the current spectrum
            // (docs/benchmarks.md#quality).
            PresetName::Maco => Preset {
                style: Style::maco(),
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
