//! A seeded command-line fuzz test: a few hundred argument vectors (valid
//! flags with extreme and malformed values, unknown flags, odd Unicode, huge
//! lists, paths that are folders, FIFOs or missing) run the binary against
//! tiny fixture models. No run may panic (exit 101, "panicked", "internal
//! error"), every stderr line is classviz's own, and no temp file or partial
//! PNG is left behind. A run still going after a few seconds gets Ctrl-C and
//! must stop cleanly too.
//!
//! `CLASSVIZ_FUZZ_SEED` and `CLASSVIZ_FUZZ_CASES` override the seed and the
//! case count; a failure prints both and the argument vector.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const DEFAULT_SEED: u64 = 20_261_126;
const DEFAULT_CASES: usize = 200;
/// Parallel runs: classviz start-up is mostly loading libtorch.
const WORKERS: usize = 4;
/// A run longer than this gets SIGINT (and then must exit 130 cleanly).
const PATIENCE: Duration = Duration::from_secs(8);

/// SplitMix64: the same seed gives the same cases on any machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Paths a case may name: fixtures, a folder, a FIFO, a missing file, /dev/zero.
struct Paths {
    linear: String,
    others: Vec<String>,
    folder: String,
    fifo: String,
    missing: String,
    photo: String,
    classes_file: String,
}

fn numbers(rng: &mut Rng) -> String {
    let value = rng.pick(&[
        "0",
        "1",
        "2",
        "3",
        "-1",
        "-0",
        "0.5",
        "1e-12",
        "1e300",
        "-1e300",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "",
        " ",
        "x",
        "1,2",
        "4294967295",
        "4294967296",
        "18446744073709551616",
        "1e3",
        "0x10",
        "１００",
        "٣",
        "1_000",
        "+5",
        "--",
        "0.0000001",
        "7",
    ]);
    value.to_string()
}

fn class_list(rng: &mut Rng) -> String {
    match rng.below(14) {
        0 => "0-4".into(),
        1 => "all".into(),
        2 => rng.pick(&["one", "Three", "zero,four", "TWO,1,0-2", "4,4,4"]).into(),
        3 => (0..rng.below(5000) + 1).map(|i| (i % 5).to_string()).collect::<Vec<_>>().join(","),
        4 => rng
            .pick(&[
                "🦢",
                "ñandú",
                "\u{202e}evil",
                "e\u{301}",
                "名前",
                "\u{1}x\u{7f}",
                "a\u{200b}b",
            ])
            .into(),
        // Under the kernel's 128 KiB limit for one argument.
        5 => "x".repeat(rng.below(100_000) + 1),
        6 => rng
            .pick(&["-1", "5", "99999999999999999999", "3-1", "0-99999999999", "1,,2", ","])
            .into(),
        7 => rng.pick(&["", " ", "\t"]).into(),
        _ => (rng.below(5)).to_string(),
    }
}

/// A value in (or at the edge of) the flag's domain.
fn valid_value(rng: &mut Rng, flag: &str) -> String {
    let choices: &[&str] = match flag {
        "--lr" => &["1", "0.5", "1e-3", "1e30", "100"],
        "--l2" => &["0", "1e-4", "0.2", "20"],
        "--batch" => &["1", "2", "3", "1000000"],
        "--size" => &["8", "16,8", "9", "100000", "64", "1"],
        "--mean" | "--std" => &["0.5,0.4,0.3", "0.5", "1,1,1,1", "1e-30,1,1"],
        "--seed" => &["0", "42", "18446744073709551615"],
        "--jitter" | "--pad" => &["0", "1", "4", "100000"],
        "--scale" => &["1", "0.5,2", "0.9,1,1.1", "1e-9", "1e9"],
        "--rotate" => &["0", "10", "360", "1e300"],
        "--blur-every" => &["1", "5"],
        "--blur-sigma" => &["0", "0.5", "1e300"],
        "--clip-percentile" => &["0", "50", "100"],
        "--tv" => &["0", "1e-3", "1e30"],
        "--save-every" => &["1", "3", "100"],
        "--preset" => &["simonyan", "natural", "Natural", ""],
        "--param" => &["pixel", "fourier", "wavelet"],
        "--optimizer" => &["sga", "adam", "lbfgs"],
        "--objective" => &["logit", "log-prob", "prob", "?"],
        "--device" => &["cpu", "auto", "cuda", "cuda:99", "tpu"],
        "--shard" => &["0/2", "1/2", "2/2", "auto", "a/b", "0/0"],
        "--shards" => &["2", "0"],
        "--init" => &["zero", "noise:0.01", "noise:1e300", "noise"],
        "--output" => &["0", "1", "5"],
        "--output-key" => &["logits", "nope", "", "🦢"],
        "--threads" => &["1", "2"],
        "--class" => return class_list(rng),
        _ => return numbers(rng),
    };
    rng.pick(choices).to_string()
}

/// The main command's flags a case draws from, valid and not.
const RUN_FLAGS: [&str; 36] = [
    "--lr",
    "--l2",
    "--batch",
    "--size",
    "--mean",
    "--std",
    "--seed",
    "--preset",
    "--param",
    "--optimizer",
    "--jitter",
    "--scale",
    "--rotate",
    "--pad",
    "--blur-every",
    "--blur-sigma",
    "--clip-percentile",
    "--tv",
    "--save-every",
    "--objective",
    "--device",
    "--shard",
    "--shards",
    "--init",
    "--output",
    "--output-key",
    "--threads",
    "--gif",
    "--grid",
    "--force",
    "--stretch",
    "--json",
    "--bogus-flag",
    "-x",
    "--",
    "--class",
];

/// A model path: mostly the linear model, sometimes something that is not one.
fn model_path(rng: &mut Rng, paths: &Paths) -> String {
    match rng.below(10) {
        0 => paths.folder.clone(),
        1 => paths.fifo.clone(),
        2 => paths.missing.clone(),
        3 => "/dev/zero".into(),
        4..=5 => paths.others[rng.below(paths.others.len())].clone(),
        _ => paths.linear.clone(),
    }
}

/// An image path: mostly the photo, sometimes something that is not one.
fn image_path(rng: &mut Rng, paths: &Paths) -> String {
    match rng.below(4) {
        0 => paths.folder.clone(),
        1 => paths.fifo.clone(),
        2 => paths.missing.clone(),
        _ => paths.photo.clone(),
    }
}

/// One argument vector. `out` is the case's own output folder.
fn case(rng: &mut Rng, paths: &Paths, out: &Path) -> Vec<String> {
    let out = out.display().to_string();
    let subcommand = rng.below(10);
    let mut args: Vec<String> = match subcommand {
        0 => vec!["info".into(), "--model".into(), model_path(rng, paths)],
        1 => {
            let mut args = vec!["score".into(), "--model".into(), model_path(rng, paths)];
            args.push(image_path(rng, paths));
            if rng.chance(50) {
                args.extend(["--class".into(), class_list(rng)]);
            }
            args
        }
        2 => saliency_case(rng, paths, out),
        3 => {
            let model = model_path(rng, paths);
            vec![
                "status".into(),
                "--model".into(),
                model,
                "--out".into(),
                out,
                "--class".into(),
                class_list(rng),
            ]
        }
        _ => visualise_case(rng, paths, out),
    };
    if subcommand >= 4 {
        args.push("--quiet".into());
    }
    args
}

fn saliency_case(rng: &mut Rng, paths: &Paths, out: String) -> Vec<String> {
    let mut args =
        vec!["saliency".into(), "--model".into(), model_path(rng, paths), "--out".into(), out];
    args.extend(["--image".into(), image_path(rng, paths)]);
    let method = rng.pick(&["gradient", "smoothgrad", "integrated-gradients", "bogus"]);
    args.extend(["--method".into(), method.into()]);
    if rng.chance(50) {
        args.extend(["--samples".into(), numbers(rng)]);
    }
    args
}

/// The main command: a model, classes (or a classes file), a few steps and
/// up to four random flags.
fn visualise_case(rng: &mut Rng, paths: &Paths, out: String) -> Vec<String> {
    let mut args = vec!["--model".into(), model_path(rng, paths), "--out".into(), out];
    match rng.below(6) {
        0 => args.extend(["--classes-file".into(), paths.classes_file.clone()]),
        1 => {
            let file = match rng.pick(&["folder", "fifo", "missing", "/dev/zero"]) {
                "folder" => paths.folder.clone(),
                "fifo" => paths.fifo.clone(),
                "missing" => paths.missing.clone(),
                other => other.into(),
            };
            args.extend(["--classes-file".into(), file]);
        }
        _ => args.extend(["--class".into(), class_list(rng)]),
    }
    // Keep most runs short; a long one is stopped with Ctrl-C.
    let iters = if rng.chance(90) { (1 + rng.below(20)).to_string() } else { numbers(rng) };
    args.extend(["--iters".into(), iters]);
    for _ in 0..rng.below(5) {
        let flag = rng.pick(&RUN_FLAGS);
        let value = if matches!(flag, "--gif" | "--grid" | "--force" | "--stretch" | "--json") {
            None
        } else if rng.chance(25) {
            Some(numbers(rng))
        } else {
            Some(valid_value(rng, flag))
        };
        args.push(flag.into());
        args.extend(value);
    }
    args
}

/// Temp files and PNGs that do not decode, anywhere under `dir`.
fn leftovers(dir: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return bad };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path.display().to_string();
        if path.is_dir() {
            bad.extend(leftovers(&path));
        } else if name.ends_with(".tmp") {
            bad.push(format!("temp file {name}"));
        } else if name.ends_with(".png") && image::open(&path).is_err() {
            bad.push(format!("partial PNG {name}"));
        }
    }
    bad
}

/// Run one case; `Ok` is its exit status, `Err` says what went wrong.
fn run_case(args: &[String], out: &Path) -> Result<i32, String> {
    let child = Command::new(env!("CARGO_BIN_EXE_classviz"))
        .args(
            ["--threads", "1"].iter().filter(|_| args.first().is_some_and(|a| a.starts_with("--"))),
        )
        .args(args)
        .current_dir(common::root())
        .env("OMP_NUM_THREADS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawning: {e}"))?;
    let (status, interrupted, stderr) = wait_interrupting(child)?;
    let mut problems = exit_problems(status, interrupted);
    problems.extend(stderr_problems(args, status.code(), &stderr));
    problems.extend(leftovers(out));
    if problems.is_empty() {
        Ok(status.code().unwrap_or(-1))
    } else {
        Err(format!(
            "{}\nstderr: {}",
            problems.join("; "),
            stderr.chars().take(2000).collect::<String>()
        ))
    }
}

/// Wait for `child`, sending Ctrl-C past its patience: its status, whether
/// it was interrupted, and its stderr.
fn wait_interrupting(mut child: std::process::Child) -> Result<(ExitStatus, bool, String), String> {
    let started = Instant::now();
    let mut interrupted = false;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if started.elapsed() > PATIENCE && !interrupted {
            // Ctrl-C: classviz must stop at its next step and keep what it finished.
            let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
            interrupted = true;
        }
        if started.elapsed() > PATIENCE * 4 {
            let _ = child.kill();
            return Err("still running 4x past its patience, even after SIGINT".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read;
        let _ = pipe.read_to_string(&mut stderr);
    }
    Ok((status, interrupted, stderr))
}

/// An exit status that is not a documented one.
fn exit_problems(status: ExitStatus, interrupted: bool) -> Vec<String> {
    let code = status.code();
    let mut problems = Vec::new();
    match code {
        Some(101) => problems.push("exit 101 (a panic)".to_string()),
        None => problems.push(format!("killed by a signal: {status}")),
        Some(130) if !interrupted => problems.push("exit 130 without an interrupt".into()),
        Some(0 | 1 | 2 | 130) => {}
        Some(other) => problems.push(format!("undocumented exit status {other}")),
    }
    if interrupted && code != Some(130) && code != Some(0) && code != Some(1) {
        problems.push(format!("after SIGINT the exit status was {code:?}"));
    }
    problems
}

/// Anything on stderr that is not classviz's one-line messages.
fn stderr_problems(args: &[String], code: Option<i32>, stderr: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for needle in ["panicked", "internal error", "RUST_BACKTRACE", "frame #"] {
        if stderr.contains(needle) {
            problems.push(format!("stderr contains {needle:?}"));
        }
    }
    if let Some(line) = stderr.lines().find(|line| !line.starts_with("classviz: ")) {
        problems.push(format!("a stderr line not from classviz: {line:?}"));
    }
    // `status` exits 1 when classes are missing, its report on stdout.
    let quiet_failure = args.first().is_some_and(|a| a == "status") && code == Some(1);
    if code.is_some_and(|c| c != 0) && stderr.trim().is_empty() && !quiet_failure {
        problems.push("a failure with nothing on stderr".into());
    }
    problems
}

/// The files the cases point at: the linear model and others, a folder, a
/// FIFO, a missing file, a photo and a classes file, under `dir`.
fn paths(dir: &Path) -> Paths {
    let fifo = dir.join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    std::fs::create_dir_all(dir.join("folder")).unwrap();
    let classes_file = dir.join("classes.txt");
    std::fs::write(&classes_file, "one\n# comment\n0-2\nthree # trailing\n").unwrap();
    let others =
        ["dead_relu.pt", "tuple_output.pt", "dict_scores.pt", "softmax.pt", "wrong_output.pt"];
    Paths {
        linear: common::test_model("linear.pt").display().to_string(),
        others: others.iter().map(|name| common::test_model(name).display().to_string()).collect(),
        folder: dir.join("folder").display().to_string(),
        fifo: fifo.display().to_string(),
        missing: dir.join("missing.pt").display().to_string(),
        photo: common::root().join("tests/data/chelsea.png").display().to_string(),
        classes_file: classes_file.display().to_string(),
    }
}

/// A number from the environment variable `name`, else `default`.
fn from_env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// Run `work` on `WORKERS` threads: the exit statuses' tally, and the failures.
fn run_all(
    work: &[(usize, Vec<String>, PathBuf)],
    seed: u64,
) -> (BTreeMap<i32, usize>, Vec<String>) {
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let tally = Mutex::new(BTreeMap::<i32, usize>::new());
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((index, args, out)) = work.get(i) else { break };
                match run_case(args, out) {
                    Ok(code) => {
                        *tally.lock().unwrap().entry(code).or_default() += 1;
                        let _ = std::fs::remove_dir_all(out);
                    }
                    Err(problem) => failures.lock().unwrap().push(format!(
                        "case {index} (CLASSVIZ_FUZZ_SEED={seed}): classviz {}\n{problem}",
                        args.iter()
                            .map(|a| format!("{:?}", a.chars().take(120).collect::<String>()))
                            .collect::<Vec<_>>()
                            .join(" ")
                    )),
                }
            });
        }
    });
    (tally.into_inner().unwrap(), failures.into_inner().unwrap())
}

#[test]
fn no_argument_vector_panics_or_leaves_partial_files() {
    let seed = from_env("CLASSVIZ_FUZZ_SEED", DEFAULT_SEED);
    let cases = from_env("CLASSVIZ_FUZZ_CASES", DEFAULT_CASES);
    let dir = common::scratch("fuzz");
    let paths = paths(&dir);
    // Generate every case up front from the one seed, so that a case's
    // arguments do not depend on how the workers interleave.
    let mut rng = Rng(seed);
    let work: Vec<(usize, Vec<String>, PathBuf)> = (0..cases)
        .map(|index| {
            let out = dir.join(format!("case{index}"));
            (index, case(&mut rng, &paths, &out), out)
        })
        .collect();
    let started = Instant::now();
    let (tally, failures) = run_all(&work, seed);
    assert!(
        failures.is_empty(),
        "{} of {cases} fuzz cases failed (seed {seed}):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    eprintln!(
        "fuzz: {cases} cases, seed {seed}, {:.1} s; exit statuses {tally:?}",
        started.elapsed().as_secs_f64()
    );
    // The cases must reach past the parser: some runs finish, some fail in the run.
    assert!(tally.get(&0).is_some_and(|&n| n >= cases / 20), "too few successful runs: {tally:?}");
    assert!(
        tally.get(&1).is_some_and(|&n| n >= cases / 20),
        "too few run-time failures: {tally:?}"
    );
}
