package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whiskserver/whisk/internal/group"
)

// groupCollector reads the state of the current generation's groups at
// scrape time: series of a group a reload removed, or of a worker that
// exited, are gone from the next scrape.
type groupCollector struct {
	src Source

	generation *prometheus.Desc
	queue      *prometheus.Desc
	slots      *prometheus.Desc
	workers    *prometheus.Desc
	ready      *prometheus.Desc
	failed     *prometheus.Desc
	idle       *prometheus.Desc
	memory     *prometheus.Desc
	served     *prometheus.Desc
}

func newGroupCollector(src Source) *groupCollector {
	return &groupCollector{
		src: src,
		generation: prometheus.NewDesc("whisk_generation",
			"The current generation: 1 at start, one more per reload (0 before the first has started).", nil, nil),
		queue: prometheus.NewDesc("whisk_queue_depth",
			"Requests waiting for a free worker thread, by group.", []string{"group"}, nil),
		slots: prometheus.NewDesc("whisk_slots",
			"Worker threads by group and state: busy (serving a request) or idle (free to take one). Threads of a retiring worker count only while busy.", []string{"group", "state"}, nil),
		workers: prometheus.NewDesc("whisk_workers",
			"Live worker processes by group and state: ready, or retiring (finishing its requests before it stops).", []string{"group", "state"}, nil),
		ready: prometheus.NewDesc("whisk_group_ready",
			"1 when the group can serve a request: a worker is ready, or the group is stopped after idle_timeout and starts on demand; else 0.", []string{"group"}, nil),
		failed: prometheus.NewDesc("whisk_group_failed",
			"1 while the group is in the failed state (its workers keep failing at startup), else 0.", []string{"group"}, nil),
		idle: prometheus.NewDesc("whisk_group_idle",
			"1 while the group's processes are stopped after idle_timeout, else 0.", []string{"group"}, nil),
		memory: prometheus.NewDesc("whisk_worker_memory_bytes",
			"Worker memory at its last sample (every 5 s), by group, pid and kind: uss (its own pages, what max_rss limits and a recycle gives back), pss (plus its share of shared pages), rss (every resident page it maps).", []string{"group", "pid", "kind"}, nil),
		served: prometheus.NewDesc("whisk_worker_requests",
			"Requests a live worker has been given, by group and pid.", []string{"group", "pid"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *groupCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.generation, c.queue, c.slots, c.workers, c.ready, c.failed, c.idle, c.memory, c.served} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *groupCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(c.generation, float64(c.src.Generation()))
	for _, g := range c.src.Groups() {
		st := g.Status()
		name := st.Name
		gauge(c.queue, float64(st.Queued), name)
		var busy, idle, ready, retiring int
		for _, w := range st.Workers {
			busy += w.Busy
			idle += w.Idle
			switch w.State {
			case group.StateReady:
				ready++
			case group.StateRetiring:
				retiring++
			}
			pid := strconv.Itoa(w.PID)
			gauge(c.served, float64(w.Served), name, pid)
			if w.Memory > 0 { // sampled at least once
				gauge(c.memory, float64(w.Memory), name, pid, "uss")
				gauge(c.memory, float64(w.PSS), name, pid, "pss")
				gauge(c.memory, float64(w.RSS), name, pid, "rss")
			}
		}
		gauge(c.slots, float64(busy), name, "busy")
		gauge(c.slots, float64(idle), name, "idle")
		gauge(c.workers, float64(ready), name, "ready")
		gauge(c.workers, float64(retiring), name, "retiring")
		gauge(c.ready, bool01(st.CanServe()), name)
		gauge(c.failed, bool01(st.Failed), name)
		gauge(c.idle, bool01(st.Idle), name)
	}
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
