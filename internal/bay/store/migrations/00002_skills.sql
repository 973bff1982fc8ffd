-- +goose Up
-- Skills lifecycle (upstream-contract §1.11): payload blobs, candidates, evaluations, releases.
-- Times are Unix microseconds, as in 00001. Soft deletes keep rows (is_deleted + deleted_at).
CREATE TABLE skill_blobs (
    id         TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    kind       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE skill_candidates (
    id                    TEXT PRIMARY KEY,
    owner                 TEXT NOT NULL,
    skill_key             TEXT NOT NULL,
    scenario_key          TEXT,
    payload_ref           TEXT,
    skill_type            TEXT NOT NULL DEFAULT 'code',
    auto_release_eligible BOOLEAN NOT NULL DEFAULT FALSE,
    auto_release_reason   TEXT,
    summary               TEXT,
    usage_notes           TEXT,
    preconditions         TEXT,
    postconditions        TEXT,
    source_execution_ids  TEXT NOT NULL,
    status                TEXT NOT NULL,
    latest_score          DOUBLE PRECISION,
    latest_pass           BOOLEAN,
    last_evaluated_at     BIGINT,
    promotion_release_id  TEXT,
    created_by            TEXT,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL,
    is_deleted            BOOLEAN NOT NULL DEFAULT FALSE,
    deleted_at            BIGINT,
    deleted_by            TEXT,
    delete_reason         TEXT,
    seq                   BIGINT NOT NULL
);
CREATE INDEX ix_skill_candidates_owner ON skill_candidates (owner, created_at);

CREATE TABLE skill_evaluations (
    id           TEXT PRIMARY KEY,
    owner        TEXT NOT NULL,
    candidate_id TEXT NOT NULL,
    benchmark_id TEXT,
    score        DOUBLE PRECISION,
    passed       BOOLEAN NOT NULL,
    report       TEXT,
    evaluated_by TEXT,
    created_at   BIGINT NOT NULL,
    seq          BIGINT NOT NULL
);
CREATE INDEX ix_skill_evaluations_candidate ON skill_evaluations (candidate_id, created_at);

CREATE TABLE skill_releases (
    id                    TEXT PRIMARY KEY,
    owner                 TEXT NOT NULL,
    skill_key             TEXT NOT NULL,
    candidate_id          TEXT NOT NULL,
    version               BIGINT NOT NULL,
    stage                 TEXT NOT NULL,
    is_active             BOOLEAN NOT NULL,
    release_mode          TEXT NOT NULL DEFAULT 'manual',
    promoted_by           TEXT,
    promoted_at           BIGINT NOT NULL,
    rollback_of           TEXT,
    auto_promoted_from    TEXT,
    health_window_end_at  BIGINT,
    upgrade_of_release_id TEXT,
    upgrade_reason        TEXT,
    change_summary        TEXT,
    is_deleted            BOOLEAN NOT NULL DEFAULT FALSE,
    deleted_at            BIGINT,
    deleted_by            TEXT,
    delete_reason         TEXT
);
-- Database guards (whichever Bay replica promotes): versions are unique per owner+skill_key,
-- and at most one release of a skill key is active.
CREATE UNIQUE INDEX ux_skill_releases_version ON skill_releases (owner, skill_key, version);
CREATE UNIQUE INDEX ux_skill_releases_one_active ON skill_releases (owner, skill_key) WHERE is_active;
CREATE INDEX ix_skill_releases_candidate ON skill_releases (candidate_id);

-- Release health scans an owner's executions by time.
CREATE INDEX ix_executions_owner_created ON executions (owner, created_at);

-- +goose Down
DROP INDEX ix_executions_owner_created;
DROP TABLE skill_releases;
DROP TABLE skill_evaluations;
DROP TABLE skill_candidates;
DROP TABLE skill_blobs;
