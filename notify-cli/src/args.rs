//! Command-line flags. Hand-parsed: the binary runs inside every build, so it stays
//! small and starts in milliseconds.

use std::time::Duration;

/// Default total time budget; a build must never wait long on a notification.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

pub const USAGE: &str = "\
notify-deploy: announce a deployment to edge-notifier (POST /notify).

Usage: notify-deploy [options]

Reads Workers Builds (WORKERS_CI_*), Cloudflare Pages (CF_PAGES_*) and GitHub Actions
(GITHUB_*) variables, then git, then these options (which win):

  --project NAME          project name (default: `name` in ./wrangler.toml or wrangler.json)
  --type worker|pages     what was deployed (default: pages under Cloudflare Pages, else worker)
  --environment ENV       production, preview, staging, ... (default: production; Pages
                          branches other than main/master: preview)
  --deployment-id ID      the deployment's id (default: the CI build or run id)
  --url URL               the deployment's URL (default: CF_PAGES_URL)
  --notify-url URL        the Worker (default: NOTIFY_URL); /notify is added if missing
  --token TOKEN           the Bearer token (default: NOTIFY_TOKEN); never printed
  --timeout SECONDS       total time budget, retries included (default: 5)
  --strict                exit non-zero when the notification fails (default: exit 0,
                          so the build goes on)
  --dry-run               print the JSON it would send, send nothing
  -h, --help              this text
  -V, --version           the version
";

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Args {
    pub project: Option<String>,
    pub kind: Option<String>,
    pub environment: Option<String>,
    pub deployment_id: Option<String>,
    pub url: Option<String>,
    pub notify_url: Option<String>,
    pub token: Option<String>,
    pub timeout: Option<Duration>,
    pub strict: bool,
    pub dry_run: bool,
    pub help: bool,
    pub version: bool,
}

/// Parses the flags (without the program name). An error names the flag.
pub fn parse(argv: &[String]) -> Result<Args, String> {
    let mut args = Args::default();
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = |flag: &str| -> Result<String, String> {
            match inline.clone().or_else(|| it.next().cloned()) {
                Some(v) if !v.is_empty() => Ok(v),
                _ => Err(format!("{flag} needs a value")),
            }
        };
        match name {
            "--project" => args.project = Some(value(name)?),
            "--type" => {
                let v = value(name)?;
                if v != "worker" && v != "pages" {
                    return Err(format!("--type must be worker or pages, not {v:?}"));
                }
                args.kind = Some(v);
            }
            "--environment" | "--env" => args.environment = Some(value(name)?),
            "--deployment-id" => args.deployment_id = Some(value(name)?),
            "--url" => args.url = Some(value(name)?),
            "--notify-url" => args.notify_url = Some(value(name)?),
            "--token" => args.token = Some(value(name)?),
            "--timeout" => {
                let v = value(name)?;
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 600.0)
                    .ok_or_else(|| format!("--timeout takes seconds (0 to 600), not {v:?}"))?;
                args.timeout = Some(Duration::from_secs_f64(secs));
            }
            "--strict" => args.strict = true,
            "--dry-run" => args.dry_run = true,
            "-h" | "--help" => args.help = true,
            "-V" | "--version" => args.version = true,
            other => return Err(format!("unknown option {other} (see --help)")),
        }
    }
    Ok(args)
}

/// Whether `--strict` appears at all: a usage error still honours it.
pub fn strict_requested(argv: &[String]) -> bool {
    argv.iter().any(|a| a == "--strict")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Result<Args, String> {
        parse(&v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_with_spaces_and_equals() {
        let a = p(&[
            "--project",
            "api",
            "--type=pages",
            "--environment",
            "staging",
            "--timeout",
            "2.5",
            "--strict",
            "--dry-run",
        ])
        .expect("parses");
        assert_eq!(a.project.as_deref(), Some("api"));
        assert_eq!(a.kind.as_deref(), Some("pages"));
        assert_eq!(a.environment.as_deref(), Some("staging"));
        assert_eq!(a.timeout, Some(Duration::from_millis(2500)));
        assert!(a.strict && a.dry_run);
    }

    #[test]
    fn errors_name_the_flag() {
        assert_eq!(
            p(&["--type", "lambda"]).expect_err("an error"),
            "--type must be worker or pages, not \"lambda\""
        );
        assert_eq!(
            p(&["--project"]).expect_err("an error"),
            "--project needs a value"
        );
        assert_eq!(
            p(&["--timeout", "-1"]).expect_err("an error"),
            "--timeout takes seconds (0 to 600), not \"-1\""
        );
        assert_eq!(
            p(&["--bogus"]).expect_err("an error"),
            "unknown option --bogus (see --help)"
        );
        assert!(strict_requested(&["--bogus".into(), "--strict".into()]));
    }
}
