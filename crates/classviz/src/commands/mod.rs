//! The subcommands, one module each with its own typed request. A [`Request`]
//! is what the command line asked for; [`execute`] runs it and returns the
//! exit status.

pub mod completions;
pub mod gallery;
pub mod info;
pub mod saliency;
pub mod score;
pub mod status;
pub mod visualise;

use anyhow::Result;
use classviz_engine::model::{Loaded, ModelRequest};

use crate::home;

use classviz_records::exit::Status;

/// What the command line asked for.
#[derive(Debug, Clone)]
pub enum Request {
    /// The main job: visualise classes or units.
    Visualise(Box<visualise::Request>),
    /// `classviz status`: which classes of a list are done in a folder.
    Status(status::StatusRequest),
    /// `classviz info`: what classviz makes of a model.
    Info(info::InfoRequest),
    /// `classviz saliency`: saliency maps of photos.
    Saliency(saliency::SaliencyRequest),
    /// `classviz score`: does a model see the intended class in images?
    Score(score::ScoreRequest),
    /// `classviz gallery`: an HTML page to browse runs.
    Gallery(gallery::GalleryRequest),
    /// `classviz completions SHELL` and `classviz man`: text generated from the flags.
    Text(completions::Generated),
}

/// Run a request; the status is the process's exit status.
pub fn execute(request: &Request) -> Result<Status> {
    match request {
        Request::Visualise(request) => visualise::run(request),
        Request::Status(request) => status::run(request),
        Request::Info(request) => info::run(request),
        Request::Saliency(request) => saliency::run(request),
        Request::Score(request) => score::run(request),
        Request::Gallery(request) => gallery::run(request),
        Request::Text(generated) => completions::run(generated),
    }
}

/// Load the model a command asked for: the one given with `--model`, or the
/// default model found in classviz's home.
pub fn load_model(request: &ModelRequest) -> Result<Loaded> {
    let path = match &request.path {
        Some(path) => path.clone(),
        None => home::find(home::DEFAULT_MODEL, "model", home::MAKE_MODEL)?,
    };
    ModelRequest { path: Some(path), ..request.clone() }.load()
}
