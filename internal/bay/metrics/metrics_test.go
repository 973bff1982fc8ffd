package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errBoom = errors.New("boom")

// lintClean fails the test when the registry does not pass promlint.
func lintClean(t *testing.T, m *Metrics) {
	t.Helper()
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatalf("GatherAndLint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// histCount is the sample count of the one histogram collected from c.
func histCount(t *testing.T, c prometheus.Collector) uint64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 16)
	c.Collect(ch)
	close(ch)
	var got []prometheus.Metric
	for x := range ch {
		got = append(got, x)
	}
	if len(got) != 1 {
		t.Fatalf("collected %d metrics, want 1", len(got))
	}
	var pb dto.Metric
	if err := got[0].Write(&pb); err != nil {
		t.Fatal(err)
	}
	if pb.Histogram == nil {
		t.Fatalf("not a histogram")
	}
	return pb.Histogram.GetSampleCount()
}

func TestMethodsMoveSeries(t *testing.T) {
	type probe struct {
		name string
		c    func(m *Metrics) prometheus.Collector // one counter/gauge series
		want float64
	}
	type hprobe struct {
		name string
		c    func(m *Metrics) prometheus.Collector // one histogram series
		want uint64
	}
	tests := []struct {
		name   string
		act    func(m *Metrics)
		values []probe
		hists  []hprobe
	}{
		{
			name: "ObserveHTTP",
			act: func(m *Metrics) {
				m.ObserveHTTP("GET", "/v1/sandboxes/{id}", 200, 30*time.Millisecond)
				m.ObserveHTTP("GET", "/v1/sandboxes/{id}", 200, 10*time.Millisecond)
				m.ObserveHTTP("POST", "/v1/sandboxes", 422, time.Millisecond)
			},
			values: []probe{
				{"GET 200", func(m *Metrics) prometheus.Collector {
					return m.httpRequests.WithLabelValues("GET", "/v1/sandboxes/{id}", "200")
				}, 2},
				{"POST 422", func(m *Metrics) prometheus.Collector {
					return m.httpRequests.WithLabelValues("POST", "/v1/sandboxes", "422")
				}, 1},
			},
			hists: []hprobe{
				{"GET duration", func(m *Metrics) prometheus.Collector {
					return m.httpDuration.WithLabelValues("GET", "/v1/sandboxes/{id}").(prometheus.Histogram)
				}, 2},
			},
		},
		{
			name: "ObserveHTTP bounds method and status",
			act: func(m *Metrics) {
				m.ObserveHTTP("BREW", "unmatched", 0, time.Millisecond)
				m.ObserveHTTP("GET", "unmatched", 1000, time.Millisecond)
			},
			values: []probe{
				{"unknown method, unwritten status", func(m *Metrics) prometheus.Collector {
					return m.httpRequests.WithLabelValues("OTHER", "unmatched", "200")
				}, 1},
				{"out of range status", func(m *Metrics) prometheus.Collector {
					return m.httpRequests.WithLabelValues("GET", "unmatched", "other")
				}, 1},
			},
		},
		{
			name: "SessionStarted",
			act:  func(m *Metrics) { m.SessionStarted(1500 * time.Millisecond) },
			values: []probe{
				{"starts", func(m *Metrics) prometheus.Collector { return m.sessionStarts }, 1},
				{"failures", func(m *Metrics) prometheus.Collector { return m.sessionStartFailures }, 0},
			},
			hists: []hprobe{{"duration", func(m *Metrics) prometheus.Collector { return m.sessionStartDuration }, 1}},
		},
		{
			name: "SessionStartFailed",
			act:  func(m *Metrics) { m.SessionStartFailed(); m.SessionStartFailed() },
			values: []probe{
				{"failures", func(m *Metrics) prometheus.Collector { return m.sessionStartFailures }, 2},
				{"starts", func(m *Metrics) prometheus.Collector { return m.sessionStarts }, 0},
			},
			hists: []hprobe{{"duration", func(m *Metrics) prometheus.Collector { return m.sessionStartDuration }, 0}},
		},
		{
			name: "ObserveExec",
			act: func(m *Metrics) {
				m.ObserveExec("python", 5*time.Millisecond, nil)
				m.ObserveExec("python", 2*time.Second, errBoom)
				m.ObserveExec("shell", time.Millisecond, nil)
			},
			values: []probe{
				{"python errors", func(m *Metrics) prometheus.Collector { return m.execErrors.WithLabelValues("python") }, 1},
				{"shell errors", func(m *Metrics) prometheus.Collector { return m.execErrors.WithLabelValues("shell") }, 0},
			},
			hists: []hprobe{
				{"python", func(m *Metrics) prometheus.Collector {
					return m.execDuration.WithLabelValues("python").(prometheus.Histogram)
				}, 2},
				{"shell", func(m *Metrics) prometheus.Collector {
					return m.execDuration.WithLabelValues("shell").(prometheus.Histogram)
				}, 1},
			},
		},
		{
			name: "GCPass",
			act: func(m *Metrics) {
				m.GCPass(time.Second, nil)
				m.GCPass(time.Second, nil)
				m.GCPass(time.Second, errBoom)
			},
			values: []probe{
				{"ok", func(m *Metrics) prometheus.Collector { return m.gcPasses.WithLabelValues("ok") }, 2},
				{"error", func(m *Metrics) prometheus.Collector { return m.gcPasses.WithLabelValues("error") }, 1},
			},
			hists: []hprobe{{"duration", func(m *Metrics) prometheus.Collector { return m.gcPassDuration }, 3}},
		},
		{
			name: "GCTask",
			act: func(m *Metrics) {
				m.GCTask("idle_session", 3, 0)
				m.GCTask("idle_session", 2, 1)
				m.GCTask("orphan_cargo", 0, 0)
				m.GCTask("expired_sandbox", -1, -1) // nonsense is ignored, counters never go down
			},
			values: []probe{
				{"idle cleaned", func(m *Metrics) prometheus.Collector { return m.gcCleaned.WithLabelValues("idle_session") }, 5},
				{"idle errors", func(m *Metrics) prometheus.Collector { return m.gcErrors.WithLabelValues("idle_session") }, 1},
				{"cargo cleaned", func(m *Metrics) prometheus.Collector { return m.gcCleaned.WithLabelValues("orphan_cargo") }, 0},
				{"expired cleaned", func(m *Metrics) prometheus.Collector { return m.gcCleaned.WithLabelValues("expired_sandbox") }, 0},
			},
		},
		{
			name: "WarmPool",
			act: func(m *Metrics) {
				m.WarmPoolSize("python-default", 3)
				m.WarmPoolSize("python-default", 2)
				m.WarmPoolSize("python-data", 1)
				m.WarmPoolHit("python-default")
				m.WarmPoolHit("python-default")
				m.WarmPoolMiss("python-default")
				m.WarmPoolMiss("python-data")
			},
			values: []probe{
				{"default available", func(m *Metrics) prometheus.Collector { return m.warmAvailable.WithLabelValues("python-default") }, 2},
				{"data available", func(m *Metrics) prometheus.Collector { return m.warmAvailable.WithLabelValues("python-data") }, 1},
				{"default hit", func(m *Metrics) prometheus.Collector { return m.warmClaims.WithLabelValues("python-default", "hit") }, 2},
				{"default miss", func(m *Metrics) prometheus.Collector { return m.warmClaims.WithLabelValues("python-default", "miss") }, 1},
				{"data hit", func(m *Metrics) prometheus.Collector { return m.warmClaims.WithLabelValues("python-data", "hit") }, 0},
				{"data miss", func(m *Metrics) prometheus.Collector { return m.warmClaims.WithLabelValues("python-data", "miss") }, 1},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New()
			tt.act(m)
			for _, p := range tt.values {
				if got := testutil.ToFloat64(p.c(m)); got != p.want {
					t.Errorf("%s = %v, want %v", p.name, got, p.want)
				}
			}
			for _, h := range tt.hists {
				if got := histCount(t, h.c(m)); got != h.want {
					t.Errorf("%s: %d observations, want %d", h.name, got, h.want)
				}
			}
			lintClean(t, m)
		})
	}
}

func TestSeriesCounts(t *testing.T) {
	m := New()
	for _, route := range []string{"/v1/sandboxes", "/v1/sandboxes/{id}", "/health"} {
		for _, status := range []int{200, 404} {
			m.ObserveHTTP("GET", route, status, time.Millisecond)
		}
	}
	m.InitSeries([]string{"python", "shell", "filesystem"}, []string{"idle_session", "expired_sandbox"},
		[]string{"python-default"})
	tests := []struct {
		name   string
		c      prometheus.Collector
		metric string
		want   int
	}{
		{"requests by route and status", m.httpRequests, "bay_http_requests_total", 6},
		{"durations by route", m.httpDuration, "bay_http_request_duration_seconds", 3},
		{"exec preset", m.execDuration, "bay_exec_duration_seconds", 3},
		{"exec errors preset", m.execErrors, "bay_exec_errors_total", 3},
		{"gc tasks preset", m.gcCleaned, "bay_gc_items_cleaned_total", 2},
		{"gc passes ok+error from the start", m.gcPasses, "bay_gc_passes_total", 2},
		{"warm claims hit+miss", m.warmClaims, "bay_warm_pool_claims_total", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := testutil.CollectAndCount(tt.c, tt.metric); got != tt.want {
				t.Errorf("CollectAndCount = %d, want %d", got, tt.want)
			}
		})
	}
}

// observeAll makes one observation through every method.
func observeAll(m *Metrics, d *fakeDriver) {
	m.ObserveHTTP("GET", "/v1/sandboxes/{id}", 200, time.Millisecond)
	m.SessionStarted(time.Second)
	m.SessionStartFailed()
	m.ObserveExec("python", time.Millisecond, errBoom)
	m.GCPass(time.Second, nil)
	m.GCTask("idle_session", 1, 1)
	m.WarmPoolSize("python-default", 1)
	m.WarmPoolHit("python-default")
	m.WarmPoolMiss("python-default")
	m.SetSandboxCounter(func(context.Context) (map[string]int, error) { return map[string]int{"ready": 1}, nil })
	drv := InstrumentDriver(d, m)
	_ = drv.Ping(context.Background())
}

var families = []string{
	"bay_http_requests_total", "bay_http_request_duration_seconds",
	"bay_session_starts_total", "bay_session_start_failures_total", "bay_session_start_duration_seconds",
	"bay_exec_duration_seconds", "bay_exec_errors_total",
	"bay_gc_passes_total", "bay_gc_pass_duration_seconds", "bay_gc_items_cleaned_total", "bay_gc_errors_total",
	"bay_warm_pool_available", "bay_warm_pool_claims_total",
	"bay_sandboxes", "bay_sandboxes_scrape_errors_total",
	"bay_driver_call_duration_seconds", "bay_driver_errors_total",
	"go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes", "process_open_fds",
	"promhttp_metric_handler_requests_total",
}

func TestHandlerServesEveryFamily(t *testing.T) {
	m := New()
	observeAll(m, &fakeDriver{pingErr: errBoom})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()

	// promhttp_metric_handler_requests_total counts from the first scrape on; scrape twice.
	var body string
	for range 2 {
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("Content-Type %q, want text exposition", ct)
		}
		body = string(b)
	}
	for _, f := range families {
		if !strings.Contains(body, "\n# TYPE "+f+" ") {
			t.Errorf("exposition lacks family %s", f)
		}
	}
	for _, want := range []string{
		`bay_http_requests_total{method="GET",route="/v1/sandboxes/{id}",status="200"} 1`,
		`bay_sandboxes{status="ready"} 1`,
		`bay_driver_errors_total{op="ping"} 1`,
		`bay_driver_errors_total{op="create"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
	lintClean(t, m)
}

func TestSandboxCollector(t *testing.T) {
	const fam = "bay_sandboxes"
	tests := []struct {
		name       string
		f          func(ctx context.Context) (map[string]int, error)
		wantSeries int
		wantValues map[string]float64
		wantErrors float64
	}{
		{name: "no counter installed", f: nil, wantSeries: 0},
		{
			name: "counts by status",
			f: func(context.Context) (map[string]int, error) {
				return map[string]int{"ready": 3, "idle": 5, "starting": 0}, nil
			},
			wantSeries: 3,
			wantValues: map[string]float64{"ready": 3, "idle": 5, "starting": 0},
		},
		{
			name:       "error exports nothing and is counted",
			f:          func(context.Context) (map[string]int, error) { return map[string]int{"ready": 1}, errBoom },
			wantErrors: 1,
		},
		{
			name: "timeout through the context",
			f: func(ctx context.Context) (map[string]int, error) {
				<-ctx.Done()
				return nil, ctx.Err()
			},
			wantErrors: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New()
			m.sandboxes.timeout = 50 * time.Millisecond
			var calls atomic.Int32
			if tt.f != nil {
				m.SetSandboxCounter(func(ctx context.Context) (map[string]int, error) {
					calls.Add(1)
					if _, ok := ctx.Deadline(); !ok {
						t.Error("counter called without a deadline")
					}
					return tt.f(ctx)
				})
			}
			if n := calls.Load(); n != 0 {
				t.Fatalf("counter called %d times before any scrape", n)
			}
			mfs, err := m.Registry().Gather()
			if err != nil {
				t.Fatal(err)
			}
			if tt.f != nil && calls.Load() != 1 {
				t.Errorf("counter called %d times in one scrape, want 1", calls.Load())
			}
			got := map[string]float64{}
			errs := -1.0
			for _, mf := range mfs {
				switch mf.GetName() {
				case fam:
					for _, mt := range mf.GetMetric() {
						got[mt.GetLabel()[0].GetValue()] = mt.GetGauge().GetValue()
					}
				case "bay_sandboxes_scrape_errors_total":
					errs = mf.GetMetric()[0].GetCounter().GetValue()
				}
			}
			if len(got) != tt.wantSeries {
				t.Errorf("%d bay_sandboxes series %v, want %d", len(got), got, tt.wantSeries)
			}
			for k, v := range tt.wantValues {
				if got[k] != v {
					t.Errorf("bay_sandboxes{status=%q} = %v, want %v", k, got[k], v)
				}
			}
			if errs != tt.wantErrors {
				t.Errorf("scrape errors = %v, want %v", errs, tt.wantErrors)
			}
			lintClean(t, m)
		})
	}
}

// A counter that ignores its context cannot hold a scrape past the timeout,
// and cannot pile up goroutines scrape after scrape.
func TestSandboxCollectorHungCounter(t *testing.T) {
	m := New()
	m.sandboxes.timeout = 20 * time.Millisecond
	release := make(chan struct{})
	var calls atomic.Int32
	m.SetSandboxCounter(func(context.Context) (map[string]int, error) {
		calls.Add(1)
		<-release // ignores ctx
		return map[string]int{"ready": 1}, nil
	})
	const scrapes = 6
	start := time.Now()
	for range scrapes {
		if _, err := m.Registry().Gather(); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("%d scrapes took %v with a hung counter", scrapes, el)
	}
	if got := testutil.ToFloat64(m.sandboxes.errors); got != scrapes {
		t.Errorf("scrape errors = %v, want %d", got, scrapes)
	}
	if got := int(calls.Load()); got != cap(m.sandboxes.inflight) {
		t.Errorf("counter called %d times, want %d (then refused while busy)", got, cap(m.sandboxes.inflight))
	}
	close(release)
	// Once the hung calls return, the next scrape works again.
	deadline := time.Now().Add(5 * time.Second)
	for len(m.sandboxes.inflight) > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	m.sandboxes.timeout = 5 * time.Second
	if n := testutil.CollectAndCount(m.sandboxes, "bay_sandboxes"); n != 1 {
		t.Errorf("after release: %d bay_sandboxes series, want 1", n)
	}
}

func TestSetSandboxCounterNilRemoves(t *testing.T) {
	m := New()
	m.SetSandboxCounter(func(context.Context) (map[string]int, error) { return map[string]int{"ready": 1}, nil })
	if n := testutil.CollectAndCount(m.sandboxes, "bay_sandboxes"); n != 1 {
		t.Fatalf("%d series, want 1", n)
	}
	m.SetSandboxCounter(nil)
	if n := testutil.CollectAndCount(m.sandboxes, "bay_sandboxes"); n != 0 {
		t.Fatalf("%d series after removal, want 0", n)
	}
}

func TestNilMetricsIsNoop(t *testing.T) {
	var m *Metrics
	m.ObserveHTTP("GET", "/health", 200, time.Millisecond)
	m.SessionStarted(time.Second)
	m.SessionStartFailed()
	m.ObserveExec("python", time.Millisecond, errBoom)
	m.GCPass(time.Second, errBoom)
	m.GCTask("idle_session", 1, 1)
	m.WarmPoolSize("p", 1)
	m.WarmPoolHit("p")
	m.WarmPoolMiss("p")
	m.InitSeries([]string{"python"}, nil, nil)
	m.SetSandboxCounter(nil)
	if m.Registry() != nil {
		t.Error("nil Metrics has a registry")
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("nil Metrics handler answered %d, want 404", rec.Code)
	}
	d := &fakeDriver{}
	if InstrumentDriver(d, nil) != d {
		t.Error("InstrumentDriver with nil Metrics wrapped the driver")
	}
}

// Two Metrics never share state (no global registry).
func TestIndependentRegistries(t *testing.T) {
	a, b := New(), New()
	a.SessionStartFailed()
	if got := testutil.ToFloat64(b.sessionStartFailures); got != 0 {
		t.Errorf("second Metrics saw the first's counter: %v", got)
	}
	if a.Registry() == b.Registry() || a.Registry() == prometheus.DefaultRegisterer {
		t.Error("registries shared")
	}
}

func TestConcurrentUse(t *testing.T) {
	m := New()
	m.SetSandboxCounter(func(context.Context) (map[string]int, error) { return map[string]int{"ready": 1}, nil })
	drv := InstrumentDriver(&fakeDriver{}, m)
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 200 {
				m.ObserveHTTP("GET", "/v1/sandboxes", 200, time.Millisecond)
				m.ObserveExec("python", time.Millisecond, nil)
				m.WarmPoolSize("python-default", i)
				_ = drv.Ping(context.Background())
				if i%50 == 0 && g%2 == 0 {
					if _, err := m.Registry().Gather(); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
	if got := testutil.ToFloat64(m.httpRequests.WithLabelValues("GET", "/v1/sandboxes", "200")); got != 1600 {
		t.Errorf("requests = %v, want 1600", got)
	}
}
