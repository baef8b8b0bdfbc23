package admin

import (
	"bytes"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/whiskserver/whisk/internal/group"
)

// page is the status page: one self-contained document (inline CSS, no
// script, no external asset), so it renders anywhere, even offline.
var page = template.Must(template.New("status").Funcs(template.FuncMap{
	"bytes":    formatBytes,
	"seconds":  formatSeconds,
	"short":    func(s string) string { return s[:min(12, len(s))] },
	"reasons":  func() []string { return group.RestartReasons },
	"percent":  func(a, b int) int { return a * 100 / max(b, 1) },
	"add":      func(a, b int) int { return a + b },
	"clock":    func(t time.Time) string { return t.Format("15:04:05") },
	"truncate": func(s string) string { return truncate(s, 120) },
}).Parse(pageHTML))

// writeHTML renders st. ?refresh=N (1 to 3600) reloads the page every N
// seconds.
func writeHTML(w http.ResponseWriter, r *http.Request, log *slog.Logger, st Status) {
	refresh := 0
	if n, err := strconv.Atoi(r.URL.Query().Get("refresh")); err == nil && n >= 1 && n <= 3600 {
		refresh = n
	}
	var b bytes.Buffer
	if err := page.Execute(&b, struct {
		Status
		Refresh int
	}{st, refresh}); err != nil {
		log.Error("admin: status page not rendered", "error", err)
		http.Error(w, "status page not rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	_, _ = w.Write(b.Bytes())
}

// formatBytes writes n bytes in binary units, "–" for 0 (not sampled).
func formatBytes(n int64) string {
	switch {
	case n <= 0:
		return "–"
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
}

// formatSeconds writes a duration for people: 850ms, 12.3s, 4m05s, 3h12m.
func formatSeconds(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

const pageHTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{{if .Refresh}}<meta http-equiv="refresh" content="{{.Refresh}}">{{end}}
<title>whisk status — generation {{.Generation}}</title>
<style>
:root { --bg:#f6f7f9; --card:#fff; --ink:#1d2330; --muted:#6b7385; --line:#e3e6ec; --ok:#1f9d55; --warn:#d98b00; --bad:#d43d3d; --busy:#3867d6; --idle:#cfd8ea; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink); font:14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { background:#1d2330; color:#fff; padding:14px 24px; display:flex; flex-wrap:wrap; gap:8px 28px; align-items:baseline; }
header h1 { margin:0; font-size:20px; letter-spacing:.02em; }
header .kv { color:#aeb6c7; } header .kv b { color:#fff; font-weight:600; }
header nav { margin-left:auto; } header a { color:#9cc1ff; text-decoration:none; margin-left:12px; }
main { padding:20px 24px; max-width:1280px; }
.badge { display:inline-block; padding:1px 9px; border-radius:10px; font-size:12px; font-weight:600; color:#fff; vertical-align:2px; }
.ready,.serving { background:var(--ok); } .idle,.recycling,.starting { background:var(--warn); } .failed,.stopping,.retiring,.not-ready { background:var(--bad); }
.notready { background:#fff3f3; border:1px solid #f2c4c4; color:#8a1f1f; padding:8px 12px; border-radius:6px; margin-bottom:16px; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px; margin-bottom:20px; box-shadow:0 1px 2px rgba(0,0,0,.04); }
section > .head { padding:14px 18px 10px; border-bottom:1px solid var(--line); }
section h2 { margin:0 0 4px; font-size:17px; }
.meta { color:var(--muted); display:flex; flex-wrap:wrap; gap:4px 22px; }
.meta b { color:var(--ink); font-weight:600; }
.bar { display:flex; height:8px; border-radius:4px; overflow:hidden; background:var(--idle); margin-top:10px; max-width:420px; }
.bar span { background:var(--busy); }
table { width:100%; border-collapse:collapse; }
th,td { text-align:left; padding:7px 18px; border-bottom:1px solid var(--line); vertical-align:top; }
th { color:var(--muted); font-weight:600; font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
tr:last-child td { border-bottom:0; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
td.pid { font-family:ui-monospace, SFMono-Regular, Menlo, monospace; font-weight:600; }
.req { font-family:ui-monospace, SFMono-Regular, Menlo, monospace; font-size:12.5px; white-space:nowrap; }
.req .m { color:var(--busy); font-weight:600; } .req .age { color:var(--muted); margin-left:6px; }
.none { color:var(--muted); }
.restarts span { margin-right:14px; } .restarts b { font-weight:600; }
footer { color:var(--muted); padding:0 24px 24px; font-size:12px; }
</style>
</head>
<body>
<header>
<h1>whisk</h1>
<span class="kv">version <b>{{.Version}}</b></span>
<span class="kv">pid <b>{{.PID}}</b></span>
<span class="kv">generation <b id="generation">{{.Generation}}</b></span>
<span class="kv" title="SHA-256 of the normalised configuration: {{.ConfigDigest}}">config <b>{{short .ConfigDigest}}</b></span>
<span>{{if .Ready}}<span class="badge ready">ready</span>{{else}}<span class="badge not-ready">not ready</span>{{end}}</span>
<nav><a href="/status.json">JSON</a><a href="/metrics">metrics</a>{{if .Refresh}}<a href="/status">stop refreshing</a>{{else}}<a href="/status?refresh=2">refresh every 2 s</a>{{end}}</nav>
</header>
<main>
{{if .NotReady}}<div class="notready">Not ready: {{.NotReady}}</div>{{end}}
{{range .Groups}}
<section class="group" id="group-{{.Name}}">
<div class="head">
<h2>{{.Name}} <span class="badge {{.State}}">{{.State}}</span></h2>
<div class="meta">
<span>app <b>{{.App}}</b></span>
<span><b>{{.Processes}}</b> processes × <b>{{.Threads}}</b> threads</span>
<span>threads busy <b>{{.Busy}}</b> / idle <b>{{.Idle}}</b></span>
<span>queued <b>{{.Queued}}</b></span>
{{if .Failures}}<span>startup failures <b>{{.Failures}}</b></span>{{end}}
</div>
{{$restarts := .Restarts}}
<div class="meta restarts">restarts: {{range reasons}}<span>{{.}} <b>{{index $restarts . | printf "%d"}}</b></span>{{end}}</div>
{{if .LastFailure}}<div class="meta">last failure: {{.LastFailure}}{{if .RetryAt}} — retry at {{clock .RetryAt}}{{end}}</div>{{end}}
<div class="bar" title="{{.Busy}} busy, {{.Idle}} idle"><span style="width: {{percent .Busy (add .Busy .Idle)}}%"></span></div>
</div>
<table>
<thead><tr><th>PID</th><th>state</th><th class="num">served</th><th class="num">busy</th><th>current requests</th><th class="num">USS</th><th class="num">PSS</th><th class="num">RSS</th><th class="num">uptime</th><th class="num">CPU</th></tr></thead>
<tbody>
{{range .Workers}}
<tr class="worker" data-pid="{{.PID}}">
<td class="pid">{{.PID}}</td>
<td><span class="badge {{.State}}">{{.State}}</span></td>
<td class="num">{{.Served}}</td>
<td class="num">{{.Busy}} / {{add .Busy .Idle}}</td>
<td>{{range .Requests}}<div class="req"><span class="m">{{.Method}}</span> {{truncate .Path}}<span class="age">{{seconds .Age}}</span></div>{{else}}<span class="none">idle</span>{{end}}</td>
<td class="num">{{bytes .USS}}</td>
<td class="num">{{bytes .PSS}}</td>
<td class="num">{{bytes .RSS}}</td>
<td class="num">{{seconds .Uptime}}</td>
<td class="num">{{if ge .CPU 0}}{{.CPU}}{{else}}–{{end}}</td>
</tr>
{{else}}
<tr><td colspan="10" class="none">no worker running{{if eq .State "idle"}}: stopped after idle_timeout; the next request starts them{{end}}</td></tr>
{{end}}
</tbody>
</table>
</section>
{{else}}
<section><div class="head">No group is running yet.</div></section>
{{end}}
</main>
<footer>Snapshot at {{clock .Time}}. USS is a worker's own memory (what max_rss limits and a recycle gives back); PSS adds its share of the pages it shares; RSS counts every page it maps.</footer>
</body>
</html>
`
