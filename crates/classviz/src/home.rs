//! Where classviz finds its default files (the default model and MaCo's
//! spectrum) when the command line names none, so that it runs from any
//! directory: `$CLASSVIZ_HOME`, then the `weights/` folder of the project
//! the binary was built in, then `~/.cache/classviz` (where `classviz-export`
//! writes). Paths given on the command line are used as given.

use std::path::PathBuf;

use anyhow::{bail, Result};

/// The environment variable naming a folder of classviz's files.
pub const HOME_VARIABLE: &str = "CLASSVIZ_HOME";

/// The default model's file name.
pub const DEFAULT_MODEL: &str = "efficientnet_lite0.pt";
/// MaCo's default magnitude spectrum's file name.
pub const DEFAULT_MAGNITUDE: &str = "maco_magnitude.npy";

/// The folders searched, in order.
pub fn search_path() -> Vec<PathBuf> {
    search_path_from(std::env::var_os(HOME_VARIABLE).map(PathBuf::from), home_dir())
}

fn search_path_from(home_variable: Option<PathBuf>, home: Option<PathBuf>) -> Vec<PathBuf> {
    let mut folders = Vec::new();
    folders.extend(home_variable.filter(|p| !p.as_os_str().is_empty()));
    // The project's weights/ (empty for a wheel's binary, which has no project).
    let project = env!("CLASSVIZ_PROJECT_WEIGHTS");
    if !project.is_empty() {
        folders.push(PathBuf::from(project));
    }
    folders.extend(home.map(|home| home.join(".cache").join("classviz")));
    folders
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from)
}

/// The first `name` in the search path; an error names every place looked and
/// how to make the file.
pub fn find(name: &str, what: &str, how_to_make: &str) -> Result<PathBuf> {
    find_in(&search_path(), name, what, how_to_make)
}

fn find_in(folders: &[PathBuf], name: &str, what: &str, how_to_make: &str) -> Result<PathBuf> {
    if let Some(found) = folders.iter().map(|f| f.join(name)).find(|p| p.is_file()) {
        return Ok(found);
    }
    let looked: Vec<String> = folders.iter().map(|f| f.join(name).display().to_string()).collect();
    bail!("{what} {name} not found (looked in {}): {how_to_make}", looked.join(", "))
}

/// What to say when the default model is missing.
pub const MAKE_MODEL: &str =
    "run `make weights` in the project, or `classviz-export efficientnet_lite0`, or pass --model";
/// What to say when the default spectrum is missing.
pub const MAKE_MAGNITUDE: &str =
    "run `make weights` in the project, or `classviz-export --spectrum`, or pass --magnitude";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_order_is_home_variable_project_then_cache() {
        let folders = search_path_from(Some("/x".into()), Some("/home/u".into()));
        assert_eq!(folders[0], PathBuf::from("/x"));
        assert!(folders[1].ends_with("weights"));
        assert_eq!(folders[2], PathBuf::from("/home/u/.cache/classviz"));
        assert_eq!(
            search_path_from(None, None),
            vec![PathBuf::from(env!("CLASSVIZ_PROJECT_WEIGHTS"))]
        );
    }

    #[test]
    fn a_missing_file_names_every_place_looked() {
        let folders = vec![PathBuf::from("/nowhere/a"), PathBuf::from("/nowhere/b")];
        let message = find_in(&folders, "m.pt", "model", "make it").unwrap_err().to_string();
        assert!(
            message.contains("/nowhere/a/m.pt") && message.contains("/nowhere/b/m.pt"),
            "{message}"
        );
        assert!(message.ends_with("make it"), "{message}");
    }
}
