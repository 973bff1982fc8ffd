package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/shipyard/shipyard/internal/bay/model"
)

// histJournal takes the history row off a call's path on SQLite. The row is
// appended to a journal file beside the database, one write(2) that survives
// the process being killed, and the call answers; a writer goroutine inserts
// the queued rows in groups and empties the journal once everything in it is
// in the database. Every read of executions first waits until the rows queued
// before it are in (settle), so a client reads its own writes. Opening the
// store replays a journal that a killed process left behind.
//
// Durability is SQLite's own with synchronous=NORMAL: nothing answered is
// lost when Bay is killed; a power loss may lose the newest rows (neither is
// fsynced). PostgreSQL keeps the synchronous group commit (execBatcher): a
// replica's local file may not outlive its pod.
type histJournal struct {
	f   *os.File // O_APPEND, flock'ed: one store per journal
	log *slog.Logger

	mu          sync.Mutex
	queue       []*queuedExec // appended, not yet inserted, in order
	queuedBytes int           // the text of the queued rows (groupSize's measure)
	size        int64         // the journal file's length
	maxSize     int64         // past it, the writer empties the journal with appends held (journalMaxSize)
	added       uint64        // rows appended since open
	done        uint64        // rows inserted (or given up) since open
	changed     chan struct{} // closed and replaced whenever done grows
	closing     bool

	wake  chan struct{} // cap 1: rows are queued
	hurry chan struct{} // cap 1: a reader waits, or a full group is queued
	quit  chan struct{} // closed by close
	exit  chan struct{} // closed when the writer returned

	closeOnce sync.Once
	closeErr  error
}

// journalRow is one line of the journal.
type journalRow struct {
	E   *model.Execution `json:"e"`
	Seq int64            `json:"seq"`
}

// historyJournalSuffix names the journal beside the database file.
const historyJournalSuffix = "-history"

// openHistJournal locks and opens the journal of the database at dbPath,
// replays what a previous process left in it and starts the writer. It
// returns nil, nil when another store holds the journal (that store owns it;
// this one writes synchronously).
func (s *Store) openHistJournal(ctx context.Context, dbPath string) (*histJournal, error) {
	f, err := os.OpenFile(dbPath+historyJournalSuffix, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: open history journal: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, fmt.Errorf("store: lock history journal: %w", err)
	}
	j := &histJournal{f: f, log: slog.Default(), maxSize: journalMaxSize, changed: make(chan struct{}),
		wake: make(chan struct{}, 1), hurry: make(chan struct{}, 1), quit: make(chan struct{}), exit: make(chan struct{})}
	if err := s.replayJournal(ctx, f); err != nil {
		f.Close()
		return nil, err
	}
	go s.writeJournaled(j)
	return j, nil
}

// replayJournal inserts the rows a previous process journaled (those already
// in are skipped: ON CONFLICT DO NOTHING) and empties the journal. A last
// line without its newline was cut by a crash mid-write; its call never
// answered.
func (s *Store) replayJournal(ctx context.Context, f *os.File) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("store: replay history journal: %w", err)
	}
	r := bufio.NewReader(f)
	var group []*queuedExec
	flush := func() error {
		if len(group) == 0 {
			return nil
		}
		err := s.insertRows(ctx, group, true)
		group = group[:0]
		return err
	}
	for {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("store: replay history journal: %w", err)
		}
		var row journalRow
		if err := json.Unmarshal(bytes.TrimSpace(line), &row); err != nil || row.E == nil {
			slog.Default().Warn("history journal: skipping an unreadable line", "err", err)
			continue
		}
		s.seq.Store(max(s.seq.Load(), row.Seq))
		if group = append(group, &queuedExec{e: row.E, seq: row.Seq}); len(group) == maxExecBatch {
			if err := flush(); err != nil {
				return fmt.Errorf("store: replay history journal: %w", err)
			}
		}
	}
	if err := flush(); err != nil {
		return fmt.Errorf("store: replay history journal: %w", err)
	}
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("store: empty history journal: %w", err)
	}
	return nil
}

// append journals a row and queues it for the writer. It returns once the
// row is in the journal file.
func (j *histJournal) append(e *model.Execution, seq int64) error {
	line, err := json.Marshal(journalRow{E: e, Seq: seq})
	if err != nil {
		return fmt.Errorf("store: journal history row: %w", err)
	}
	line = append(line, '\n')
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closing {
		return errJournalClosed
	}
	if _, err := j.f.Write(line); err != nil {
		return fmt.Errorf("store: journal history row: %w", err)
	}
	j.size += int64(len(line))
	j.queue = append(j.queue, &queuedExec{e: e, seq: seq})
	j.queuedBytes += rowBytes(e)
	j.added++
	signal(j.wake)
	if len(j.queue) >= maxExecBatch || j.queuedBytes >= maxGroupBytes {
		signal(j.hurry) // a full group waits: no reason to linger, nor to hold more in memory
	}
	return nil
}

var errJournalClosed = errors.New("store: history journal closed")

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// journalLinger is how long the writer lets rows gather before it inserts
// them, unless a reader waits for them or a full group is queued: calls one
// after another then share an insert too. On SQLite most of an insert's cost
// is per transaction (its WAL frames, locks and syscalls), so rows that share
// one cost Bay less CPU per call: 250 ms instead of 25 took Bay's CPU per
// sequential 1+1 from ~2.2 to ~1.6 ms on the bench machine. Nobody waits for
// it: a row is durable once journaled, and reads hurry the writer (settle).
const journalLinger = 250 * time.Millisecond

// journalMaxSize bounds the journal under a load that never lets the queue
// run empty (the journal is emptied only when everything in it is in the
// database): past it, the writer inserts what is queued with appends held up
// for that long, and empties the file.
const journalMaxSize = 64 << 20

// writeJournaled is the writer: it inserts queued rows in groups of up to
// maxExecBatch. A group that fails as a whole (the database is busy or
// unwritable) stays queued and journaled and is tried again with backoff; a
// row that fails on its own (the others of its group go in, or it is refused
// as a duplicate) is dropped with an error logged, as a synchronous write
// would have reported it: one bad row never holds up the rows behind it.
func (s *Store) writeJournaled(j *histJournal) {
	defer close(j.exit)
	backoff := 50 * time.Millisecond
	for {
		j.mu.Lock()
		n := groupSize(j.queue)
		group := j.queue[:n:n]
		closing := j.closing
		j.mu.Unlock()
		if n == 0 {
			if closing {
				return
			}
			select {
			case <-j.wake:
				linger := time.NewTimer(journalLinger)
				select {
				case <-linger.C:
				case <-j.hurry:
				case <-j.quit:
				}
				linger.Stop()
			case <-j.quit:
			}
			continue
		}
		if !s.insertGroup(j, group) {
			select {
			case <-time.After(backoff):
			case <-j.quit: // closing: the journal keeps them for the next start
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		j.mu.Lock()
		j.inserted(n)
		// Rows came in all along: the queue never ran empty, so the journal
		// was never emptied. Insert the rest with appends held up (one group
		// or a few: what came in during the last insert) and empty it.
		for j.size > j.maxSize && len(j.queue) > 0 {
			n := groupSize(j.queue)
			if !s.insertGroup(j, j.queue[:n:n]) {
				break // the database fails: the loop above tries again
			}
			j.inserted(n)
		}
		j.mu.Unlock()
	}
}

// insertGroup inserts a group of queued rows. It reports false when every
// row failed, and not on its own content (a duplicate id is a row's own):
// the database is the trouble, and the group must be tried again. Rows that
// failed on their own are logged and count as done.
func (s *Store) insertGroup(j *histJournal, group []*queuedExec) bool {
	errs := s.insertExecutions(context.Background(), group)
	failed, conflicts := 0, 0
	for _, err := range errs {
		if err != nil {
			failed++
		}
		if errors.Is(err, ErrConflict) {
			conflicts++
		}
	}
	if failed == len(group) && conflicts < len(group) {
		j.log.Error("writing history rows; they stay journaled and are tried again", "rows", len(group), "err", errs[0])
		return false
	}
	for i, err := range errs {
		if err != nil {
			j.log.Error("writing a history row", "execution_id", group[i].e.ID, "err", err)
		}
	}
	return true
}

// inserted takes the first n queued rows off the queue once they are in the
// database, empties the journal when nothing is left in it that is not in
// the database (rows append under mu), and wakes the readers. j.mu is held.
func (j *histJournal) inserted(n int) {
	for _, q := range j.queue[:n] {
		j.queuedBytes -= rowBytes(q.e)
	}
	j.queue = j.queue[n:]
	j.done += uint64(n)
	if len(j.queue) == 0 {
		if err := j.f.Truncate(0); err != nil {
			j.log.Error("emptying the history journal", "err", err)
		} else {
			j.size = 0
		}
		j.queue, j.queuedBytes = nil, 0
	}
	close(j.changed)
	j.changed = make(chan struct{})
}

// maxGroupBytes bounds the text of one group insert: rows hold up to 1 MiB
// in each of three fields, and a statement's arguments are all in memory.
const maxGroupBytes = 8 << 20

// groupSize is how many of the queued rows the next insert takes: at least
// one, at most maxExecBatch, and no more than maxGroupBytes of text.
func groupSize(queue []*queuedExec) int {
	n, size := 0, 0
	for _, q := range queue[:min(len(queue), maxExecBatch)] {
		size += rowBytes(q.e)
		if n > 0 && size > maxGroupBytes {
			break
		}
		n++
	}
	return n
}

// rowBytes is the text a row carries (code, output, error).
func rowBytes(e *model.Execution) int {
	return len(e.Code) + strLen(e.Output) + strLen(e.Error)
}

func strLen(s *string) int {
	if s == nil {
		return 0
	}
	return len(*s)
}

// settleTimeout bounds how long a read waits for the rows queued before it.
const settleTimeout = 15 * time.Second

// settle waits until every row journaled before the call is in the database.
func (j *histJournal) settle(ctx context.Context) error {
	if j == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	j.mu.Lock()
	target := j.added
	if j.done < target {
		signal(j.hurry)
	}
	for j.done < target {
		ch := j.changed
		j.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("store: waiting for queued history rows: %w", ctx.Err())
		}
		j.mu.Lock()
	}
	j.mu.Unlock()
	return nil
}

// close writes what is queued (as long as the database takes it), stops the
// writer and releases the journal. Rows it could not write stay journaled
// for the next start.
// Closing again does nothing (Store.Close may be called twice).
func (j *histJournal) close() error {
	j.closeOnce.Do(func() {
		j.mu.Lock()
		j.closing = true
		j.mu.Unlock()
		close(j.quit)
		<-j.exit
		j.closeErr = j.f.Close()
	})
	return j.closeErr
}
