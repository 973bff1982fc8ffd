package store

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/model"
)

func journalExec(id string, at time.Time) *model.Execution {
	return &model.Execution{ID: id, SandboxID: "sandbox-aaaaaaaaaaaa", Owner: "o", SessionID: "s", ExecType: "python",
		Code: "1+1", Success: true, CreatedAt: at}
}

func openFile(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), SQLite, path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A journal left by a killed Bay is replayed at the next open: complete lines
// go in (a row already in is skipped), a torn last line (its write never
// finished, so its call never answered) is dropped, and the journal is
// emptied. Rows keep their seq, and new rows sort after them.
func TestHistoryJournalReplay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bay.db")
	at := time.Now().UTC().Truncate(time.Microsecond)
	s := openFile(t, path)
	if err := s.CreateExecution(t.Context(), journalExec("exec-already", at)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var lines []byte
	for i, id := range []string{"exec-already", "exec-a", "exec-b"} {
		b, _ := json.Marshal(journalRow{E: journalExec(id, at), Seq: at.UnixNano() + int64(1000+i)})
		lines = append(append(lines, b...), '\n')
	}
	lines = append(lines, `{"e":{"id":"exec-torn","sandbox_id":"sandbox-aaa`...)
	if err := os.WriteFile(path+historyJournalSuffix, lines, 0o600); err != nil {
		t.Fatal(err)
	}

	s = openFile(t, path)
	defer s.Close()
	for _, id := range []string{"exec-already", "exec-a", "exec-b"} {
		if _, err := s.GetExecution(t.Context(), "sandbox-aaaaaaaaaaaa", id); err != nil {
			t.Errorf("%s after replay: %v", id, err)
		}
	}
	if _, err := s.GetExecution(t.Context(), "sandbox-aaaaaaaaaaaa", "exec-torn"); err != ErrNotFound {
		t.Errorf("torn line: %v, want not found", err)
	}
	if fi, err := os.Stat(path + historyJournalSuffix); err != nil || fi.Size() != 0 {
		t.Errorf("journal after replay: %v, %v; want empty", fi, err)
	}
	if err := s.CreateExecution(t.Context(), journalExec("exec-new", at)); err != nil {
		t.Fatal(err)
	}
	last, err := s.LastExecution(t.Context(), "sandbox-aaaaaaaaaaaa", "")
	if err != nil || last.ID != "exec-new" {
		t.Fatalf("newest after replay = %v, %v; want exec-new (seq above the replayed rows)", last, err)
	}
}

// Rows are readable the moment CreateExecution returns, Close writes what is
// queued, and the journal is empty after a clean close.
func TestHistoryJournalReadsOwnWritesAndDrainsOnClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bay.db")
	s := openFile(t, path)
	if s.journal == nil {
		t.Fatal("a file database has no history journal")
	}
	at := time.Now().UTC()
	var ids []string
	for i := range 200 {
		e := journalExec(model.NewID("exec"), at)
		ids = append(ids, e.ID)
		if err := s.CreateExecution(t.Context(), e); err != nil {
			t.Fatal(err)
		}
		if i%20 == 0 {
			if _, err := s.GetExecution(t.Context(), e.SandboxID, e.ID); err != nil {
				t.Fatalf("row %d not readable right after CreateExecution: %v", i, err)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path + historyJournalSuffix); err != nil || fi.Size() != 0 {
		t.Errorf("journal after close: %v, %v; want empty", fi, err)
	}
	s = openFile(t, path)
	defer s.Close()
	_, total, err := s.ListExecutions(t.Context(), ExecFilter{SandboxID: "sandbox-aaaaaaaaaaaa", Limit: 1})
	if err != nil || total != len(ids) {
		t.Fatalf("after reopen: %d rows, %v; want %d", total, err, len(ids))
	}
}

// One journal has one owner: a second store on the same file (in or out of
// this process) writes synchronously instead of sharing, and emptying, it.
func TestHistoryJournalOneOwner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bay.db")
	a := openFile(t, path)
	defer a.Close()
	b := openFile(t, path)
	defer b.Close()
	if a.journal == nil || b.journal != nil {
		t.Fatalf("journals: first %v, second %v; want only the first", a.journal != nil, b.journal != nil)
	}
	e := journalExec("exec-via-b", time.Now().UTC())
	if err := b.CreateExecution(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	if _, err := a.GetExecution(t.Context(), e.SandboxID, e.ID); err != nil {
		t.Fatalf("row written by the second store: %v", err)
	}
}

func TestGroupSizeBoundsRowsAndBytes(t *testing.T) {
	row := func(n int) *queuedExec {
		out := string(make([]byte, n))
		return &queuedExec{e: &model.Execution{Code: "x", Output: &out}}
	}
	many := make([]*queuedExec, 100)
	for i := range many {
		many[i] = row(10)
	}
	for _, c := range []struct {
		name  string
		queue []*queuedExec
		want  int
	}{
		{"empty", nil, 0},
		{"small rows: the row bound", many, maxExecBatch},
		{"one huge row still goes", []*queuedExec{row(maxGroupBytes * 2), row(1)}, 1},
		{"bytes bound", []*queuedExec{row(3 << 20), row(3 << 20), row(3 << 20), row(1)}, 2},
	} {
		if got := groupSize(c.queue); got != c.want {
			t.Errorf("%s: groupSize = %d, want %d", c.name, got, c.want)
		}
	}
}

// Store.Close may be called twice (a test closes a store its cleanup closes
// again; CI found the journal panicking on it).
func TestStoreCloseTwice(t *testing.T) {
	s := openFile(t, filepath.Join(t.TempDir(), "bay.db"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// A row refused for its own content (a duplicate id), alone in its group, is
// dropped: retried, it would hold up every read (reads wait for the rows
// queued before them).
func TestHistoryJournalDropsARefusedRowAlone(t *testing.T) {
	s := openFile(t, filepath.Join(t.TempDir(), "bay.db"))
	defer s.Close()
	at := time.Now().UTC()
	if err := s.CreateExecution(t.Context(), journalExec("exec-dup", at)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetExecution(t.Context(), "sandbox-aaaaaaaaaaaa", "exec-dup"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateExecution(t.Context(), journalExec("exec-dup", at)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	_, total, err := s.ListExecutions(ctx, ExecFilter{SandboxID: "sandbox-aaaaaaaaaaaa", Limit: 10})
	if err != nil || total != 1 {
		t.Fatalf("read after a refused row: %d rows, %v; want 1 and no wait", total, err)
	}
}

// Under a load that never lets the queue run empty, the journal is still
// emptied once it passes its bound (the writer inserts the rest with appends
// held up), and every row goes in.
func TestHistoryJournalBoundedUnderEndlessLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bay.db")
	s := openFile(t, path)
	defer s.Close()
	s.journal.mu.Lock()
	s.journal.maxSize = 16 << 10
	s.journal.mu.Unlock()
	at := time.Now().UTC()
	stop := make(chan struct{})
	appended := make(chan int)
	go func() {
		n := 0
		defer func() { appended <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := s.CreateExecution(context.Background(), journalExec(model.NewID("exec"), at)); err != nil {
				t.Error(err)
				return
			}
			n++
		}
	}()
	largest, emptied := int64(0), 0
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		fi, err := os.Stat(path + historyJournalSuffix)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() < largest {
			emptied++
		}
		largest = fi.Size()
	}
	close(stop)
	n := <-appended
	if emptied == 0 {
		t.Errorf("the journal was never emptied while %d rows came in (last seen at %d bytes)", n, largest)
	}
	_, total, err := s.ListExecutions(t.Context(), ExecFilter{SandboxID: "sandbox-aaaaaaaaaaaa", Limit: 1})
	if err != nil || total != n {
		t.Fatalf("%d rows in the database, %v; want %d", total, err, n)
	}
}
