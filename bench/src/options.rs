//! Command-line options: scenario selection, sizes (the Python harness's flags), runtime.

pub const USAGE: &str =
    "usage: bench_workflows [--scenario NAME]... [--runtime multi|current] [--threads N]
       [--chain-runs R] [--loop-n N] [--fanout-k K] [--fanout-workers W] [--hitl-m M]
       [--snapshot-iters I] [--snapshot-keys S] [--concurrent-c C] [--floor-n N] [--list-defaults]
scenarios: chain loop fanout hitl snapshot concurrent floor";

pub const SCENARIOS: [&str; 7] = [
    "floor",
    "chain",
    "loop",
    "fanout",
    "hitl",
    "snapshot",
    "concurrent",
];

/// The sizes, with the Python harness's defaults.
const DEFAULTS: [(&str, usize); 9] = [
    ("chain_runs", 500),
    ("loop_n", 5_000),
    ("fanout_k", 1_000),
    ("fanout_workers", 8),
    ("hitl_m", 3_000),
    ("snapshot_iters", 500),
    ("snapshot_keys", 1_000),
    ("concurrent_c", 2_000),
    ("floor_n", 200_000),
];

pub fn defaults_json() -> String {
    let map: serde_json::Map<String, serde_json::Value> = DEFAULTS
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).into()))
        .collect();
    serde_json::Value::Object(map).to_string()
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Runtime {
    MultiThread(usize),
    CurrentThread,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::MultiThread(_) => "multi_thread",
            Runtime::CurrentThread => "current_thread",
        }
    }

    pub fn threads(self) -> usize {
        match self {
            Runtime::MultiThread(n) => n,
            Runtime::CurrentThread => 1,
        }
    }

    pub fn build(self) -> tokio::runtime::Runtime {
        match self {
            Runtime::MultiThread(n) => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(n)
                .enable_all()
                .build(),
            Runtime::CurrentThread => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
        }
        .expect("a Tokio runtime")
    }
}

pub struct Options {
    pub scenarios: Vec<String>,
    pub runtime: Runtime,
    sizes: Vec<(&'static str, usize)>,
    pub child: bool,
    pub list_defaults: bool,
}

impl Options {
    pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
        let mut options = Options {
            scenarios: Vec::new(),
            runtime: Runtime::MultiThread(2),
            sizes: DEFAULTS.to_vec(),
            child: false,
            list_defaults: false,
        };
        let mut threads = None;
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
                None => (arg.clone(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--child" => options.child = true,
                "--list-defaults" => options.list_defaults = true,
                "--scenario" => {
                    let name = value()?;
                    if !SCENARIOS.contains(&name.as_str()) {
                        return Err(format!("unknown scenario `{name}`"));
                    }
                    options.scenarios.push(name);
                }
                "--runtime" => {
                    options.runtime = match value()?.as_str() {
                        "multi" | "multi_thread" => Runtime::MultiThread(2),
                        "current" | "current_thread" => Runtime::CurrentThread,
                        other => return Err(format!("unknown runtime `{other}`")),
                    }
                }
                "--threads" => {
                    threads = Some(value()?.parse::<usize>().map_err(|e| e.to_string())?)
                }
                other => {
                    let key = other.trim_start_matches("--").replace('-', "_");
                    let Some(slot) = options.sizes.iter_mut().find(|(k, _)| *k == key) else {
                        return Err(format!("unknown flag `{other}`"));
                    };
                    slot.1 = value()?.parse().map_err(|e| format!("{other}: {e}"))?;
                }
            }
        }
        if let (Some(n), Runtime::MultiThread(_)) = (threads, options.runtime) {
            options.runtime = Runtime::MultiThread(n.max(1));
        }
        if options.scenarios.is_empty() {
            options.scenarios = SCENARIOS.iter().map(|s| (*s).to_owned()).collect();
        }
        Ok(options)
    }

    pub fn size(&self, key: &str) -> usize {
        self.sizes
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .expect("a known size")
    }

    pub fn sizes_json(&self) -> String {
        let map: serde_json::Map<String, serde_json::Value> = self
            .sizes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).into()))
            .collect();
        serde_json::Value::Object(map).to_string()
    }

    /// The flags a child process needs to run with the same sizes and runtime.
    pub fn forwarded_flags(&self) -> Vec<String> {
        let mut flags: Vec<String> = self
            .sizes
            .iter()
            .map(|(k, v)| format!("--{}={v}", k.replace('_', "-")))
            .collect();
        flags.push(format!("--runtime={}", self.runtime.name()));
        flags.push(format!("--threads={}", self.runtime.threads()));
        flags
    }
}
