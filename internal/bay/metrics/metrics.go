// Package metrics is Bay's Prometheus instrumentation: one registry per Bay
// (no global state), the Go runtime and process collectors, and one method per
// thing Bay does that an operator wants to watch.
//
// Label values are always drawn from bounded sets: route templates
// (/v1/sandboxes/{id}, never the path), HTTP methods and status codes,
// capability names, GC task names, profile ids from config, driver op names and
// sandbox statuses. Never pass an id.
//
// Every method is safe for concurrent use, and safe on a nil *Metrics (a no-op),
// so wiring may leave metrics out.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "bay"

// Histogram buckets, in seconds.
var (
	// httpBuckets spans a cached GET (ms) to an exec or a cold start (minutes).
	httpBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}
	// sessionStartBuckets spans a warm container (0.2 s) to the ready timeout (120 s).
	sessionStartBuckets = []float64{.2, .5, 1, 2, 3, 5, 8, 13, 20, 30, 45, 60, 90, 120}
	// execBuckets starts at 1 ms (a `1+1` round trip) and ends past the longest exec timeouts.
	execBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	// gcBuckets spans an empty pass to a large backlog.
	gcBuckets = []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	// driverBuckets spans a ping (ms) to a create that pulls an image.
	driverBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}
)

// DefaultSandboxScrapeTimeout bounds the SetSandboxCounter callback per scrape.
const DefaultSandboxScrapeTimeout = 2 * time.Second

// Metrics holds Bay's collectors and the registry they are registered with.
type Metrics struct {
	reg *prometheus.Registry

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec

	sessionStarts        prometheus.Counter
	sessionStartFailures prometheus.Counter
	sessionStartDuration prometheus.Histogram

	execDuration *prometheus.HistogramVec
	execErrors   *prometheus.CounterVec

	gcPasses       *prometheus.CounterVec
	gcPassDuration prometheus.Histogram
	gcCleaned      *prometheus.CounterVec
	gcErrors       *prometheus.CounterVec

	warmAvailable *prometheus.GaugeVec
	warmClaims    *prometheus.CounterVec

	driverDuration *prometheus.HistogramVec
	driverErrors   *prometheus.CounterVec

	sandboxes *sandboxCollector
}

// New builds a Metrics with its own registry, holding Bay's families plus the
// Go runtime (go_*) and process (process_*) collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	f := factory{reg}
	m := &Metrics{reg: reg}

	m.httpRequests = f.counterVec("http_requests_total",
		"HTTP requests served, by method, route template and status code.", "method", "route", "status")
	m.httpDuration = f.histogramVec("http_request_duration_seconds",
		"Time to serve an HTTP request, by method and route template.", httpBuckets, "method", "route")

	m.sessionStarts = f.counter("session_starts_total", "Sessions (containers) started successfully.")
	m.sessionStartFailures = f.counter("session_start_failures_total", "Session starts that failed.")
	m.sessionStartDuration = f.histogram("session_start_duration_seconds",
		"Time from deciding to start a session to its runtime answering /health.", sessionStartBuckets)

	m.execDuration = f.histogramVec("exec_duration_seconds",
		"Time of an exec call through a capability (python, shell, filesystem, ...), errors included.",
		execBuckets, "capability")
	m.execErrors = f.counterVec("exec_errors_total", "Exec calls that returned an error, by capability.", "capability")

	m.gcPasses = f.counterVec("gc_passes_total", "GC passes run, by result (ok or error).", "result")
	m.gcPassDuration = f.histogram("gc_pass_duration_seconds", "Time of one GC pass.", gcBuckets)
	m.gcCleaned = f.counterVec("gc_items_cleaned_total", "Items removed by GC, by task.", "task")
	m.gcErrors = f.counterVec("gc_errors_total", "Errors met by GC, by task.", "task")

	m.warmAvailable = f.gaugeVec("warm_pool_available",
		"Warm sandboxes ready to be claimed, by profile.", "profile")
	m.warmClaims = f.counterVec("warm_pool_claims_total",
		"Sandbox creations that tried the warm pool, by profile and result (hit or miss).", "profile", "result")

	m.driverDuration = f.histogramVec("driver_call_duration_seconds",
		"Time of a driver call (Docker/Kubernetes API), by operation.", driverBuckets, "op")
	m.driverErrors = f.counterVec("driver_errors_total",
		"Driver calls that failed, by operation (not-found on stop/destroy/delete is not a failure).", "op")

	m.sandboxes = newSandboxCollector(DefaultSandboxScrapeTimeout)
	reg.MustRegister(m.sandboxes)

	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.gcPasses.WithLabelValues("ok")
	m.gcPasses.WithLabelValues("error")
	return m
}

// Registry returns the registry (tests, or to register more collectors).
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Handler serves the registry in the Prometheus text exposition format. It
// also counts its own scrapes (promhttp_metric_handler_requests_total).
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.InstrumentMetricHandler(m.reg, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		Registry:            m.reg, // promhttp_metric_handler_errors_total
		MaxRequestsInFlight: 4,
		Timeout:             DefaultSandboxScrapeTimeout + 3*time.Second,
	}))
}

// InitSeries creates the labelled series for known label values at zero, so
// that rate() and absence alerts work before the first event. Optional.
func (m *Metrics) InitSeries(capabilities, gcTasks, profiles []string) {
	if m == nil {
		return
	}
	for _, c := range capabilities {
		m.execDuration.WithLabelValues(c)
		m.execErrors.WithLabelValues(c)
	}
	for _, t := range gcTasks {
		m.gcCleaned.WithLabelValues(t)
		m.gcErrors.WithLabelValues(t)
	}
	for _, p := range profiles {
		m.warmAvailable.WithLabelValues(p)
		m.warmClaims.WithLabelValues(p, "hit")
		m.warmClaims.WithLabelValues(p, "miss")
	}
}

// ObserveHTTP records one served request. route must be the route template
// (e.g. "/v1/sandboxes/{id}", or "unmatched"), never the request path.
// status 0 means the handler wrote nothing, which net/http sends as 200.
func (m *Metrics) ObserveHTTP(method, route string, status int, d time.Duration) {
	if m == nil {
		return
	}
	method = normMethod(method)
	m.httpRequests.WithLabelValues(method, route, statusLabel(status)).Inc()
	m.httpDuration.WithLabelValues(method, route).Observe(d.Seconds())
}

// SessionStarted records a session that started and became ready after d.
func (m *Metrics) SessionStarted(d time.Duration) {
	if m == nil {
		return
	}
	m.sessionStarts.Inc()
	m.sessionStartDuration.Observe(d.Seconds())
}

// SessionStartFailed records a session start that failed.
func (m *Metrics) SessionStartFailed() {
	if m == nil {
		return
	}
	m.sessionStartFailures.Inc()
}

// ObserveExec records one exec through capability, taking d; a non-nil err
// also counts an error.
func (m *Metrics) ObserveExec(capability string, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.execDuration.WithLabelValues(capability).Observe(d.Seconds())
	if err != nil {
		m.execErrors.WithLabelValues(capability).Inc()
	}
}

// GCPass records one whole GC pass; err non-nil marks it result="error".
func (m *Metrics) GCPass(d time.Duration, err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.gcPasses.WithLabelValues(result).Inc()
	m.gcPassDuration.Observe(d.Seconds())
}

// GCTask records what one GC task did in a pass: items cleaned and errors met.
// It creates the task's series even when both are 0.
func (m *Metrics) GCTask(task string, cleaned int, errors int) {
	if m == nil {
		return
	}
	c, e := m.gcCleaned.WithLabelValues(task), m.gcErrors.WithLabelValues(task)
	if cleaned > 0 {
		c.Add(float64(cleaned))
	}
	if errors > 0 {
		e.Add(float64(errors))
	}
}

// WarmPoolSize sets the number of warm sandboxes ready to claim for profile.
func (m *Metrics) WarmPoolSize(profile string, available int) {
	if m == nil {
		return
	}
	m.warmAvailable.WithLabelValues(profile).Set(float64(available))
}

// WarmPoolHit records a creation served from profile's warm pool.
func (m *Metrics) WarmPoolHit(profile string) {
	if m == nil {
		return
	}
	m.warmClaims.WithLabelValues(profile, "hit").Inc()
}

// WarmPoolMiss records a creation that found profile's warm pool empty.
func (m *Metrics) WarmPoolMiss(profile string) {
	if m == nil {
		return
	}
	m.warmClaims.WithLabelValues(profile, "miss").Inc()
}

// SetSandboxCounter installs the function bay_sandboxes{status} is read from at
// scrape time (typically a GROUP BY status on the store). It is called with a
// context bounded by DefaultSandboxScrapeTimeout; on error nothing is exported
// for that scrape and bay_sandboxes_scrape_errors_total goes up. Statuses
// absent from the map are absent from the scrape, so return 0 for the ones a
// dashboard should always see. f must be safe for concurrent calls. nil
// removes it.
func (m *Metrics) SetSandboxCounter(f func(ctx context.Context) (map[string]int, error)) {
	if m == nil {
		return
	}
	if f == nil {
		m.sandboxes.f.Store(nil)
		return
	}
	m.sandboxes.f.Store(&f)
}

// sandboxCollector exports bay_sandboxes{status} by asking f at scrape time,
// and its own error counter, so a scrape that failed shows the failure in the
// same exposition.
type sandboxCollector struct {
	f        atomic.Pointer[func(ctx context.Context) (map[string]int, error)]
	timeout  time.Duration
	inflight chan struct{} // one slot per call of f that has not returned yet
	desc     *prometheus.Desc
	errors   prometheus.Counter
}

func newSandboxCollector(timeout time.Duration) *sandboxCollector {
	return &sandboxCollector{
		timeout:  timeout,
		inflight: make(chan struct{}, 4),
		desc: prometheus.NewDesc(namespace+"_sandboxes",
			"Sandboxes by status, read from the store at scrape time.", []string{"status"}, nil),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace,
			Name: "sandboxes_scrape_errors_total",
			Help: "Scrapes where counting sandboxes by status failed (bay_sandboxes was left out)."}),
	}
}

func (c *sandboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desc
	c.errors.Describe(ch)
}

func (c *sandboxCollector) Collect(ch chan<- prometheus.Metric) {
	if fp := c.f.Load(); fp != nil {
		counts, err := c.count(*fp)
		if err != nil {
			c.errors.Inc()
		} else {
			for status, n := range counts {
				ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), status)
			}
		}
	}
	ch <- c.errors
}

// errSandboxCountBusy: earlier calls of f are still running past their timeout.
var errSandboxCountBusy = errors.New("metrics: sandbox counter still busy from earlier scrapes")

// count calls f with the timeout, and returns at the timeout even when f does
// not honour its context. Calls left running that way hold a slot of inflight,
// so a hung f costs at most cap(inflight) goroutines, never one per scrape.
func (c *sandboxCollector) count(f func(ctx context.Context) (map[string]int, error)) (map[string]int, error) {
	select {
	case c.inflight <- struct{}{}:
	default:
		return nil, errSandboxCountBusy
	}
	type result struct {
		counts map[string]int
		err    error
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	done := make(chan result, 1)
	go func() {
		defer func() { <-c.inflight }()
		counts, err := f(ctx)
		done <- result{counts, err}
	}()
	select {
	case r := <-done:
		return r.counts, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// normMethod keeps the method label bounded: clients can send any token.
func normMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

func statusLabel(s int) string {
	switch {
	case s == 0:
		return "200"
	case s < 100 || s > 599:
		return "other"
	}
	return strconv.Itoa(s)
}

// factory registers what it builds under the bay_ namespace.
type factory struct{ reg prometheus.Registerer }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(g)
	return g
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets})
	f.reg.MustRegister(h)
	return h
}

func (f factory) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help,
		Buckets: buckets}, labels)
	f.reg.MustRegister(h)
	return h
}
