//! The subcommands, one module each with its own configuration. A `Task` is
//! what the command line asked for; [`execute`] runs it and returns the exit status.

pub mod gallery;
pub mod info;
pub mod saliency;
pub mod score;
pub mod status;
pub mod visualise;

use anyhow::Result;

use crate::exit::Status;

/// What the command line asked for.
#[derive(Debug, Clone)]
pub enum Task {
    /// The main job: visualise classes.
    Visualise(Box<visualise::Config>),
    /// `classviz status`: which classes of a list are done in a folder.
    Status(status::StatusConfig),
    /// `classviz info`: what classviz makes of a model.
    Info(info::InfoConfig),
    /// `classviz saliency`: saliency maps of photos.
    Saliency(saliency::SaliencyConfig),
    /// `classviz score`: does a model see the intended class in images?
    Score(score::ScoreConfig),
    /// `classviz gallery`: an HTML page to browse runs.
    Gallery(gallery::GalleryConfig),
}

/// Run a task; the status is the process's exit status.
pub fn execute(task: &Task) -> Result<Status> {
    match task {
        Task::Visualise(config) => visualise::run(config),
        Task::Status(config) => status::run(config),
        Task::Info(config) => info::run(config),
        Task::Saliency(config) => saliency::run(config),
        Task::Score(config) => score::run(config),
        Task::Gallery(config) => gallery::run(config),
    }
}
