-- +goose Up
-- Times are Unix microseconds (BIGINT): the same on SQLite and PostgreSQL, sortable, no zones.
CREATE TABLE sandboxes (
    id                 TEXT PRIMARY KEY,
    owner              TEXT NOT NULL,
    profile_id         TEXT NOT NULL,
    cargo_id           TEXT NOT NULL,
    current_session_id TEXT,
    created_at         BIGINT NOT NULL,
    expires_at         BIGINT,
    idle_expires_at    BIGINT,
    last_active_at     BIGINT NOT NULL,
    deleted_at         BIGINT,
    is_warm            BOOLEAN NOT NULL DEFAULT FALSE,
    warm_state         TEXT,
    warm_ready_at      BIGINT,
    warm_rotate_at     BIGINT
);
CREATE INDEX ix_sandboxes_owner_id ON sandboxes (owner, id);
CREATE INDEX ix_sandboxes_expires ON sandboxes (expires_at);
CREATE INDEX ix_sandboxes_idle ON sandboxes (idle_expires_at);
CREATE INDEX ix_sandboxes_warm ON sandboxes (is_warm, profile_id, warm_state);

CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    sandbox_id     TEXT NOT NULL,
    profile_id     TEXT NOT NULL,
    container_id   TEXT NOT NULL DEFAULT '',
    endpoint       TEXT NOT NULL DEFAULT '',
    token          TEXT NOT NULL,
    network        TEXT NOT NULL DEFAULT '',
    desired_state  TEXT NOT NULL,
    observed_state TEXT NOT NULL,
    containers     TEXT NOT NULL DEFAULT '[]',
    created_at     BIGINT NOT NULL,
    started_at     BIGINT,
    last_active_at BIGINT NOT NULL,
    version        BIGINT NOT NULL DEFAULT 0
);
-- The database guard of house rule 4: one live session per sandbox, whichever Bay replica starts it.
CREATE UNIQUE INDEX ux_sessions_one_live ON sessions (sandbox_id)
    WHERE observed_state IN ('pending', 'starting', 'running');
CREATE INDEX ix_sessions_sandbox ON sessions (sandbox_id);

CREATE TABLE cargos (
    id                    TEXT PRIMARY KEY,
    owner                 TEXT NOT NULL,
    managed               BOOLEAN NOT NULL,
    managed_by_sandbox_id TEXT,
    backend               TEXT NOT NULL,
    driver_ref            TEXT NOT NULL,
    size_limit_mb         INTEGER NOT NULL,
    created_at            BIGINT NOT NULL,
    last_accessed_at      BIGINT NOT NULL
);
CREATE INDEX ix_cargos_owner_id ON cargos (owner, id);

CREATE TABLE executions (
    id                 TEXT PRIMARY KEY,
    sandbox_id         TEXT NOT NULL,
    owner              TEXT NOT NULL,
    session_id         TEXT NOT NULL,
    exec_type          TEXT NOT NULL,
    code               TEXT NOT NULL,
    success            BOOLEAN NOT NULL,
    execution_time_ms  BIGINT NOT NULL,
    output             TEXT,
    error              TEXT,
    payload_ref        TEXT,
    description        TEXT,
    tags               TEXT,
    notes              TEXT,
    learn_enabled      BOOLEAN NOT NULL DEFAULT FALSE,
    learn_status       TEXT,
    learn_error        TEXT,
    learn_processed_at BIGINT,
    created_at         BIGINT NOT NULL,
    seq                BIGINT NOT NULL
);
CREATE INDEX ix_executions_sandbox ON executions (sandbox_id, created_at);

CREATE TABLE idempotency_keys (
    owner       TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    response    TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (owner, key)
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    key_hash   TEXT NOT NULL UNIQUE,
    owner      TEXT NOT NULL,
    active     BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT NOT NULL
);

-- Duties several Bay replicas must not do at once (GC, warm-pool upkeep).
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE leases;
DROP TABLE api_keys;
DROP TABLE idempotency_keys;
DROP TABLE executions;
DROP TABLE cargos;
DROP TABLE sessions;
DROP TABLE sandboxes;
