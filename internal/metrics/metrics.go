// Package metrics is whisk's Prometheus instrumentation, on a registry of
// its own (never the client library's global one): what each request cost
// (observed at its end, through Observe, a reqinfo Done hook), worker
// restarts by reason (counted as they happen, through Restart), and the
// state of the current generation's groups — queue depth, busy and idle
// slots, workers, their memory — read from the groups at scrape time, so
// a reload or a recycled worker leaves no stale series behind. The Go
// runtime and process collectors describe the front itself.
//
// docs/operations.md lists every metric with example queries.
package metrics

import (
	"log/slog"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/whiskserver/whisk/internal/group"
	"github.com/whiskserver/whisk/internal/reqinfo"
)

// Source is what the scrape-time metrics are read from: the running
// server.
type Source interface {
	// Groups returns the current generation's groups.
	Groups() []*group.Group
	// Generation returns the current generation's number: 1 for the
	// first, one more per reload; 0 before the first has started.
	Generation() int
}

// Histogram buckets, in seconds. Requests span from a cached page in a
// millisecond to a report that takes a minute; queue waits are mostly 0
// and matter from a millisecond.
var (
	latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
	queueBuckets   = []float64{0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
)

// Metrics holds whisk's registry and the metrics updated as things happen.
// Its methods are safe for concurrent use.
type Metrics struct {
	reg      *prometheus.Registry
	handler  http.Handler
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	queue    *prometheus.HistogramVec
	app      *prometheus.HistogramVec
	restarts *prometheus.CounterVec

	// byGroup maps a group name to its resolved children, copied on
	// write: the request path reads it without a lock or an allocation.
	byGroup atomic.Pointer[map[string]*groupMetrics]
	mu      sync.Mutex // serialises writers of byGroup
}

// groupMetrics are one group's request metrics, resolved once.
type groupMetrics struct {
	name     string
	duration prometheus.Observer
	queue    prometheus.Observer
	app      prometheus.Observer
	codes    [1000]atomic.Pointer[prometheus.Counter] // by status code, made on first use
}

// New makes the registry: the request and restart metrics, the collector
// of src's groups, and the Go runtime and process collectors. log receives
// the errors of scrapes.
func New(src Source, log *slog.Logger) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "whisk_requests_total",
			Help: "Requests answered, by group (empty when no group served it: 404, 421, 413) and status code.",
		}, []string{"group", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "whisk_request_duration_seconds",
			Help:    "Time from the request head read to the end of the response, by group.",
			Buckets: latencyBuckets,
		}, []string{"group"}),
		queue: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "whisk_request_queue_seconds",
			Help:    "Time a request served by a worker waited for a free worker thread, by group.",
			Buckets: queueBuckets,
		}, []string{"group"}),
		app: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "whisk_request_app_seconds",
			Help:    "Time from handing a request to a worker to the end of the worker's response, by group.",
			Buckets: latencyBuckets,
		}, []string{"group"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "whisk_worker_restarts_total",
			Help: "Workers replaced or stopped while their group ran, by group and reason: crash, max_requests, max_rss, timeout (a thread stuck past the request timeout), reload, idle (idle_timeout).",
		}, []string{"group", "reason"}),
	}
	empty := map[string]*groupMetrics{}
	m.byGroup.Store(&empty)
	m.reg.MustRegister(
		m.requests, m.duration, m.queue, m.app, m.restarts,
		newGroupCollector(src),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
		// A scraper that hangs must not pile up gathers.
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
	return m
}

// Registry returns the registry, for tests and other collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler { return m.handler }

// AddGroup makes the series of group name at zero (its restart counters
// for every reason, its histograms), so that rate() and increase() see
// the first event. Observe and Restart also work for a group never added.
func (m *Metrics) AddGroup(name string) {
	m.group(name)
	for _, reason := range group.RestartReasons {
		m.restarts.WithLabelValues(name, reason)
	}
}

// group returns the resolved metrics of group name, making them on first
// use.
func (m *Metrics) group(name string) *groupMetrics {
	if g, ok := (*m.byGroup.Load())[name]; ok {
		return g
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.byGroup.Load()
	if g, ok := old[name]; ok {
		return g
	}
	g := &groupMetrics{
		name:     name,
		duration: m.duration.WithLabelValues(name),
		queue:    m.queue.WithLabelValues(name),
		app:      m.app.WithLabelValues(name),
	}
	next := maps.Clone(old)
	next[name] = g
	m.byGroup.Store(&next)
	return g
}

// counter returns the requests counter of g's status code.
func (m *Metrics) counter(g *groupMetrics, code int) prometheus.Counter {
	if code < 0 || code >= len(g.codes) {
		code = 0 // net/http allows only 100..999; 0 stands for anything else
	}
	if c := g.codes[code].Load(); c != nil {
		return *c
	}
	c := m.requests.WithLabelValues(g.name, strconv.Itoa(code))
	g.codes[code].Store(&c)
	return c
}

// Observe records a finished request: a reqinfo.Config.Done hook. It does
// not allocate once its group and status code have been seen.
func (m *Metrics) Observe(_ *http.Request, info *reqinfo.Info) {
	g := m.group(info.Group)
	m.counter(g, info.Status).Inc()
	g.duration.Observe(time.Since(info.Start).Seconds())
	if info.PID != 0 { // a worker served it: it waited, then the app ran
		g.queue.Observe(info.Queue.Seconds())
		g.app.Observe(info.App.Seconds())
	}
}

// Restart counts a worker of group name replaced or stopped for reason
// (a group.Restart* constant): a group.Config.OnRestart hook.
func (m *Metrics) Restart(name, reason string) {
	m.Restarts(name, reason, 1)
}

// Restarts counts n workers of group name replaced or stopped for reason.
func (m *Metrics) Restarts(name, reason string, n int) {
	if n > 0 {
		m.restarts.WithLabelValues(name, reason).Add(float64(n))
	}
}
