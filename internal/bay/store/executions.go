package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shipyard/shipyard/internal/bay/model"
)

const execCols = `id, sandbox_id, owner, session_id, exec_type, code, success, execution_time_ms, output, error,
	payload_ref, description, tags, notes, learn_enabled, learn_status, learn_error, learn_processed_at, created_at`

func scanExecution(sc scanner) (*model.Execution, error) {
	var (
		e                                                  model.Execution
		output, errS, payload, desc, tags, notes, ls, lerr sql.NullString
		lproc                                              sql.NullInt64
		created                                            int64
	)
	if err := sc.Scan(&e.ID, &e.SandboxID, &e.Owner, &e.SessionID, &e.ExecType, &e.Code, &e.Success,
		&e.ExecutionTimeMs, &output, &errS, &payload, &desc, &tags, &notes, &e.LearnEnabled, &ls, &lerr,
		&lproc, &created); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	e.Output, e.Error, e.PayloadRef = strPtr(output), strPtr(errS), strPtr(payload)
	e.Description, e.Tags, e.Notes = strPtr(desc), strPtr(tags), strPtr(notes)
	e.LearnStatus, e.LearnError = strPtr(ls), strPtr(lerr)
	e.LearnProcessedAt = fromUSPtr(lproc)
	e.CreatedAt = fromUS(created)
	return &e, nil
}

// CreateExecution appends a history entry. It returns once the entry is
// journaled (SQLite, see histJournal) or committed (PostgreSQL: concurrent
// calls share one insert, see execBatcher); reads see it either way.
func (s *Store) CreateExecution(ctx context.Context, e *model.Execution) error {
	seq := s.nextSeq(e.CreatedAt)
	if s.journal != nil {
		if err := s.journal.append(e, seq); err == nil {
			return nil
		}
		// Not journaled (closing, or the file failed): write it in place.
	}
	return s.writeExecution(ctx, e, seq)
}

// nextSeq returns the tie-breaker of entries stored at the same created_at (one
// clock per operation makes that common): the creation time in nanoseconds, but
// always above the last value this Store handed out, so that "newest first"
// is the order of storing and not the luck of the sort.
func (s *Store) nextSeq(t time.Time) int64 {
	v := t.UnixNano()
	for {
		last := s.seq.Load()
		next := max(v, last+1)
		if s.seq.CompareAndSwap(last, next) {
			return next
		}
	}
}

// ExecFilter selects history entries of one sandbox.
type ExecFilter struct {
	SandboxID      string
	ExecType       string
	SuccessOnly    bool
	Tags           []string // OR of case-insensitive substrings
	HasNotes       *bool
	HasDescription *bool
	Limit, Offset  int
}

func (f ExecFilter) where() (string, []any) {
	w := ` WHERE sandbox_id = ?`
	args := []any{f.SandboxID}
	if f.ExecType != "" {
		w += ` AND exec_type = ?`
		args = append(args, f.ExecType)
	}
	if f.SuccessOnly {
		w += ` AND success = ?`
		args = append(args, true)
	}
	if len(f.Tags) > 0 {
		var ors []string
		for _, t := range f.Tags {
			// A substring, not a pattern: the tag's own % _ \ match themselves.
			ors = append(ors, `LOWER(COALESCE(tags, '')) LIKE ? ESCAPE '\'`)
			args = append(args, "%"+likeEscaper.Replace(strings.ToLower(t))+"%")
		}
		w += ` AND ` + anyOf(ors)
	}
	for _, c := range []struct {
		col string
		v   *bool
	}{{"notes", f.HasNotes}, {"description", f.HasDescription}} {
		if c.v == nil {
			continue
		}
		if *c.v {
			w += ` AND ` + c.col + ` IS NOT NULL AND ` + c.col + ` <> ''`
		} else {
			w += ` AND (` + c.col + ` IS NULL OR ` + c.col + ` = '')`
		}
	}
	return w, args
}

// anyOf ORs conditions as a balanced tree: a flat chain of n ORs is an
// expression n deep, and SQLite refuses depth over 1000 (SQLITE_MAX_EXPR_DEPTH).
func anyOf(conds []string) string {
	if len(conds) == 1 {
		return conds[0]
	}
	m := len(conds) / 2
	return `(` + anyOf(conds[:m]) + ` OR ` + anyOf(conds[m:]) + `)`
}

var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// ListExecutions returns entries newest first and the total matching.
func (s *Store) ListExecutions(ctx context.Context, f ExecFilter) ([]*model.Execution, int, error) {
	if err := s.journal.settle(ctx); err != nil {
		return nil, 0, err
	}
	w, args := f.where()
	var total int
	if err := s.q.QueryRowContext(ctx, s.rebind(`SELECT COUNT(*) FROM executions`+w), args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("store: count executions: %w", err)
	}
	rows, err := s.q.QueryContext(ctx, s.rebind(`SELECT `+execCols+` FROM executions`+w+
		` ORDER BY created_at DESC, seq DESC LIMIT ? OFFSET ?`), append(args, f.Limit, f.Offset)...)
	if err != nil {
		return nil, 0, fmt.Errorf("store: list executions: %w", err)
	}
	defer rows.Close()
	var out []*model.Execution
	for rows.Next() {
		e, err := scanExecution(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, e)
	}
	return out, total, rows.Err()
}

// GetExecution returns one entry of a sandbox.
func (s *Store) GetExecution(ctx context.Context, sandboxID, id string) (*model.Execution, error) {
	if err := s.journal.settle(ctx); err != nil {
		return nil, err
	}
	return scanExecution(s.q.QueryRowContext(ctx, s.rebind(`SELECT `+execCols+
		` FROM executions WHERE sandbox_id = ? AND id = ?`), sandboxID, id))
}

// LastExecution returns the newest entry (optionally of one type).
func (s *Store) LastExecution(ctx context.Context, sandboxID, execType string) (*model.Execution, error) {
	list, _, err := s.ListExecutions(ctx, ExecFilter{SandboxID: sandboxID, ExecType: execType, Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, ErrNotFound
	}
	return list[0], nil
}

// AnnotateExecution sets description, tags and notes (nil = unchanged).
func (s *Store) AnnotateExecution(ctx context.Context, sandboxID, id string, description, tags, notes *string) error {
	if err := s.journal.settle(ctx); err != nil {
		return err
	}
	_, err := s.exec(ctx, s.q, `UPDATE executions SET description = COALESCE(?, description),
		tags = COALESCE(?, tags), notes = COALESCE(?, notes) WHERE sandbox_id = ? AND id = ?`,
		description, tags, notes, sandboxID, id)
	return err
}
