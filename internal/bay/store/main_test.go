package store_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/store"
	"github.com/shipyard/shipyard/internal/bay/store/storetest"
)

// Every test runs the same code against every backend: SQLite always,
// PostgreSQL when SHIPYARD_TEST_PG_DSN is set (see scripts/pg.sh). Each test
// gets its own database (SQLite file / PostgreSQL schema), so all run in parallel.

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// t0 is the clock of the tests: microsecond precision, UTC, like what the store returns.
var t0 = time.Date(2031, 7, 14, 9, 30, 15, 123456000, time.UTC)

type env struct {
	dialect string
	dsn     string
	s       *store.Store
	ctx     context.Context
}

// replica opens a second Store on the same database, as a second Bay replica would.
func (e *env) replica(t *testing.T) *store.Store {
	t.Helper()
	return storetest.OpenDSN(t, e.dialect, e.dsn)
}

// eachBackend runs fn once per backend, in parallel, each on a fresh database.
func eachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Helper()
	t.Parallel()
	for _, d := range storetest.Dialects() {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			dsn := storetest.FreshDSN(t, d)
			e := &env{dialect: d, dsn: dsn, s: storetest.OpenDSN(t, d, dsn), ctx: t.Context()}
			fn(t, e)
		})
	}
}

// ---- fixtures ----

func ptr[T any](v T) *T { return &v }

func newCargo(owner string, managed bool, sandboxID string) *model.Cargo {
	id := model.NewID("cargo")
	by := ""
	if managed {
		by = sandboxID
	}
	return &model.Cargo{
		ID: id, Owner: owner, Managed: managed, ManagedBySandboxID: by, Backend: "docker_volume",
		DriverRef: "bay-cargo-" + id, SizeLimitMB: 1024, CreatedAt: t0, LastAccessedAt: t0,
	}
}

func newSandbox(owner string) *model.Sandbox {
	return &model.Sandbox{
		ID: model.NewID("sandbox"), Owner: owner, ProfileID: "python-default",
		CargoID: model.NewID("cargo"), CreatedAt: t0, LastActiveAt: t0,
	}
}

// createSandbox stores a sandbox of owner with its managed cargo.
func createSandbox(t *testing.T, e *env, owner string, mod ...func(*model.Sandbox)) *model.Sandbox {
	t.Helper()
	sb := newSandbox(owner)
	for _, m := range mod {
		if m != nil {
			m(sb)
		}
	}
	c := newCargo(owner, true, sb.ID)
	sb.CargoID = c.ID
	if err := e.s.CreateSandbox(e.ctx, sb, c); err != nil {
		t.Fatalf("CreateSandbox: %v", err)
	}
	return sb
}

func newSession(sandboxID, state string) *model.Session {
	return &model.Session{
		ID: model.NewID("sess"), SandboxID: sandboxID, ProfileID: "python-default",
		Token: "tok-" + model.NewID("t"), DesiredState: model.SessionRunning, ObservedState: state,
		Containers: []model.ContainerInfo{}, CreatedAt: t0, LastActiveAt: t0,
	}
}

// ---- assertions ----

func mustEqual[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got  %s\n want %s", what, show(got), show(want))
	}
}

// show prints a value with pointers followed (%+v prints their addresses).
func show(v any) string {
	var b strings.Builder
	var walk func(rv reflect.Value)
	walk = func(rv reflect.Value) {
		switch rv.Kind() {
		case reflect.Pointer:
			if rv.IsNil() {
				b.WriteString("nil")
				return
			}
			if t, ok := rv.Interface().(*time.Time); ok {
				fmt.Fprintf(&b, "&%s", t.Format(time.RFC3339Nano+" MST"))
				return
			}
			b.WriteString("&")
			walk(rv.Elem())
		case reflect.Struct:
			if t, ok := rv.Interface().(time.Time); ok {
				b.WriteString(t.Format(time.RFC3339Nano + " MST"))
				return
			}
			b.WriteString("{")
			for i := 0; i < rv.NumField(); i++ {
				if i > 0 {
					b.WriteString(" ")
				}
				b.WriteString(rv.Type().Field(i).Name + ":")
				walk(rv.Field(i))
			}
			b.WriteString("}")
		case reflect.Slice:
			if rv.IsNil() {
				b.WriteString("nil")
				return
			}
			b.WriteString("[")
			for i := 0; i < rv.Len(); i++ {
				if i > 0 {
					b.WriteString(" ")
				}
				walk(rv.Index(i))
			}
			b.WriteString("]")
		case reflect.Map:
			keys := rv.MapKeys()
			sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
			b.WriteString("map[")
			for i, k := range keys {
				if i > 0 {
					b.WriteString(" ")
				}
				fmt.Fprintf(&b, "%v:", k)
				walk(rv.MapIndex(k))
			}
			b.WriteString("]")
		case reflect.Interface:
			if rv.IsNil() {
				b.WriteString("nil")
				return
			}
			walk(rv.Elem())
		default:
			if rv.CanInterface() {
				fmt.Fprintf(&b, "%#v", rv.Interface())
			} else {
				fmt.Fprintf(&b, "%v", rv)
			}
		}
	}
	walk(reflect.ValueOf(v))
	return b.String()
}

func mustErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// parallel runs fn(i) for i in [0,n) from n goroutines released together.
func parallel(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn(i)
		}()
	}
	close(start)
	wg.Wait()
}
