//! GitHub: webhook signatures, the typed events the flows act on, and the ids they
//! carry. Verification happens on the raw bytes before anything is parsed.

pub mod app;
pub mod client;
pub mod deliveries;
pub mod events;
pub mod identity;
pub mod intake;
pub mod redeliver;
pub mod webhook;

use serde::Serialize;

/// `owner/repo`, as GitHub spells it (compared case-insensitively, as GitHub does).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, crate::json::FromJson)]
#[json(try_from = "String")]
#[serde(into = "String")]
pub struct RepoFullName(String);

impl RepoFullName {
    pub fn parse(s: &str) -> Option<Self> {
        let (owner, repo) = s.split_once('/')?;
        // `.` and `..` are path segments, never names: either half goes into URLs.
        let ok = |p: &str| {
            !p.is_empty()
                && p.len() <= 100
                && p != "."
                && p != ".."
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        (ok(owner) && ok(repo)).then(|| RepoFullName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The repository's name without its owner (`Hello-World`).
    pub fn name(&self) -> &str {
        self.0
            .split_once('/')
            .map_or(self.0.as_str(), |(_, name)| name)
    }

    pub fn same_as(&self, other: &RepoFullName) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl TryFrom<String> for RepoFullName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        RepoFullName::parse(&s).ok_or_else(|| format!("{s:?} is not owner/repo"))
    }
}

impl From<RepoFullName> for String {
    fn from(r: RepoFullName) -> String {
        r.0
    }
}

/// A full git object id (40 hex digits for SHA-1, 64 for SHA-256), lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, crate::json::FromJson)]
#[json(try_from = "String")]
#[serde(into = "String")]
pub struct CommitSha(String);

impl CommitSha {
    pub fn parse(s: &str) -> Option<Self> {
        ((s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| CommitSha(s.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn short(&self) -> &str {
        &self.0[..7]
    }

    /// The all-zero id GitHub uses for "no commit" (a created or deleted ref).
    pub fn is_zero(&self) -> bool {
        self.0.bytes().all(|b| b == b'0')
    }
}

impl TryFrom<String> for CommitSha {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        CommitSha::parse(&s).ok_or_else(|| format!("{s:?} is not a commit sha"))
    }
}

impl From<CommitSha> for String {
    fn from(c: CommitSha) -> String {
        c.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_names() {
        assert!(RepoFullName::parse("Codertocat/Hello-World").is_some());
        assert!(RepoFullName::parse("octo-org/octo.repo_2").is_some());
        assert!(
            RepoFullName::parse("..a/b.").is_some(),
            "dots inside a name are fine"
        );
        for bad in [
            "nope", "/x", "x/", "a/b/c", "a/..", "a b/c", "../x", "./x", "a/.", "../..",
        ] {
            assert!(RepoFullName::parse(bad).is_none(), "{bad}");
        }
        let a = RepoFullName::parse("Codertocat/Hello-World").expect("valid");
        let b = RepoFullName::parse("codertocat/hello-world").expect("valid");
        assert!(a.same_as(&b));
    }

    #[test]
    fn shas() {
        let s = CommitSha::parse("6113728F27AE82C7B1A177C8D03F9E96E0ADF246").expect("valid");
        assert_eq!(s.as_str(), "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
        assert_eq!(s.short(), "6113728");
        assert!(CommitSha::parse(&"0".repeat(40)).expect("valid").is_zero());
        assert!(CommitSha::parse("abc").is_none());
    }
}
