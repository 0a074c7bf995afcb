//! Who is looking at a page.

/// A signed-in person: through Cloudflare Access (by email) or the sign-in form
/// (the holder of `ADMIN_TOKEN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// Who, as the audit trail names them: the Access email, or `admin`.
    pub name: String,
    /// Whether they may approve, reject, roll back and retry from the pages.
    pub operator: bool,
    /// The token every form of theirs carries; a POST without it is refused.
    pub csrf: String,
}
