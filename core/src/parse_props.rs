//! Property tests: every parser that sees unauthenticated or admin input returns
//! (`Ok` or `Err`) for arbitrary strings and bytes instead of panicking.

use proptest::prelude::*;

use crate::auth::check_bearer;
use crate::github::deliveries::DeliveryId;
use crate::github::redeliver::Hook;
use crate::github::webhook::Signature;
use crate::github::{CommitSha, RepoFullName};
use crate::http::query_param;
use crate::secret::Secret;

proptest! {
    #[test]
    fn signature_headers_never_panic(s in any::<String>()) {
        let _ = Signature::parse(Some(&s));
        let _ = Signature::parse(Some(&format!("sha256={s}")));
    }

    #[test]
    fn sixty_four_byte_signatures_of_any_characters_never_panic(
        s in "[0-9a-f\u{e9}\u{1F600}\u{0}]{1,64}"
    ) {
        let _ = Signature::parse(Some(&format!("sha256={s}")));
    }

    #[test]
    fn bearer_headers_never_panic(s in any::<String>()) {
        let _ = check_bearer(Some(&s), &Secret::new("token"));
        let _ = check_bearer(Some(&format!("Bearer {s}")), &Secret::new("token"));
    }

    #[test]
    fn identifiers_never_panic(s in any::<String>()) {
        let _ = DeliveryId::parse(&s);
        let _ = Hook::parse(&s);
        let _ = RepoFullName::parse(&s);
        let _ = CommitSha::parse(&s);
    }

    #[test]
    fn query_strings_never_panic(s in any::<String>(), name in any::<String>()) {
        let _ = query_param(&format!("https://x/?{s}"), &name);
        let _ = query_param(&s, "id");
    }

    #[test]
    fn notify_bodies_of_arbitrary_bytes_never_panic(body in any::<Vec<u8>>()) {
        let _ = crate::notify::parse_notify_body(
            &body,
            crate::time::Timestamp::from_millis(1_736_937_000_000),
        );
    }

    #[test]
    fn fly_app_names_are_valid_for_any_branch(branch in any::<String>(), pr in any::<u64>()) {
        let v = serde_json::json!({"org": "acme", "image": "registry.fly.io/hello:{sha}"});
        let settings: crate::preview::PreviewSettings =
            crate::json::from_value(&v).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let name = settings.fly_app_name("hello", pr, &branch);
        prop_assert!(name.len() <= 63);
        prop_assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
    }
}
