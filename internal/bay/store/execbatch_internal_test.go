package store

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/model"
)

// TestInsertExecutionsIsolatesABadRow: when the group's statement fails, each
// row is tried alone: the good rows are stored and only the bad one fails.
func TestInsertExecutionsIsolatesABadRow(t *testing.T) {
	s, err := Open(t.Context(), SQLite, filepath.Join(t.TempDir(), "bay.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	row := func(id string) *queuedExec {
		e := &model.Execution{ID: id, SandboxID: "sandbox-aaaaaaaaaaaa", Owner: "o", SessionID: "s", ExecType: "python",
			Code: "1", Success: true, CreatedAt: time.Now().UTC()}
		return &queuedExec{e: e, seq: s.nextSeq(e.CreatedAt)}
	}
	if errs := s.insertExecutions(t.Context(), []*queuedExec{row("exec-dup")}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	errs := s.insertExecutions(t.Context(), []*queuedExec{row("exec-a"), row("exec-dup"), row("exec-b")})
	if errs[0] != nil || errs[2] != nil || !errors.Is(errs[1], ErrConflict) {
		t.Fatalf("errs = %v, want only the duplicate to fail with ErrConflict", errs)
	}
	for _, id := range []string{"exec-a", "exec-b"} {
		if _, err := s.GetExecution(t.Context(), "sandbox-aaaaaaaaaaaa", id); err != nil {
			t.Errorf("%s not stored: %v", id, err)
		}
	}
}
