-- +goose Up
-- Which live sandboxes mount a cargo (GC's orphan_cargo pass, attach checks):
-- without this index every cargo scanned every sandbox (6.5 s per GC pass at
-- 10,000 sandboxes instead of tens of milliseconds).
CREATE INDEX ix_sandboxes_cargo ON sandboxes (cargo_id);

-- +goose Down
DROP INDEX ix_sandboxes_cargo;
