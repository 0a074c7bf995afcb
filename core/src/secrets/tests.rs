//! Secrets against SQLite with the real migrations and a native AES-256-GCM.

use super::*;
use crate::testing::{block_on, NativeCipher, SqliteSql};

fn key(byte: u8) -> Key {
    Key::parse("SECRETS_KEY", &STANDARD.encode([byte; 32])).expect("32 bytes")
}

fn app() -> AppName {
    AppName::parse("hello").expect("name")
}

fn var(name: &str) -> EnvVarName {
    EnvVarName::parse(name).expect("name")
}

#[test]
fn stored_encrypted_listed_without_values_revealed_for_machines() {
    let db = SqliteSql::migrated();
    let store = SecretStore::new(&db);
    let cipher = NativeCipher::default();
    let keys = SecretsKeys {
        current: key(1),
        previous: None,
    };
    let put = |name: &str, value: &str, at: i64| {
        block_on(store.put(
            &cipher,
            &keys,
            (&app(), EnvType::Preview, &var(name)),
            &Secret::new(value),
            Timestamp::from_millis(at),
        ))
        .expect("put")
    };
    assert!(put("DATABASE_URL", "postgres://user:hunter2@db/app", 1));
    assert!(put("API_KEY", "sk-live-123", 2));
    assert!(!put("API_KEY", "sk-live-456", 3), "replaced");

    let raw: String = db
        .conn_for_tests()
        .query_row(
            "SELECT group_concat(ciphertext || nonce || key_id) FROM app_secrets",
            [],
            |r| r.get(0),
        )
        .expect("row");
    assert!(
        !raw.contains("hunter2") && !raw.contains("sk-live"),
        "nothing stored in the clear"
    );

    let listed = block_on(store.list(&app(), EnvType::Preview)).expect("list");
    let json = serde_json::to_string(&listed).expect("json");
    assert_eq!(
        json,
        r#"[{"name":"API_KEY","updated_at":3},{"name":"DATABASE_URL","updated_at":1}]"#
    );
    assert!(block_on(store.list(&app(), EnvType::Production))
        .expect("list")
        .is_empty());

    let revealed =
        block_on(store.reveal_all(&cipher, &keys, &app(), EnvType::Preview)).expect("reveal");
    let pairs: Vec<(String, String)> = revealed
        .iter()
        .map(|(n, v)| (n.clone(), v.expose().to_owned()))
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("API_KEY".into(), "sk-live-456".into()),
            (
                "DATABASE_URL".into(),
                "postgres://user:hunter2@db/app".into()
            )
        ]
    );
    assert!(block_on(store.delete(&app(), EnvType::Preview, &var("API_KEY"))).expect("delete"));
    assert!(!block_on(store.delete(&app(), EnvType::Preview, &var("API_KEY"))).expect("delete"));
}

#[test]
fn a_ciphertext_moved_to_another_secret_does_not_decrypt() {
    let db = SqliteSql::migrated();
    let store = SecretStore::new(&db);
    let cipher = NativeCipher::default();
    let keys = SecretsKeys {
        current: key(1),
        previous: None,
    };
    block_on(store.put(
        &cipher,
        &keys,
        (&app(), EnvType::Production, &var("TOKEN")),
        &Secret::new("t"),
        Timestamp::from_millis(1),
    ))
    .expect("put");
    db.conn_for_tests()
        .execute("UPDATE app_secrets SET name = 'OTHER'", [])
        .expect("tamper");
    let err = block_on(store.reveal_all(&cipher, &keys, &app(), EnvType::Production))
        .expect_err("bound to its slot");
    assert_eq!(err, SecretsError::Corrupt("OTHER".into()));
}

#[test]
fn the_key_can_be_rotated() {
    let db = SqliteSql::migrated();
    let store = SecretStore::new(&db);
    let cipher = NativeCipher::default();
    let old = SecretsKeys {
        current: key(1),
        previous: None,
    };
    block_on(store.put(
        &cipher,
        &old,
        (&app(), EnvType::Preview, &var("A")),
        &Secret::new("under the old key"),
        Timestamp::from_millis(1),
    ))
    .expect("put");
    let rotating = SecretsKeys {
        current: key(2),
        previous: Some(key(1)),
    };
    block_on(store.put(
        &cipher,
        &rotating,
        (&app(), EnvType::Preview, &var("B")),
        &Secret::new("under the new key"),
        Timestamp::from_millis(2),
    ))
    .expect("put");
    let both =
        block_on(store.reveal_all(&cipher, &rotating, &app(), EnvType::Preview)).expect("reveal");
    assert_eq!(both.len(), 2);
    let new_only = SecretsKeys {
        current: key(2),
        previous: None,
    };
    assert_eq!(
        block_on(store.reveal_all(&cipher, &new_only, &app(), EnvType::Preview))
            .expect_err("old key gone"),
        SecretsError::UnknownKey("A".into())
    );
}

#[test]
fn names_keys_and_env_types() {
    assert!(EnvType::parse("staging").is_err());
    assert!(Key::parse("SECRETS_KEY", "c2hvcnQ=").is_err());
    assert_eq!(format!("{:?}", key(7)), "Key(***)");
}
