//! The attribution methods by name ([`Method`], `saliency --method`), their
//! settings, and one map to make ([`Attribution`]: a method and, for a class
//! activation map, its tap).

use classviz_engine::network::TapId;

classviz_records::choice! {
    /// `saliency --method`: how a map is made.
    pub enum Method {
        /// |∂S_c/∂I|, the paper's map.
        Gradient = "gradient",
        /// The gradient averaged over noisy copies of the photo (Smilkov et al. 2017).
        Smoothgrad = "smoothgrad",
        /// The gradient times the photo (in the model's space).
        GradientXInput = "gradient-x-input",
        /// The gradient integrated along a path from a baseline image (Sundararajan et al. 2017).
        IntegratedGradients = "integrated-gradients",
        /// Grad-CAM at --tap (Selvaraju et al. 2017).
        GradCam = "grad-cam",
        /// Grad-CAM++ at --tap (Chattopadhay et al. 2018).
        GradCamPlusPlus = "grad-cam++",
        /// LayerCAM at --tap (Jiang et al. 2021).
        LayerCam = "layer-cam",
        /// Score-CAM at --tap: forward passes only (Wang et al. 2020).
        ScoreCam = "score-cam",
        /// Attention rollout through every block (Abnar & Zuidema 2020); class-agnostic; a model exported with --attention.
        Rollout = "rollout",
        /// Attention rollout weighted by the class score's gradient (Chefer et al. 2021); a model exported with --attention.
        GradientRollout = "gradient-rollout",
        /// Every method (the class activation maps where the model has grid taps, the rollouts where it has attention taps), with a sheet comparing them.
        All = "all",
    }
}

/// The gradient-based methods, in the order `all` runs them.
const GRADIENT_METHODS: [Method; 4] =
    [Method::Gradient, Method::Smoothgrad, Method::GradientXInput, Method::IntegratedGradients];
/// The class activation maps, in the order `all` runs them.
pub const CAMS: [Method; 4] =
    [Method::GradCam, Method::GradCamPlusPlus, Method::LayerCam, Method::ScoreCam];
/// The attention methods, in the order `all` runs them.
pub const ATTENTION_METHODS: [Method; 2] = [Method::Rollout, Method::GradientRollout];

impl Method {
    /// Whether it is a class activation map, taken at a tap.
    pub fn is_cam(self) -> bool {
        CAMS.contains(&self)
    }

    /// Whether it multiplies attention probabilities through the blocks.
    pub fn is_attention(self) -> bool {
        ATTENTION_METHODS.contains(&self)
    }

    /// The methods it stands for: itself, or for `all` every method, the
    /// class activation maps only where `has_tap` (a grid tap) and the
    /// attention methods only where `has_attention`.
    pub fn expand(self, has_tap: bool, has_attention: bool) -> Vec<Method> {
        match self {
            Method::All => {
                let cams = if has_tap { CAMS.as_slice() } else { &[] };
                let attention = if has_attention { ATTENTION_METHODS.as_slice() } else { &[] };
                GRADIENT_METHODS.iter().chain(cams).chain(attention).copied().collect()
            }
            single => vec![single],
        }
    }

    /// σ in pixels of the Gaussian that pools a map before it ranks pixels
    /// (`--smooth` overrides). Contribution maps are signed, and their sign
    /// flips from pixel to pixel on the grid of the network's strided
    /// convolutions; pooling each pixel with its neighbours ranks regions by
    /// their net evidence (docs/saliency.md measures σ). Sensitivity maps and
    /// CAMs stay as their papers define them.
    pub fn default_smoothing(self) -> f64 {
        match self {
            Method::GradientXInput | Method::IntegratedGradients => CONTRIBUTION_SMOOTHING,
            _ => 0.0,
        }
    }
}

/// The default σ of contribution maps' pooling ([`Method::default_smoothing`]).
pub const CONTRIBUTION_SMOOTHING: f64 = 1.0;

/// The settings of the methods that take any.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MethodSettings {
    /// SmoothGrad's noisy copies.
    pub samples: i64,
    /// SmoothGrad's noise σ, as a fraction of the input's range.
    pub noise: f64,
    /// Integrated gradients' steps along the path.
    pub steps: i64,
    /// Integrated gradients' reference image.
    pub baseline: Baseline,
}

impl Default for MethodSettings {
    /// SmoothGrad's 25 copies at 10% noise (Smilkov et al.'s suggestion),
    /// integrated gradients' 32 steps from the dataset mean.
    fn default() -> Self {
        MethodSettings { samples: 25, noise: 0.1, steps: 32, baseline: Baseline::Mean }
    }
}

/// One map to make: a method (never `all`) and, for a class activation map,
/// the model's tap it is taken at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Attribution {
    pub method: Method,
    pub tap: Option<TapId>,
}

classviz_records::choice! {
    /// The reference image of integrated gradients.
    pub enum Baseline {
        /// A black image.
        Black = "black",
        /// The dataset mean: zero in the model's space.
        Mean = "mean",
        /// The photo blurred (Gaussian, σ = 5 px): what insertion starts from.
        Blur = "blur",
    }
}
