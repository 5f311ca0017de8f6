//! classviz's maths, with no files or terminals: the one ascent loop
//! ([`ascent`]) over a parameterisation ([`param`]) and an optimiser
//! ([`optim`]), the random views the network sees ([`views`]), what is
//! maximised ([`objective`]), the priors ([`priors`]), the schedule of
//! learning rate and views ([`schedule`]), MaCo's spectrum ([`spectrum`]) and
//! the presets ([`presets`]); attribution and its faithfulness and sanity
//! ([`attribution`]), dataset exemplars ([`exemplars`]) and the paper's §3.1
//! segmentation ([`segment`] on [`maxflow`]).

pub mod ascent;
pub mod attribution;
pub mod exemplars;
pub mod maxflow;
pub mod objective;
pub mod optim;
pub mod param;
pub mod presets;
pub mod priors;
pub mod rng;
pub mod schedule;
pub mod segment;
pub mod spectrum;
pub mod views;
