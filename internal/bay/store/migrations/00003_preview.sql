-- +goose Up
-- Port preview (issue 13 part 3): the HMAC key of signed preview URLs, shared
-- by every Bay replica, and per-sandbox revocation generations. port = 0 is
-- the generation of all of a sandbox's ports; a token carries both and is
-- refused when either moved on.
CREATE TABLE preview_keys (
    id         TEXT PRIMARY KEY,
    secret     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE preview_generations (
    sandbox_id TEXT NOT NULL,
    port       INTEGER NOT NULL,
    generation BIGINT NOT NULL,
    PRIMARY KEY (sandbox_id, port)
);

-- +goose Down
DROP TABLE preview_generations;
DROP TABLE preview_keys;
