package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/shipyard/shipyard/internal/bay/model"
)

const cargoCols = `id, owner, managed, managed_by_sandbox_id, backend, driver_ref, size_limit_mb, created_at, last_accessed_at`

func scanCargo(sc scanner) (*model.Cargo, error) {
	var (
		c                 model.Cargo
		by                sql.NullString
		created, accessed int64
	)
	if err := sc.Scan(&c.ID, &c.Owner, &c.Managed, &by, &c.Backend, &c.DriverRef, &c.SizeLimitMB, &created, &accessed); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	c.ManagedBySandboxID = by.String
	c.CreatedAt = fromUS(created)
	c.LastAccessedAt = fromUS(accessed)
	return &c, nil
}

func (s *Store) insertCargo(ctx context.Context, q querier, c *model.Cargo) error {
	_, err := s.exec(ctx, q, `INSERT INTO cargos (`+cargoCols+`) VALUES (?,?,?,?,?,?,?,?,?)`,
		c.ID, c.Owner, c.Managed, nullStr(c.ManagedBySandboxID), c.Backend, c.DriverRef, c.SizeLimitMB,
		us(c.CreatedAt), us(c.LastAccessedAt))
	if err != nil {
		return fmt.Errorf("store: insert cargo: %w", err)
	}
	return nil
}

// CreateCargo inserts a cargo; a *QuotaError when that takes the owner past a
// quota; an *UncertainError (ID c.ID) when the commit was cut.
func (s *Store) CreateCargo(ctx context.Context, c *model.Cargo) error {
	return uncertain(c.ID, s.Tx(ctx, func(tx *Tx) error {
		add := Limits{CargoMB: int64(c.SizeLimitMB)}
		if !c.Managed {
			add.Cargos = 1
		}
		if err := s.checkQuota(ctx, tx.tx, c.Owner, add); err != nil {
			return err
		}
		return s.insertCargo(ctx, tx.tx, c)
	}))
}

// GetCargo returns a cargo of owner.
func (s *Store) GetCargo(ctx context.Context, owner, id string) (*model.Cargo, error) {
	return scanCargo(s.q.QueryRowContext(ctx, s.rebind(`SELECT `+cargoCols+` FROM cargos WHERE id = ? AND owner = ?`), id, owner))
}

// CargoByID returns any cargo by id.
func (s *Store) CargoByID(ctx context.Context, id string) (*model.Cargo, error) {
	return scanCargo(s.q.QueryRowContext(ctx, s.rebind(`SELECT `+cargoCols+` FROM cargos WHERE id = ?`), id))
}

// ListCargos pages through owner's cargos with the given managed flag, by id.
func (s *Store) ListCargos(ctx context.Context, owner string, managed bool, after string, limit int) ([]*model.Cargo, error) {
	return s.queryCargos(ctx, `SELECT `+cargoCols+` FROM cargos WHERE owner = ? AND managed = ? AND id > ? ORDER BY id LIMIT ?`,
		owner, managed, after, limit)
}

// OrphanCargos returns managed cargos whose sandbox is missing or soft-deleted
// and which no live sandbox mounts.
func (s *Store) OrphanCargos(ctx context.Context) ([]*model.Cargo, error) {
	// Two NOT EXISTS rather than one with an OR: each is an index lookup
	// (the primary key, ix_sandboxes_cargo), an OR is a scan per cargo.
	return s.queryCargos(ctx, `SELECT `+cargoCols+` FROM cargos c WHERE c.managed = ?
		AND NOT EXISTS (SELECT 1 FROM sandboxes sb WHERE sb.id = c.managed_by_sandbox_id AND sb.deleted_at IS NULL)
		AND NOT EXISTS (SELECT 1 FROM sandboxes sb WHERE sb.cargo_id = c.id AND sb.deleted_at IS NULL)
		ORDER BY c.id`, true)
}

// AllCargoRefs returns the driver refs (volume names) of every cargo record.
func (s *Store) AllCargoRefs(ctx context.Context) (map[string]bool, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT driver_ref FROM cargos`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, err
		}
		out[r] = true
	}
	return out, rows.Err()
}

func (s *Store) queryCargos(ctx context.Context, query string, args ...any) ([]*model.Cargo, error) {
	return queryAll(ctx, s, "cargos", scanCargo, query, args...)
}

// ActiveSandboxesUsingCargo returns ids of live sandboxes mounting the cargo.
func (s *Store) ActiveSandboxesUsingCargo(ctx context.Context, cargoID string) ([]string, error) {
	rows, err := s.q.QueryContext(ctx, s.rebind(`SELECT id FROM sandboxes WHERE cargo_id = ? AND deleted_at IS NULL ORDER BY id`), cargoID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// DeleteCargo removes a cargo record.
func (s *Store) DeleteCargo(ctx context.Context, id string) error {
	_, err := s.exec(ctx, s.q, `DELETE FROM cargos WHERE id = ?`, id)
	return err
}
