//! Whether a push is older than what an app deploys. A push redelivered late, or its
//! signed body re-posted under a fresh delivery id, must not roll production back.
//!
//! Pure: the candidate push, the app's reference commits (its last finalized, its
//! active and its next waiting job's) and the chain of pushes its jobs recorded
//! decide what they can; what the chain cannot tell goes to GitHub's compare API.

use crate::github::events::PushEvent;
use crate::github::CommitSha;

#[cfg(test)]
use crate::github::client::CompareStatus;

/// One push as the chain knows it: `after` was pushed on top of `before`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushLink {
    /// `None` for a new branch, or a job recorded before `before` was kept.
    pub before: Option<CommitSha>,
    pub after: CommitSha,
    /// A forced push: `before` need not be an ancestor of `after`.
    pub forced: bool,
    /// Commits the push listed: every one is an ancestor of `after` (or `after`).
    pub commits: Vec<CommitSha>,
}

impl PushLink {
    pub fn of(push: &PushEvent) -> PushLink {
        PushLink {
            before: (!push.before.is_zero()).then(|| push.before.clone()),
            after: push.after.clone(),
            forced: push.forced,
            commits: push.commits.iter().map(|c| c.id.clone()).collect(),
        }
    }
}

/// What the chain says about a candidate against one reference commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chain {
    /// The candidate is the reference, or one of its ancestors.
    Stale,
    /// The reference is an ancestor of the candidate.
    Newer,
    /// The chain does not reach: ask GitHub.
    Undecided,
}

/// Commits known to be `start` or its ancestors: the commits of the links that end
/// at `start` (and `first`), and through each non-forced link's `before` and each
/// listed commit, of the links that end there, and so on.
fn ancestry<'a>(
    start: &'a CommitSha,
    first: Option<&'a PushLink>,
    history: &'a [PushLink],
) -> Vec<&'a CommitSha> {
    // Vectors, not hash sets: the history is a few dozen pushes, and the Worker
    // would carry hash map code for this alone.
    let mut known: Vec<&CommitSha> = vec![start];
    let mut frontier: Vec<&CommitSha> = vec![start];
    let mut links: Vec<&PushLink> = first.into_iter().collect();
    loop {
        for link in links.drain(..) {
            let before = link.before.as_ref().filter(|_| !link.forced);
            for c in link.commits.iter().chain(before) {
                if !known.contains(&c) {
                    known.push(c);
                    frontier.push(c);
                }
            }
        }
        let Some(next) = frontier.pop() else {
            return known;
        };
        links.extend(history.iter().filter(|l| &l.after == next));
    }
}

/// What the chain says about `candidate` against `reference`.
pub fn judge(candidate: &PushLink, reference: &CommitSha, history: &[PushLink]) -> Chain {
    if &candidate.after == reference {
        return Chain::Stale;
    }
    if ancestry(&candidate.after, Some(candidate), history).contains(&reference) {
        return Chain::Newer;
    }
    if ancestry(reference, None, history).contains(&&candidate.after) {
        return Chain::Stale;
    }
    Chain::Undecided
}

/// The candidate against every reference: the first reference it is stale against
/// by the chain, or the references the chain left undecided (GitHub's compare API
/// answers for those).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<'a> {
    StaleAgainst(&'a CommitSha),
    Ask(Vec<&'a CommitSha>),
}

pub fn verdict<'a>(
    candidate: &PushLink,
    references: &'a [CommitSha],
    history: &[PushLink],
) -> Verdict<'a> {
    let mut ask = Vec::new();
    for r in references {
        match judge(candidate, r, history) {
            Chain::Stale => return Verdict::StaleAgainst(r),
            Chain::Newer => {}
            Chain::Undecided => ask.push(r),
        }
    }
    Verdict::Ask(ask)
}

/// The reason a stale push is ignored with, naming both commits.
pub fn reason(candidate: &CommitSha, deployed: &CommitSha) -> String {
    format!(
        "older than the deployed commit (push {}, deployed {})",
        candidate.short(),
        deployed.short()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(n: u8) -> CommitSha {
        CommitSha::parse(&format!("{n:02x}").repeat(20)).expect("sha")
    }

    /// A push of `after` on top of `before` listing `commits` (plus `after`).
    fn link(before: Option<u8>, after: u8, commits: &[u8]) -> PushLink {
        PushLink {
            before: before.map(sha),
            after: sha(after),
            forced: false,
            commits: commits.iter().copied().chain([after]).map(sha).collect(),
        }
    }

    #[test]
    fn the_deployed_commit_itself_is_stale() {
        assert_eq!(judge(&link(Some(1), 2, &[]), &sha(2), &[]), Chain::Stale);
    }

    #[test]
    fn a_push_on_top_of_the_deployed_commit_is_newer() {
        assert_eq!(judge(&link(Some(1), 2, &[]), &sha(1), &[]), Chain::Newer);
        // Listed among its commits: the deployed commit came in the same push.
        assert_eq!(judge(&link(Some(1), 3, &[2]), &sha(2), &[]), Chain::Newer);
        // Through recorded pushes: 1 → 2 → 3 → 4.
        let history = [link(Some(2), 3, &[]), link(Some(1), 2, &[])];
        assert_eq!(
            judge(&link(Some(3), 4, &[]), &sha(1), &history),
            Chain::Newer
        );
    }

    #[test]
    fn an_ancestor_of_the_deployed_commit_is_stale() {
        // Deployed 4, pushed as 1 → 2 → 4 (4 listing 3): a late 2, or 3, or 1 is older.
        let history = [link(Some(2), 4, &[3]), link(Some(1), 2, &[])];
        for old in [1, 2, 3] {
            assert_eq!(
                judge(&link(None, old, &[]), &sha(4), &history),
                Chain::Stale,
                "{old}"
            );
        }
    }

    #[test]
    fn what_the_chain_does_not_reach_is_undecided() {
        let history = [link(Some(2), 4, &[3])];
        // A new branch push of an unknown commit, and a push on an unknown parent.
        assert_eq!(
            judge(&link(None, 9, &[]), &sha(4), &history),
            Chain::Undecided
        );
        assert_eq!(
            judge(&link(Some(8), 9, &[]), &sha(4), &history),
            Chain::Undecided
        );
    }

    #[test]
    fn a_forced_push_does_not_vouch_for_its_before() {
        // 5 was force-pushed over 4: 4 is no ancestor of 5, and neither is 3.
        let forced = PushLink {
            forced: true,
            ..link(Some(4), 5, &[])
        };
        let history = [forced.clone(), link(Some(3), 4, &[])];
        assert_eq!(
            judge(&link(None, 3, &[]), &sha(5), &history),
            Chain::Undecided
        );
        assert_eq!(judge(&forced, &sha(4), &history), Chain::Undecided);
        // Its listed commits are still its ancestors.
        let forced_listing = PushLink {
            commits: vec![sha(6), sha(5)],
            ..forced
        };
        assert_eq!(
            judge(&link(None, 6, &[]), &sha(5), &[forced_listing]),
            Chain::Stale
        );
    }

    #[test]
    fn a_cycle_in_bad_records_ends() {
        let history = [link(Some(2), 1, &[]), link(Some(1), 2, &[])];
        assert_eq!(
            judge(&link(None, 9, &[]), &sha(1), &history),
            Chain::Undecided
        );
    }

    #[test]
    fn every_reference_is_checked_and_the_undecided_ones_asked() {
        let history = [link(Some(1), 2, &[])];
        let refs = [sha(1), sha(7)];
        assert_eq!(
            verdict(&link(Some(2), 3, &[]), &refs, &history),
            Verdict::Ask(vec![&sha(7)])
        );
        let refs = [sha(7), sha(2)];
        assert_eq!(
            verdict(&link(None, 1, &[]), &refs, &history),
            Verdict::StaleAgainst(&sha(2))
        );
        assert_eq!(
            verdict(&link(Some(2), 3, &[]), &[], &history),
            Verdict::Ask(vec![])
        );
    }

    #[test]
    fn compare_statuses() {
        for (s, stale) in [
            ("behind", true),
            ("identical", true),
            ("ahead", false),
            ("diverged", false),
        ] {
            assert_eq!(
                CompareStatus::parse(s).map(CompareStatus::is_stale),
                Some(stale)
            );
        }
        assert_eq!(CompareStatus::parse("sideways"), None);
        assert_eq!(
            reason(&sha(1), &sha(0xab)),
            "older than the deployed commit (push 0101010, deployed abababa)"
        );
    }
}
