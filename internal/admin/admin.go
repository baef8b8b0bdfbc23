// Package admin serves whisk's admin endpoints: /metrics (Prometheus),
// /status (an HTML page; JSON for a client that asks for it) and
// /status.json, /healthz (alive) and /readyz (every group can serve, and
// whisk is not shutting down). Handler serves them all, for admin_bind,
// which has no authentication and belongs on loopback or a private
// network; Health serves /healthz and /readyz alone, for health_bind (the
// pod address a kubelet probes).
package admin

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/whiskserver/whisk/internal/group"
)

// Source is what the endpoints report on: the running server.
type Source interface {
	// Groups returns the current generation's groups.
	Groups() []*group.Group
	// Generation returns the current generation's number (0 before the
	// first has started).
	Generation() int
	// ConfigDigest returns the SHA-256 (hex) of the current generation's
	// normalised configuration ("" before the first has started).
	ConfigDigest() string
	// ShuttingDown reports whether a shutdown has begun.
	ShuttingDown() bool
}

// Config configures Handler.
type Config struct {
	// Source is the server reported on.
	Source Source
	// Metrics serves /metrics; nil leaves it out.
	Metrics http.Handler
	// Version is whisk's version, shown on the status page.
	Version string
	// Log receives the errors of writing responses.
	Log *slog.Logger
}

// Handler serves /metrics, /status, /status.json, /healthz and /readyz;
// / redirects to /status.
func Handler(cfg Config) http.Handler {
	mux := http.NewServeMux()
	health(mux, cfg.Source)
	if cfg.Metrics != nil {
		mux.Handle("GET /metrics", cfg.Metrics)
	}
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		st := Snapshot(cfg.Source, cfg.Version)
		if wantsJSON(r) {
			writeJSON(w, cfg.Log, st)
			return
		}
		writeHTML(w, r, cfg.Log, st)
	})
	mux.HandleFunc("GET /status.json", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, cfg.Log, Snapshot(cfg.Source, cfg.Version))
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/status", http.StatusFound)
	})
	return mux
}

// Health serves /healthz and /readyz alone.
func Health(src Source) http.Handler {
	mux := http.NewServeMux()
	health(mux, src)
	return mux
}

func health(mux *http.ServeMux, src Source) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		plain(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if why := NotReady(src); why != "" {
			plain(w, http.StatusServiceUnavailable, "not ready: "+why+"\n")
			return
		}
		plain(w, http.StatusOK, "ready\n")
	})
}

// NotReady says why src cannot take traffic — it is shutting down, has not
// started, or a group cannot serve (group.Status.CanServe) — or returns ""
// when it can.
func NotReady(src Source) string {
	if src.ShuttingDown() {
		return "shutting down"
	}
	if src.Generation() == 0 {
		return "starting"
	}
	var bad []string
	for _, g := range src.Groups() {
		st := g.Status()
		if !st.CanServe() {
			bad = append(bad, fmt.Sprintf("group %s %s", st.Name, groupState(st)))
		}
	}
	return strings.Join(bad, "; ")
}

func plain(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}

// wantsJSON reports whether the client prefers JSON to HTML: its Accept
// header names application/json and not text/html.
func wantsJSON(r *http.Request) bool {
	accept := r.Header.Get("Accept")
	return strings.Contains(accept, "application/json") && !strings.Contains(accept, "text/html")
}

func writeJSON(w http.ResponseWriter, log *slog.Logger, st Status) {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		log.Error("admin: status not encoded", "error", err)
		http.Error(w, "status not encoded", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(append(b, '\n'))
}

// Status is what /status shows, and /status.json's document.
type Status struct {
	// Version is whisk's version.
	Version string `json:"version"`
	// PID is whisk's process id.
	PID int `json:"pid"`
	// Time is when the snapshot was taken.
	Time time.Time `json:"time"`
	// Generation is the current generation's number.
	Generation int `json:"generation"`
	// ConfigDigest is the SHA-256 of its normalised configuration.
	ConfigDigest string `json:"config_digest"`
	// Ready is /readyz's answer; NotReady says why not.
	Ready bool `json:"ready"`
	// NotReady is why whisk is not ready, "" when it is.
	NotReady string `json:"not_ready,omitempty"`
	// ShuttingDown is set once a shutdown has begun.
	ShuttingDown bool `json:"shutting_down"`
	// Groups are the current generation's groups.
	Groups []GroupStatus `json:"groups"`
}

// GroupStatus is a group in Status.
type GroupStatus struct {
	// Name is the group's name.
	Name string `json:"name"`
	// App is the WSGI app it serves.
	App string `json:"app"`
	// Processes and Threads are its configured size.
	Processes int `json:"processes"`
	// Threads is the number of threads per process.
	Threads int `json:"threads"`
	// State is serving, idle (stopped after idle_timeout), starting,
	// failed or stopping.
	State string `json:"state"`
	// CanServe is group.Status.CanServe.
	CanServe bool `json:"can_serve"`
	// Queued is the number of requests waiting for a worker thread.
	Queued int `json:"queued"`
	// Busy and Idle count its worker threads serving a request and free.
	Busy int `json:"busy"`
	// Idle counts its free worker threads.
	Idle int `json:"idle"`
	// Failures is the number of consecutive startup failures.
	Failures int `json:"failures"`
	// LastFailure is the last startup failure.
	LastFailure string `json:"last_failure,omitempty"`
	// RetryAt, when failed, is when it tries to start a worker again.
	RetryAt *time.Time `json:"retry_at,omitempty"`
	// Restarts counts the workers replaced or stopped, by reason.
	Restarts map[string]int `json:"restarts"`
	// Workers are its live workers.
	Workers []WorkerStatus `json:"workers"`
}

// WorkerStatus is a worker in GroupStatus.
type WorkerStatus struct {
	// PID is its process id.
	PID int `json:"pid"`
	// State is ready, recycling (its replacement is starting) or retiring.
	State string `json:"state"`
	// Served is the number of requests it has been given.
	Served int `json:"served"`
	// Busy and Idle count its threads serving a request and free.
	Busy int `json:"busy"`
	// Idle counts its free threads.
	Idle int `json:"idle"`
	// CPU is the CPU it is pinned to, or -1.
	CPU int `json:"cpu"`
	// USS, PSS and RSS are its memory in bytes at the last sample (0
	// before the first): see docs/operations.md.
	USS int64 `json:"uss_bytes"`
	// PSS is its proportional set size in bytes.
	PSS int64 `json:"pss_bytes"`
	// RSS is its resident set size in bytes.
	RSS int64 `json:"rss_bytes"`
	// Uptime is how long it has run, in seconds.
	Uptime float64 `json:"uptime_seconds"`
	// Requests are the requests it serves now, oldest first.
	Requests []RequestStatus `json:"requests"`
}

// RequestStatus is a request in progress in WorkerStatus.
type RequestStatus struct {
	// Method and Path are the request's method and URL path (no query).
	Method string `json:"method"`
	// Path is its URL path.
	Path string `json:"path"`
	// Since is when a worker thread took it.
	Since time.Time `json:"since"`
	// Age is how long it has been running, in seconds.
	Age float64 `json:"age_seconds"`
}

// Snapshot reads the status of src now.
func Snapshot(src Source, version string) Status {
	now := time.Now()
	st := Status{
		Version: version, PID: os.Getpid(), Time: now,
		Generation: src.Generation(), ConfigDigest: src.ConfigDigest(),
		ShuttingDown: src.ShuttingDown(), Groups: []GroupStatus{},
	}
	st.NotReady = NotReady(src)
	st.Ready = st.NotReady == ""
	for _, g := range src.Groups() {
		gs := g.Status()
		out := GroupStatus{
			Name: gs.Name, App: gs.App, Processes: gs.Processes, Threads: gs.Threads,
			State: groupState(gs), CanServe: gs.CanServe(), Queued: gs.Queued,
			Failures: gs.Failures, LastFailure: gs.LastFailure, Restarts: gs.Restarts,
			Workers: []WorkerStatus{},
		}
		if gs.Failed {
			retry := gs.RetryAt
			out.RetryAt = &retry
		}
		for _, w := range gs.Workers {
			ws := WorkerStatus{
				PID: w.PID, State: w.State.String(), Served: w.Served, Busy: w.Busy, Idle: w.Idle,
				CPU: w.CPU, USS: w.Memory, PSS: w.PSS, RSS: w.RSS, Uptime: w.Uptime.Seconds(),
				Requests: []RequestStatus{},
			}
			if w.Recycling {
				ws.State = "recycling"
			}
			for _, r := range w.Requests {
				ws.Requests = append(ws.Requests, RequestStatus{Method: r.Method, Path: r.Path, Since: r.Since, Age: now.Sub(r.Since).Seconds()})
			}
			out.Busy += w.Busy
			out.Idle += w.Idle
			out.Workers = append(out.Workers, ws)
		}
		st.Groups = append(st.Groups, out)
	}
	return st
}

// groupState names a group's state for people.
func groupState(st group.Status) string {
	ready := false
	for _, w := range st.Workers {
		ready = ready || w.State == group.StateReady
	}
	switch {
	case st.Stopping:
		return "stopping"
	case st.Failed && !ready:
		return "failed"
	case ready:
		return "serving"
	case st.Idle:
		return "idle"
	}
	return "starting"
}
