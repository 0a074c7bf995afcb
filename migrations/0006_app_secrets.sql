-- App secrets, encrypted (AES-256-GCM under SECRETS_KEY). `key_id` names the key a
-- value was sealed with, so the key can be rotated; nonce and ciphertext are base64.
CREATE TABLE app_secrets (
  app        TEXT    NOT NULL,
  env_type   TEXT    NOT NULL CHECK (env_type IN ('preview', 'production')),
  name       TEXT    NOT NULL,
  key_id     TEXT    NOT NULL,
  nonce      TEXT    NOT NULL,
  ciphertext TEXT    NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (app, env_type, name)
);
