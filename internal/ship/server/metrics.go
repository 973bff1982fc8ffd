package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are Ship's Prometheus collectors, on a registry of their own (no
// global state). Labels are bounded: route templates, methods, status codes,
// and fixed kinds; never ids or paths.
type Metrics struct {
	reg            *prometheus.Registry
	execDuration   *prometheus.HistogramVec
	kernelRestarts *prometheus.CounterVec
	httpRequests   *prometheus.CounterVec
	httpDuration   *prometheus.HistogramVec
}

// NewMetrics builds the collectors; running reports the number of running
// background processes when scraped.
func NewMetrics(running func() int) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		execDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ship_exec_duration_seconds",
			Help:    "Wall time of code executions by kind (python, shell).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"kind"}),
		kernelRestarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ship_kernel_restarts_total",
			Help: "Kernel restarts: reason=api (requested) or died (found dead and restarted).",
		}, []string{"reason"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ship_http_requests_total",
			Help: "HTTP requests by route template, method and status code.",
		}, []string{"route", "method", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ship_http_request_duration_seconds",
			Help:    "HTTP request latency by route template.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
	}
	for _, k := range []string{"python", "shell"} {
		m.execDuration.WithLabelValues(k)
	}
	for _, r := range []string{"api", "died"} {
		m.kernelRestarts.WithLabelValues(r)
	}
	m.reg.MustRegister(m.execDuration, m.kernelRestarts, m.httpRequests, m.httpDuration,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ship_background_processes",
			Help: "Background processes currently running.",
		}, func() float64 { return float64(running()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}
