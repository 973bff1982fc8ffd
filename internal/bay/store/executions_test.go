package store_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/store"
)

func newExecution(sandboxID, execType string, success bool, at time.Time) *model.Execution {
	return &model.Execution{
		ID: model.NewID("exec"), SandboxID: sandboxID, Owner: "alice", SessionID: "sess-0123456789ab",
		ExecType: execType, Code: "print(1)", Success: success, ExecutionTimeMs: 12, CreatedAt: at,
	}
}

func execIDs(list []*model.Execution) []string {
	var out []string
	for _, x := range list {
		out = append(out, x.ID)
	}
	return out
}

func TestListExecutions(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		const sb, other = "sandbox-aaaaaaaaaaaa", "sandbox-bbbbbbbbbbbb"
		sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
		e1 := newExecution(sb, "python", true, sec(1))
		e1.Tags, e1.Notes, e1.Output = ptr("ML, Data"), ptr("n"), ptr("1\n")
		e2 := newExecution(sb, "shell", false, sec(2))
		e2.Tags, e2.Description, e2.Error = ptr("ops"), ptr("d"), ptr("exit 1")
		e3 := newExecution(sb, "python", true, sec(3))
		e3.Notes, e3.Description = ptr(""), ptr("")
		e4 := newExecution(sb, "python", false, sec(3)) // same instant as e3, stored after it: newer
		e4.Tags = ptr("data_v2")
		e5 := newExecution(sb, "shell", true, sec(4))
		e5.Tags, e5.Notes, e5.Description = ptr("a%b"), ptr("x"), ptr("y")
		eT := newExecution(other, "python", true, sec(5))
		for _, x := range []*model.Execution{e1, e2, e3, e4, e5, eT} {
			must(t, "CreateExecution", e.s.CreateExecution(e.ctx, x))
		}
		ids := func(xs ...*model.Execution) []string { return execIDs(xs) }
		yes, no := ptr(true), ptr(false)

		cases := []struct {
			name  string
			f     store.ExecFilter
			want  []string
			total int
		}{
			{"all, newest first", store.ExecFilter{}, ids(e5, e4, e3, e2, e1), 5},
			{"exec_type", store.ExecFilter{ExecType: "python"}, ids(e4, e3, e1), 3},
			{"success only", store.ExecFilter{SuccessOnly: true}, ids(e5, e3, e1), 3},
			{"exec_type and success", store.ExecFilter{ExecType: "python", SuccessOnly: true}, ids(e3, e1), 2},
			{"tag, case-insensitive substring", store.ExecFilter{Tags: []string{"DATA"}}, ids(e4, e1), 2},
			{"tags are ORed", store.ExecFilter{Tags: []string{"ml", "Ops"}}, ids(e2, e1), 2},
			{"tag with _ is literal", store.ExecFilter{Tags: []string{"l_ d"}}, nil, 0},
			{"tag with _ matches itself", store.ExecFilter{Tags: []string{"A_V"}}, ids(e4), 1},
			{"tag with % is literal", store.ExecFilter{Tags: []string{"%"}}, ids(e5), 1},
			{"tag with \\ is literal", store.ExecFilter{Tags: []string{`\`}}, nil, 0},
			{"has notes", store.ExecFilter{HasNotes: yes}, ids(e5, e1), 2},
			{"has no notes (NULL or empty)", store.ExecFilter{HasNotes: no}, ids(e4, e3, e2), 3},
			{"has description", store.ExecFilter{HasDescription: yes}, ids(e5, e2), 2},
			{"has no description", store.ExecFilter{HasDescription: no}, ids(e4, e3, e1), 3},
			{"notes and tag", store.ExecFilter{HasNotes: yes, Tags: []string{"data"}}, ids(e1), 1},
			{"limit and offset", store.ExecFilter{Limit: 2, Offset: 1}, ids(e4, e3), 5},
			{"last page", store.ExecFilter{Limit: 2, Offset: 4}, ids(e1), 5},
			{"offset past the end", store.ExecFilter{Offset: 10}, nil, 5},
		}
		for _, tc := range cases {
			tc.f.SandboxID = sb
			if tc.f.Limit == 0 {
				tc.f.Limit = 100
			}
			got, total, err := e.s.ListExecutions(e.ctx, tc.f)
			must(t, tc.name, err)
			mustEqual(t, tc.name, execIDs(got), tc.want)
			if total != tc.total {
				t.Fatalf("%s: total %d, want %d", tc.name, total, tc.total)
			}
		}

		got, total, err := e.s.ListExecutions(e.ctx, store.ExecFilter{SandboxID: other, Limit: 10})
		must(t, "other sandbox", err)
		if total != 1 || len(got) != 1 {
			t.Fatalf("other sandbox: %d entries, total %d", len(got), total)
		}
		mustEqual(t, "other sandbox's entry", got[0], eT)

		full, err := e.s.GetExecution(e.ctx, sb, e2.ID)
		must(t, "GetExecution", err)
		mustEqual(t, "GetExecution", full, e2)
		_, err = e.s.GetExecution(e.ctx, other, e2.ID)
		mustErr(t, "GetExecution through another sandbox", err, store.ErrNotFound)

		last, err := e.s.LastExecution(e.ctx, sb, "")
		must(t, "LastExecution", err)
		mustEqual(t, "LastExecution", last.ID, e5.ID)
		last, err = e.s.LastExecution(e.ctx, sb, "python")
		must(t, "LastExecution(python)", err)
		mustEqual(t, "LastExecution(python)", last.ID, e4.ID)
		_, err = e.s.LastExecution(e.ctx, sb, "browser")
		mustErr(t, "LastExecution of a type never run", err, store.ErrNotFound)
		_, err = e.s.LastExecution(e.ctx, "sandbox-none00000000", "")
		mustErr(t, "LastExecution of an empty history", err, store.ErrNotFound)
	})
}

// Entries recorded within one clock tick keep their order: newest (last stored) first.
func TestExecutionsSameInstant(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		const sb = "sandbox-aaaaaaaaaaaa"
		var want []string
		for i := 0; i < 30; i++ {
			x := newExecution(sb, "python", true, t0)
			x.ID = fmt.Sprintf("exec-%012d", (i*7919)%30) // ids in no particular order
			must(t, "CreateExecution", e.s.CreateExecution(e.ctx, x))
			want = append(want, x.ID)
		}
		// Updates may move rows physically; the order must not depend on that.
		for i := 0; i < len(want); i += 3 {
			must(t, "AnnotateExecution", e.s.AnnotateExecution(e.ctx, sb, want[i], nil, ptr("moved"), nil))
		}
		slices.Reverse(want)
		got, _, err := e.s.ListExecutions(e.ctx, store.ExecFilter{SandboxID: sb, Limit: 100})
		must(t, "ListExecutions", err)
		mustEqual(t, "order of same-instant entries", execIDs(got), want)
		last, err := e.s.LastExecution(e.ctx, sb, "")
		must(t, "LastExecution", err)
		mustEqual(t, "LastExecution", last.ID, want[0])
	})
}

func TestAnnotateExecution(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		const sb = "sandbox-aaaaaaaaaaaa"
		x := newExecution(sb, "python", true, t0)
		x.Description, x.Tags, x.Notes = ptr("desc"), ptr("t1"), ptr("note")
		must(t, "CreateExecution", e.s.CreateExecution(e.ctx, x))
		y := newExecution(sb, "python", true, t0)
		must(t, "CreateExecution", e.s.CreateExecution(e.ctx, y))
		want := *x
		check := func(what string) {
			t.Helper()
			got, err := e.s.GetExecution(e.ctx, sb, x.ID)
			must(t, what, err)
			mustEqual(t, what, got, &want)
		}

		must(t, "annotate nothing", e.s.AnnotateExecution(e.ctx, sb, x.ID, nil, nil, nil))
		check("nil, nil, nil changes nothing")
		must(t, "annotate tags", e.s.AnnotateExecution(e.ctx, sb, x.ID, nil, ptr("t2,t3"), nil))
		want.Tags = ptr("t2,t3")
		check("only tags changed")
		must(t, "annotate description and notes", e.s.AnnotateExecution(e.ctx, sb, x.ID, ptr("new"), nil, ptr("")))
		want.Description, want.Notes = ptr("new"), ptr("")
		check("description and notes changed, notes cleared")

		// Another sandbox's id changes nothing; the other entry is untouched.
		must(t, "annotate through another sandbox", e.s.AnnotateExecution(e.ctx, "sandbox-other0000000", x.ID, ptr("x"), ptr("x"), ptr("x")))
		check("annotating through another sandbox")
		got, err := e.s.GetExecution(e.ctx, sb, y.ID)
		must(t, "GetExecution", err)
		mustEqual(t, "untouched entry", got, y)

		list, _, err := e.s.ListExecutions(e.ctx, store.ExecFilter{SandboxID: sb, HasNotes: ptr(true), Limit: 10})
		must(t, "ListExecutions", err)
		if len(list) != 0 {
			t.Fatalf("an entry with empty notes counts as having notes")
		}
	})
}

// TestListExecutionsManyTags: issue 8 finding 8. ~1,000 tags built a chain of
// ORs deeper than SQLite's expression limit (a 500); the tree is now balanced.
func TestListExecutionsManyTags(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		const sb = "sandbox-cccccccccccc"
		x := newExecution(sb, "python", true, t0)
		x.Tags = ptr("needle")
		must(t, "CreateExecution", e.s.CreateExecution(e.ctx, x))
		for _, n := range []int{1, 2, 3, 999, 1000, 5000} {
			tags := make([]string, n)
			for i := range tags {
				tags[i] = fmt.Sprintf("tag-%d", i)
			}
			tags[n-1] = "NEEDLE"
			list, total, err := e.s.ListExecutions(e.ctx, store.ExecFilter{SandboxID: sb, Tags: tags, Limit: 10})
			if err != nil || total != 1 || len(list) != 1 || list[0].ID != x.ID {
				t.Fatalf("%d tags: %v total %d err %v", n, execIDs(list), total, err)
			}
		}
	})
}

// TestCreateExecutionConcurrent: many callers at once (they share group
// inserts) each get their own outcome, and every row is stored once. On
// SQLite the call returns once the row is journaled: a duplicate id is
// dropped by the journal's writer (and logged), not reported to the caller.
func TestCreateExecutionConcurrent(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		const sb, n = "sandbox-cccccccccccc", 300
		errs := make(chan error, n)
		ids := make([]string, n)
		for i := range n {
			x := newExecution(sb, "shell", true, t0)
			ids[i] = x.ID
			if i == n/2 {
				x.ID = ids[0] // a duplicate: only this call may fail
			}
			go func() { errs <- e.s.CreateExecution(e.ctx, x) }()
		}
		failed := 0
		for range n {
			if err := <-errs; err != nil {
				if !errors.Is(err, store.ErrConflict) {
					t.Errorf("CreateExecution: %v", err)
				}
				failed++
			}
		}
		want := 1
		if e.dialect == store.SQLite {
			want = 0
		}
		if failed != want {
			t.Fatalf("%d calls failed, want %d", failed, want)
		}
		list, total, err := e.s.ListExecutions(e.ctx, store.ExecFilter{SandboxID: sb, Limit: n})
		if err != nil || total != n-1 || len(list) != n-1 {
			t.Fatalf("stored %d (total %d, err %v), want %d", len(list), total, err, n-1)
		}
	})
}
