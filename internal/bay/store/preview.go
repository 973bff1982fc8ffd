package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// PreviewKey returns the HMAC key of signed preview URLs: the stored one, or
// generated (the caller's fresh random value) when there is none yet. Every
// replica on one database gets the same key.
func (s *Store) PreviewKey(ctx context.Context, generated string, now time.Time) (string, error) {
	if _, err := s.exec(ctx, s.q, `INSERT INTO preview_keys (id, secret, created_at) VALUES (?,?,?)
		ON CONFLICT (id) DO NOTHING`, "default", generated, us(now)); err != nil {
		return "", err
	}
	var secret string
	err := s.q.QueryRowContext(ctx, s.rebind(`SELECT secret FROM preview_keys WHERE id = ?`), "default").Scan(&secret)
	return secret, err
}

// PreviewGenerations returns the revocation generations of a sandbox: of all
// its ports (port 0) and of the one port (0 when never revoked).
func (s *Store) PreviewGenerations(ctx context.Context, sandboxID string, port int) (all, one int64, err error) {
	rows, err := s.q.QueryContext(ctx, s.rebind(`SELECT port, generation FROM preview_generations
		WHERE sandbox_id = ? AND port IN (0, ?)`), sandboxID, port)
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var p int
		var g int64
		if err := rows.Scan(&p, &g); err != nil {
			return 0, 0, err
		}
		if p == 0 {
			all = g
		} else {
			one = g
		}
	}
	return all, one, rows.Err()
}

// DeletePreviewGenerations drops the revocation generations of a deleted
// sandbox: its tokens are refused anyway (the sandbox is gone), and sandbox
// ids are never reused.
func (s *Store) DeletePreviewGenerations(ctx context.Context, sandboxID string) error {
	_, err := s.exec(ctx, s.q, `DELETE FROM preview_generations WHERE sandbox_id = ?`, sandboxID)
	return err
}

// BumpPreviewGeneration revokes every preview token of the sandbox's port
// (port 0: of all its ports) and returns the new generation.
func (s *Store) BumpPreviewGeneration(ctx context.Context, sandboxID string, port int) (int64, error) {
	var g int64
	err := s.q.QueryRowContext(ctx, s.rebind(`INSERT INTO preview_generations (sandbox_id, port, generation) VALUES (?,?,1)
		ON CONFLICT (sandbox_id, port) DO UPDATE SET generation = preview_generations.generation + 1
		RETURNING generation`), sandboxID, port).Scan(&g)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	return g, err
}
