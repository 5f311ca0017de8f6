//! Every example pastes: each `classviz` command in the README and docs/ is
//! run here against clap and the plan, with `--dry-run` where the command
//! takes it, so that a renamed flag or an impossible combination fails CI.
//!
//! What an example may not do is a usage error (exit 2), a panic, or, with
//! `--dry-run`, anything but success. Paths the docs use for a user's own
//! files are replaced by fixtures of the same kind ([`SUBSTITUTES`]); a CUDA
//! device becomes the CPU. The notebook example runs as a script.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{root, stderr, test_model};

/// Paths the docs use for a user's files, and the fixture that stands in.
const SUBSTITUTES: [(&str, &str); 1] =
    [("own/convnext_tiny_taps.pt", "tests/models/families/f01_taps.pt")];

/// Subcommands that take `--dry-run`: the main command and `saliency`.
fn takes_dry_run(args: &[String]) -> bool {
    let first = args.first().map(String::as_str).unwrap_or_default();
    first.starts_with('-') || first == "saliency"
}

/// Every code line of `text` (in a fenced block, or indented by four spaces)
/// that runs classviz, joined across `\` line continuations, from `classviz`
/// up to a shell operator, a redirection or a comment.
fn commands_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !(fenced || line.starts_with("    ") || !pending.is_empty()) {
            continue;
        }
        let joined = format!("{pending}{}", line.trim());
        if let Some(head) = joined.strip_suffix('\\') {
            pending = format!("{} ", head.trim_end());
            continue;
        }
        pending.clear();
        let Some(at) = joined.find("target/release/classviz") else { continue };
        let command = &joined[at..];
        let end = command.find([';', '|', '#', '&', '>']).unwrap_or(command.len());
        let command = command[..end].trim();
        if !command.contains("venv/") {
            found.push(command.to_string());
        }
    }
    found
}

/// Split a command line as the shell would (plain and double-quoted words).
fn words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in command.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            _ => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// The arguments to run for one documented command.
fn arguments(command: &str) -> Vec<String> {
    let mut args: Vec<String> = words(command).into_iter().skip(1).collect();
    for arg in &mut args {
        for (documented, fixture) in SUBSTITUTES {
            if arg == documented {
                *arg = fixture.to_string();
            }
        }
        if arg.starts_with("cuda") && arg.len() <= 7 {
            *arg = "cpu".into();
        }
        *arg = arg.replace("$k", "0");
    }
    if takes_dry_run(&args) && !args.iter().any(|a| a == "--dry-run") {
        args.push("--dry-run".into());
    }
    args
}

/// The README and every page of docs/.
fn documents() -> Vec<PathBuf> {
    let mut documents = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    documents.extend(docs);
    documents
}

/// What is wrong with one example's run, if anything.
fn problem(command: &str, args: &[String]) -> Option<String> {
    let threads = common::torch_threads();
    let output = Command::new(env!("CARGO_BIN_EXE_classviz"))
        .args(args)
        .env("OMP_NUM_THREADS", threads)
        .current_dir(root())
        .output()
        .expect("running classviz");
    let code = output.status.code();
    let message = stderr(&output);
    let ok = match code {
        Some(0) => true,
        Some(1) => !takes_dry_run(args),
        _ => false,
    };
    (!ok).then(|| format!("{command}\n  ran {args:?}\n  exit {code:?}: {}", message.trim()))
}

#[test]
fn every_documented_command_runs() {
    test_model("families/f01_taps.pt");
    let mut failures = Vec::new();
    let mut count = 0;
    for document in documents() {
        let text = std::fs::read_to_string(&document).unwrap();
        for command in commands_in(&text) {
            count += 1;
            if let Some(problem) = problem(&command, &arguments(&command)) {
                failures.push(format!("{}: {problem}", document.display()));
            }
        }
    }
    eprintln!("{count} documented commands run");
    assert!(count >= 20, "only {count} commands found: is the extraction broken?");
    assert!(failures.is_empty(), "{} examples fail:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn a_broken_example_is_caught() {
    let text = "```\ntarget/release/classviz --class 100 --no-such-flag \\\n    --iters 5\n```\n";
    let commands = commands_in(text);
    assert_eq!(commands, ["target/release/classviz --class 100 --no-such-flag --iters 5"]);
    let problem = problem(&commands[0], &arguments(&commands[0])).expect("a usage error");
    assert!(problem.contains("exit Some(2)"), "{problem}");
    let impossible = "target/release/classviz --class 1 --accentuate 1";
    assert!(problem_of(impossible).is_some_and(|p| p.contains("exit Some(2)")));
}

fn problem_of(command: &str) -> Option<String> {
    problem(command, &arguments(command))
}

#[test]
fn the_notebook_example_runs_as_a_script() {
    let out = common::scratch("examples-notebook");
    let output = Command::new(root().join(".venv/bin/python3"))
        .arg(root().join("examples/notebook.py"))
        .env("CLASSVIZ", env!("CARGO_BIN_EXE_classviz"))
        .env("NOTEBOOK_CLASSES", "1,100")
        .env("NOTEBOOK_ITERS", "3")
        .env("NOTEBOOK_OUT", &out)
        .env("OMP_NUM_THREADS", common::torch_threads())
        .current_dir(root())
        .output()
        .expect("running examples/notebook.py");
    assert!(output.status.success(), "{}{}", common::stdout(&output), stderr(&output));
    assert!(out.join("presets.png").exists());
    let text = common::stdout(&output);
    assert!(text.contains("natural: Lite1 top-1"), "{text}");
}
