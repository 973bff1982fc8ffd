package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/shipyard/shipyard/internal/bay/model"
)

// maxExecBatch bounds the rows of one group insert (20 parameters each).
const maxExecBatch = 64

// execBatcher writes history rows in groups: concurrent CreateExecution calls
// share one multi-row INSERT (one commit) instead of queueing one commit each
// behind the database's single writer. Every caller still returns only after
// the statement holding its row has committed, so an answered call never has
// a row that a crash can lose. No goroutine of its own: the first caller to
// find no write in flight writes everything queued so far (its own row
// included); callers arriving meanwhile queue, and the first of them writes
// the next group when the current one is done.
type execBatcher struct {
	mu      sync.Mutex
	writing bool
	queue   []*queuedExec
}

type queuedExec struct {
	e    *model.Execution
	seq  int64
	done chan error // one send: the row's outcome, or errLead
}

// errLead, sent to a queued caller, hands it the writer's role.
var errLead = errors.New("store: write the queued history rows")

// writeExecution stores e through the batcher and returns once its row is
// committed. Invariant: the queue is empty whenever no write is in flight, so
// the caller that writes is always the first of the group it writes.
func (s *Store) writeExecution(ctx context.Context, e *model.Execution, seq int64) error {
	b := &s.hist
	me := &queuedExec{e: e, seq: seq, done: make(chan error, 1)}
	b.mu.Lock()
	b.queue = append(b.queue, me)
	if b.writing {
		b.mu.Unlock()
		if err := <-me.done; err != errLead {
			return err
		}
		b.mu.Lock()
	}
	b.writing = true
	n := min(len(b.queue), maxExecBatch)
	group := b.queue[:n:n]
	b.queue = b.queue[n:]
	b.mu.Unlock()

	// The group's statement serves every caller in it: none may cancel it.
	errs := s.insertExecutions(context.WithoutCancel(ctx), group)
	for i, q := range group[1:] {
		q.done <- errs[i+1]
	}
	b.mu.Lock()
	if len(b.queue) == 0 {
		b.writing = false
	} else {
		b.queue[0].done <- errLead
	}
	b.mu.Unlock()
	return errs[0]
}

// insertExecutions inserts a group of rows in one statement and returns each
// row's outcome. When that statement fails for a group of several, each row
// is tried alone, so one bad row does not fail the others.
func (s *Store) insertExecutions(ctx context.Context, group []*queuedExec) []error {
	errs := make([]error, len(group))
	err := s.insertRows(ctx, group, false)
	if err == nil || len(group) == 1 {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	for i, q := range group {
		errs[i] = s.insertRows(ctx, []*queuedExec{q}, false)
	}
	return errs
}

func (s *Store) insertRows(ctx context.Context, group []*queuedExec, replay bool) error {
	const row = "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
	var sb strings.Builder
	sb.WriteString(`INSERT INTO executions (` + execCols + `, seq) VALUES `)
	args := make([]any, 0, 20*len(group))
	for i, q := range group {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(row)
		e := q.e
		args = append(args, e.ID, e.SandboxID, e.Owner, e.SessionID, e.ExecType, e.Code, e.Success, e.ExecutionTimeMs,
			e.Output, e.Error, e.PayloadRef, e.Description, e.Tags, e.Notes, e.LearnEnabled, e.LearnStatus,
			e.LearnError, usPtr(e.LearnProcessedAt), us(e.CreatedAt), q.seq)
	}
	if replay { // a replayed journal may hold rows that are already in
		sb.WriteString(` ON CONFLICT (id) DO NOTHING`)
	}
	if _, err := s.exec(ctx, s.q, sb.String(), args...); err != nil {
		return fmt.Errorf("store: insert execution: %w", err)
	}
	return nil
}
