//! Dynamic shell completion for `kubectl ramp <TAB>`.
//!
//! kubectl (≥ 1.26) completes a plugin's arguments by running an executable named
//! `kubectl_complete-<plugin>` from `PATH` with the words typed after the plugin name (the last
//! one is the word being completed, often empty) and reading Cobra's `__complete` answer:
//! one candidate a line (`value<TAB>description`), then `:<directive>`. This crate ships that
//! executable (`kubectl_complete-ramp`, installed next to `kubectl-ramp`); it also answers
//! `kubectl-ramp __complete …`.
//!
//! [`analyse`] is pure: it reads the words against the clap definition and says what is
//! wanted (subcommands, flags, rollout names, namespaces, contexts, files or fixed values).
//! [`complete`] fetches what needs the cluster (rollouts, namespaces) or the kubeconfig
//! (contexts) and renders the answer; a cluster that cannot be reached yields no candidates,
//! never an error on the user's terminal.

use clap::CommandFactory;

use crate::cli::{Cli, GlobalArgs};

/// Cobra's `ShellCompDirectiveDefault`: the shell may also complete file names.
pub const DIRECTIVE_DEFAULT: u32 = 0;
/// Cobra's `ShellCompDirectiveNoFileComp`: only the candidates given.
pub const DIRECTIVE_NO_FILE: u32 = 4;

/// What the word being completed should become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// A subcommand (`list`, `status`, `approve`, …), with its description.
    Subcommands,
    /// A flag of the subcommand (or a global flag before any subcommand).
    Flags,
    /// A rollout name in the namespace; `kind` is what was typed before a `/` (`ro/`), kept.
    Rollouts {
        /// E.g. `"ro/"`, or empty.
        kind: String,
    },
    /// A namespace name (`-n`).
    Namespaces,
    /// A kubeconfig context (`--context`).
    Contexts,
    /// A file name (`--kubeconfig`, `-f`): left to the shell.
    Files,
    /// One of a fixed list (`-o yaml|json`, `completion bash|zsh|fish`).
    Values(Vec<(String, String)>),
    /// Nothing to offer (a number, a duration, an extra argument).
    Nothing,
}

/// The analysis of the words typed so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// What is wanted.
    pub want: Want,
    /// The part of the word being completed that candidates must start with.
    pub partial: String,
    /// Put before every candidate (`--namespace=` when completing `--namespace=te`).
    pub prefix: String,
    /// The connection flags given so far (`-n`, `--context`, `--kubeconfig`).
    pub global: GlobalArgs,
    /// The subcommand typed before the word (canonical name, aliases resolved).
    pub subcommand: Option<String>,
}

/// The clap definition, built (so that every argument knows how many values it takes).
fn cli() -> clap::Command {
    let mut cmd = Cli::command();
    cmd.build();
    cmd
}

/// Subcommands whose one positional argument is a rollout.
const TAKES_ROLLOUT: &[&str] = &[
    "status", "approve", "abort", "retry", "promote", "pause", "resume", "undo",
];

fn canonical_subcommand(cmd: &clap::Command, word: &str) -> Option<String> {
    cmd.get_subcommands()
        .find(|s| s.get_name() == word || s.get_all_aliases().any(|a| a == word))
        .map(|s| s.get_name().to_string())
}

/// The argument of `cmd` (or of the root, for global flags) spelled `flag` (`-n`, `--namespace`).
fn find_flag<'a>(
    root: &'a clap::Command,
    sub: Option<&'a clap::Command>,
    flag: &str,
) -> Option<&'a clap::Arg> {
    let matches = |a: &&clap::Arg| match flag.strip_prefix("--") {
        Some(long) => a.get_long() == Some(long),
        None => {
            let mut chars = flag.chars().skip(1);
            matches!((chars.next(), chars.next()), (Some(c), None) if a.get_short() == Some(c))
        }
    };
    sub.into_iter()
        .flat_map(|s| s.get_arguments())
        .chain(root.get_arguments())
        .find(matches)
}

fn takes_value(arg: &clap::Arg) -> bool {
    arg.get_num_args().is_some_and(|n| n.takes_values()) && !arg.is_positional()
}

/// What a flag's value should be.
fn value_want(arg: &clap::Arg) -> Want {
    match arg.get_id().as_str() {
        "namespace" => Want::Namespaces,
        "context" => Want::Contexts,
        "kubeconfig" | "filename" => Want::Files,
        _ => {
            let values: Vec<(String, String)> = arg
                .get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| {
                    (
                        v.get_name().to_string(),
                        v.get_help().map(ToString::to_string).unwrap_or_default(),
                    )
                })
                .collect();
            if values.is_empty() {
                Want::Nothing
            } else {
                Want::Values(values)
            }
        }
    }
}

fn record_global(global: &mut GlobalArgs, arg: &clap::Arg, value: &str) {
    match arg.get_id().as_str() {
        "namespace" => global.namespace = Some(value.to_string()),
        "context" => global.context = Some(value.to_string()),
        "kubeconfig" => global.kubeconfig = Some(value.into()),
        _ => {}
    }
}

/// Reads the words typed after `kubectl ramp` (the last one is being completed).
pub fn analyse(words: &[String]) -> Request {
    let root = cli();
    let (partial, done) = match words.split_last() {
        Some((last, rest)) => (last.clone(), rest),
        None => (String::new(), &[][..]),
    };
    let mut global = GlobalArgs::default();
    let mut subcommand: Option<String> = None;
    let mut positionals = 0usize;
    let mut pending: Option<&clap::Arg> = None;
    let mut only_positionals = false;
    for word in done {
        let sub = subcommand.as_deref().and_then(|s| root.find_subcommand(s));
        if let Some(arg) = pending.take() {
            record_global(&mut global, arg, word);
            continue;
        }
        if !only_positionals && word == "--" {
            only_positionals = true;
            continue;
        }
        if !only_positionals && word.starts_with('-') && word.len() > 1 {
            let (flag, inline) = match word.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v)),
                _ if !word.starts_with("--") && word.len() > 2 => (&word[..2], Some(&word[2..])),
                _ => (word.as_str(), None),
            };
            if let Some(arg) = find_flag(&root, sub, flag).filter(|a| takes_value(a)) {
                match inline {
                    Some(v) => record_global(&mut global, arg, v),
                    None => pending = Some(arg),
                }
            }
            continue;
        }
        match &subcommand {
            None => subcommand = canonical_subcommand(&root, word).or(Some(word.clone())),
            Some(_) => positionals += 1,
        }
    }
    let sub = subcommand.as_deref().and_then(|s| root.find_subcommand(s));
    let request = |want, partial: &str, prefix: &str, global: GlobalArgs| Request {
        want,
        partial: partial.to_string(),
        prefix: prefix.to_string(),
        global,
        subcommand: sub.map(|s| s.get_name().to_string()),
    };
    if let Some(arg) = pending {
        return request(value_want(arg), &partial, "", global);
    }
    if !only_positionals && partial.starts_with('-') {
        if let Some((flag, value)) = partial.split_once('=')
            && let Some(arg) = find_flag(&root, sub, flag).filter(|a| takes_value(a))
        {
            let prefix = format!("{flag}=");
            return request(value_want(arg), value, &prefix, global);
        }
        return request(Want::Flags, &partial, "", global);
    }
    let want = match subcommand.as_deref() {
        None => Want::Subcommands,
        Some(s) if positionals == 0 && TAKES_ROLLOUT.contains(&s) => {
            if let Some((kind, name)) = partial.split_once('/') {
                let kind = format!("{kind}/");
                return request(Want::Rollouts { kind: kind.clone() }, name, &kind, global);
            }
            Want::Rollouts {
                kind: String::new(),
            }
        }
        Some("completion") if positionals == 0 => sub
            .and_then(|s| s.get_arguments().find(|a| a.is_positional()))
            .map_or(Want::Nothing, value_want),
        Some(_) => Want::Nothing,
    };
    request(want, &partial, "", global)
}

/// Candidates the clap definition knows (subcommands, flags, fixed values); `None` for those
/// that need the cluster or the kubeconfig.
pub fn static_candidates(req: &Request) -> Option<Vec<(String, String)>> {
    let root = cli();
    let help = |a: Option<&clap::builder::StyledStr>| {
        a.map(|s| {
            let text = s.to_string();
            text.lines()
                .next()
                .unwrap_or_default()
                .trim_end_matches('.')
                .to_string()
        })
        .unwrap_or_default()
    };
    match &req.want {
        Want::Subcommands => Some(
            root.get_subcommands()
                .filter(|s| !s.is_hide_set())
                .map(|s| (s.get_name().to_string(), help(s.get_about())))
                .collect(),
        ),
        Want::Flags => {
            let sub = req
                .subcommand
                .as_deref()
                .and_then(|s| root.find_subcommand(s));
            let mut out = Vec::new();
            for a in sub
                .iter()
                .flat_map(|s| s.get_arguments())
                .chain(root.get_arguments())
            {
                if a.is_positional() || a.is_hide_set() {
                    continue;
                }
                // Built subcommands repeat the global flags: offer each once.
                let spellings = [
                    a.get_long().map(|l| format!("--{l}")),
                    a.get_short().map(|c| format!("-{c}")),
                ];
                for flag in spellings.into_iter().flatten() {
                    if !out.iter().any(|(f, _)| *f == flag) {
                        out.push((flag, help(a.get_help())));
                    }
                }
            }
            Some(out)
        }
        Want::Values(v) => Some(v.clone()),
        Want::Files | Want::Nothing => Some(Vec::new()),
        Want::Rollouts { .. } | Want::Namespaces | Want::Contexts => None,
    }
}

/// Cobra's answer: candidates that start with `partial` (with `prefix` put back), one a line
/// with a tab before the description, then `:directive`.
pub fn render(req: &Request, candidates: &[(String, String)]) -> String {
    let mut out = String::new();
    for (value, description) in candidates {
        if !value.starts_with(&req.partial) {
            continue;
        }
        out.push_str(&req.prefix);
        out.push_str(value);
        if !description.is_empty() {
            out.push('\t');
            out.push_str(&description.replace(['\t', '\n'], " "));
        }
        out.push('\n');
    }
    let directive = if req.want == Want::Files {
        DIRECTIVE_DEFAULT
    } else {
        DIRECTIVE_NO_FILE
    };
    out.push_str(&format!(":{directive}\n"));
    out
}

/// Answers a completion request: the words typed after `kubectl ramp`.
pub async fn complete(words: &[String]) -> String {
    let req = analyse(words);
    let candidates = match static_candidates(&req) {
        Some(c) => c,
        None => dynamic_candidates(&req).await.unwrap_or_default(),
    };
    render(&req, &candidates)
}

/// Prints the answer for `words` on stdout; for the `kubectl_complete-ramp` executable and
/// `kubectl-ramp __complete`. Always exits 0: a failed lookup offers nothing.
pub fn main(words: &[String]) -> std::process::ExitCode {
    let answer = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(async {
            // A completion must not hang the shell on an unreachable cluster.
            tokio::time::timeout(std::time::Duration::from_secs(5), complete(words))
                .await
                .unwrap_or_else(|_| format!(":{DIRECTIVE_NO_FILE}\n"))
        }),
        Err(_) => format!(":{DIRECTIVE_NO_FILE}\n"),
    };
    print!("{answer}");
    std::process::ExitCode::SUCCESS
}

async fn dynamic_candidates(req: &Request) -> crate::Result<Vec<(String, String)>> {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Api, ListParams};
    match &req.want {
        Want::Contexts => {
            let kc = crate::cluster::read_kubeconfig(req.global.kubeconfig.as_deref())?;
            Ok(kc
                .map(|kc| {
                    kc.contexts
                        .into_iter()
                        .map(|c| {
                            let ns = c
                                .context
                                .and_then(|c| c.namespace)
                                .map(|n| format!("namespace {n}"))
                                .unwrap_or_default();
                            (c.name, ns)
                        })
                        .collect()
                })
                .unwrap_or_default())
        }
        Want::Namespaces => {
            let cluster = crate::cluster::connect(&req.global).await?;
            let api: Api<Namespace> = Api::all(cluster.client.clone());
            let list = api
                .list_metadata(&ListParams::default())
                .await
                .map_err(|e| crate::Error::Connection(e.to_string()))?;
            Ok(list
                .items
                .into_iter()
                .filter_map(|n| n.metadata.name)
                .map(|n| (n, String::new()))
                .collect())
        }
        Want::Rollouts { .. } => {
            let cluster = crate::cluster::connect(&req.global).await?;
            let rollouts = cluster.list_rollouts(false).await?;
            Ok(rollouts
                .iter()
                .filter_map(|ro| Some((ro.metadata.name.clone()?, crate::model::position(ro))))
                .collect())
        }
        _ => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn words(s: &str) -> Vec<String> {
        // A trailing space means the word being completed is empty.
        let mut w: Vec<String> = s.split_whitespace().map(String::from).collect();
        if s.is_empty() || s.ends_with(' ') {
            w.push(String::new());
        }
        w
    }

    fn names(req: &Request) -> Vec<String> {
        let c = static_candidates(req).unwrap();
        render(req, &c)
            .lines()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect()
    }

    #[test]
    fn what_each_position_wants() {
        let cases: &[(&str, Want, &str, &str)] = &[
            ("", Want::Subcommands, "", ""),
            ("ap", Want::Subcommands, "ap", ""),
            (
                "approve ",
                Want::Rollouts {
                    kind: String::new(),
                },
                "",
                "",
            ),
            (
                "-n team approve de",
                Want::Rollouts {
                    kind: String::new(),
                },
                "de",
                "",
            ),
            (
                "approve ro/de",
                Want::Rollouts { kind: "ro/".into() },
                "de",
                "ro/",
            ),
            (
                "get ",
                Want::Rollouts {
                    kind: String::new(),
                },
                "",
                "",
            ),
            ("approve demo ", Want::Nothing, "", ""),
            ("approve demo --st", Want::Flags, "--st", ""),
            ("list -", Want::Flags, "-", ""),
            ("approve -n ", Want::Namespaces, "", ""),
            (
                "approve --namespace=te",
                Want::Namespaces,
                "te",
                "--namespace=",
            ),
            ("--context ", Want::Contexts, "", ""),
            ("--kubeconfig ", Want::Files, "", ""),
            ("convert -f ", Want::Files, "", ""),
            ("approve demo --step ", Want::Nothing, "", ""),
            ("list -A ", Want::Nothing, "", ""),
        ];
        for (typed, want, partial, prefix) in cases {
            let req = analyse(&words(typed));
            assert_eq!(
                (&req.want, req.partial.as_str(), req.prefix.as_str()),
                (want, *partial, *prefix),
                "{typed:?}"
            );
        }
    }

    #[test]
    fn connection_flags_are_read_wherever_they_stand() {
        let req = analyse(&words(
            "--context prod -n team status --kubeconfig=/tmp/kc de",
        ));
        assert_eq!(req.global.context.as_deref(), Some("prod"));
        assert_eq!(req.global.namespace.as_deref(), Some("team"));
        assert_eq!(
            req.global.kubeconfig.as_deref(),
            Some(std::path::Path::new("/tmp/kc"))
        );
        let attached = analyse(&words("-nteam approve "));
        assert_eq!(attached.global.namespace.as_deref(), Some("team"));
    }

    #[test]
    fn subcommands_flags_and_values_come_from_the_cli_definition() {
        let typed = words("");
        let all = names(&analyse(&typed));
        for s in [
            "list", "status", "approve", "abort", "retry", "promote", "pause", "resume",
        ] {
            assert!(all.contains(&s.to_string()), "{s} in {all:?}");
        }
        assert_eq!(all.last().map(String::as_str), Some(":4"));

        let typed = words("pro");
        assert_eq!(names(&analyse(&typed)), vec!["promote", ":4"]);

        let typed = words("promote demo --f");
        assert_eq!(names(&analyse(&typed)), vec!["--full", ":4"]);
        // A flag's value that happens to name a subcommand is not taken for one.
        let typed = words("-n list promote demo --f");
        assert_eq!(names(&analyse(&typed)), vec!["--full", ":4"]);

        let typed = words("status demo -o ");
        assert_eq!(names(&analyse(&typed)), vec!["yaml", "json", ":4"]);

        let typed = words("completion ");
        assert_eq!(names(&analyse(&typed)), vec!["bash", "zsh", "fish", ":4"]);

        let typed = words("status demo --output=j");
        assert_eq!(names(&analyse(&typed)), vec!["--output=json", ":4"]);

        // Files are left to the shell: no candidates, default directive.
        let typed = words("convert -f ");
        assert_eq!(names(&analyse(&typed)), vec![":0"]);
    }

    #[test]
    fn the_answer_is_in_cobras_format() {
        let req = Request {
            want: Want::Rollouts { kind: "ro/".into() },
            partial: "de".into(),
            prefix: "ro/".into(),
            global: GlobalArgs::default(),
            subcommand: Some("approve".into()),
        };
        let out = render(
            &req,
            &[
                ("demo".into(), "Progressing\tstep 2/3".into()),
                ("other".into(), String::new()),
                ("dev".into(), String::new()),
            ],
        );
        assert_eq!(out, "ro/demo\tProgressing step 2/3\nro/dev\n:4\n");
    }
}
