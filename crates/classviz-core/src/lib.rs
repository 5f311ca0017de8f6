//! classviz's maths, with no files or terminals: the one ascent loop
//! ([`ascent`]) over a parameterisation ([`param`]) and an optimiser
//! ([`optim`]), the random views the network sees ([`views`]), what is
//! maximised ([`objective`]), the priors ([`priors`]), MaCo's spectrum
//! ([`spectrum`]) and the presets ([`presets`]); attribution ([`saliency`],
//! [`cam`]), the sanity check's statistics ([`sanity`]) and the paper's §3.1
//! segmentation ([`segment`] on [`maxflow`]).

pub mod ascent;
pub mod cam;
pub mod maxflow;
pub mod objective;
pub mod optim;
pub mod param;
pub mod presets;
pub mod priors;
pub mod rng;
pub mod saliency;
pub mod sanity;
pub mod segment;
pub mod spectrum;
pub mod views;
