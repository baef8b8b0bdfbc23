package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/whiskserver/whisk/internal/compress"
	"github.com/whiskserver/whisk/internal/group"
	"github.com/whiskserver/whisk/internal/route"
	"github.com/whiskserver/whisk/internal/static"
)

// djangoApp is an app mount of a group with django_static: once the
// group's workers have reported Django's settings, its site also mounts
// STATIC_URL on STATIC_ROOT and MEDIA_URL on MEDIA_ROOT.
type djangoApp struct {
	site     int    // index in generation.sites
	path     string // the app mount's prefix: "/" or "/blog"
	group    *group.Group
	name     string // the group's name
	compress bool   // the app mount compresses; its files are compressed too
}

// djangoKind is one of the two URL → directory pairs of Django's settings.
type djangoKind struct {
	urlName, rootName string // the settings' names, for logs: "STATIC_URL", "STATIC_ROOT"
	media             bool   // uploaded files: never cached as immutable
	missing           string // how to make a missing root exist
}

var (
	djangoStatic = djangoKind{urlName: "STATIC_URL", rootName: "STATIC_ROOT",
		missing: "collectstatic has not run yet: run `python manage.py collectstatic` with the workers' settings, then reload whisk (SIGHUP or `whisk reload`); until then the app answers"}
	djangoMedia = djangoKind{urlName: "MEDIA_URL", rootName: "MEDIA_ROOT", media: true,
		missing: "create it (writable by the workers' user; Django also creates it at the first upload), then reload whisk (SIGHUP or `whisk reload`); until then the app answers"}
)

// errNotLocal says a Django URL setting names another server (a CDN):
// nothing to mount.
var errNotLocal = errors.New("not a local path")

// djangoPrefix returns the route prefix where a site serves the Django URL
// setting raw ("static/", "/static/") for an app mounted at mount. Django
// prefixes a relative URL with the script name (the mount), and leaves a
// path that starts with "/" as it is. It returns errNotLocal for a URL of
// another server.
func djangoPrefix(mount, raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	if u.Scheme != "" || u.Host != "" || strings.HasPrefix(raw, "//") {
		return "", errNotLocal
	}
	p := u.Path
	if !strings.HasPrefix(p, "/") {
		p = strings.TrimSuffix(mount, "/") + "/" + p
	}
	p = path.Clean(p)
	if p == "/" {
		return "", fmt.Errorf("%q is the root of the site, which the app serves", raw)
	}
	return p, nil
}

// djangoSites returns gen's sites with the mounts of its django_static
// groups added, from what their workers reported. Nothing here fails the
// generation: a setting that cannot be served is logged (a warning when
// the operator has something to fix) and left to the app.
func (s *Server) djangoSites(gen *generation) []route.Site {
	if len(gen.django) == 0 {
		return gen.sites
	}
	log := s.deps.Log
	sites := slices.Clone(gen.sites)
	explicit := make([]map[string]bool, len(sites)) // the config's mounts, by site
	for i, site := range sites {
		sites[i].Mounts = slices.Clone(site.Mounts)
		explicit[i] = map[string]bool{}
		for _, m := range site.Mounts {
			explicit[i][m.Prefix] = true
		}
	}
	added := make([]map[string]string, len(sites)) // prefix → group, by site
	warned := map[string]bool{}
	once := func(level slog.Level, msg string, args ...any) {
		key := fmt.Sprint(msg, args)
		if !warned[key] {
			warned[key] = true
			log.Log(context.Background(), level, msg, args...)
		}
	}
	for _, da := range gen.django {
		d := da.group.Django()
		if d == nil {
			once(slog.LevelWarn, "django_static: the group's workers reported no Django settings (the app had not configured django.conf.settings once imported); nothing mounted",
				"group", da.name)
			continue
		}
		for _, kind := range []struct {
			djangoKind
			url, root string
		}{{djangoStatic, d.StaticURL, d.StaticRoot}, {djangoMedia, d.MediaURL, d.MediaRoot}} {
			if kind.url == "" {
				continue // unset: nothing to serve
			}
			prefix, err := djangoPrefix(da.path, kind.url)
			if errors.Is(err, errNotLocal) {
				once(slog.LevelInfo, "django_static: "+kind.urlName+" is on another server; not mounted", "group", da.name, "url", kind.url)
				continue
			}
			if err != nil {
				once(slog.LevelWarn, "django_static: "+kind.urlName+" not mounted: "+err.Error(), "group", da.name)
				continue
			}
			site := sites[da.site].Name
			if explicit[da.site][prefix] {
				once(slog.LevelInfo, "django_static: the config mounts "+kind.urlName+"'s path itself; that mount serves it", "group", da.name, "site", site, "path", prefix)
				continue
			}
			if added[da.site] == nil {
				added[da.site] = map[string]string{}
			}
			if other, ok := added[da.site][prefix]; ok {
				if other != da.name+" "+kind.urlName {
					once(slog.LevelWarn, "django_static: "+kind.urlName+"'s path is mounted already for another Django setting; not mounted again", "group", da.name, "site", site, "path", prefix, "mounted_for", other)
				}
				continue
			}
			if !djangoRootOK(once, da.name, kind.djangoKind, kind.root) {
				continue
			}
			files, err := static.New(kind.root, prefix, static.Options{Log: log, NoImmutable: kind.media})
			if err != nil {
				once(slog.LevelWarn, "django_static: "+kind.urlName+" not mounted", "group", da.name, "error", err)
				continue
			}
			gen.static = append(gen.static, files)
			var handler http.Handler = files
			if da.compress {
				handler = compress.New(files)
			}
			sites[da.site].Mounts = append(sites[da.site].Mounts, route.Mount{Prefix: prefix, Handler: handler})
			added[da.site][prefix] = da.name + " " + kind.urlName
			log.Info("django_static: serving "+kind.urlName+" from "+kind.rootName, "group", da.name, "site", site, "path", prefix+"/", "dir", kind.root)
		}
	}
	return sites
}

// djangoRootOK reports whether root, the directory of a Django setting,
// can be served; when it cannot, it logs why and the fix once.
func djangoRootOK(once func(slog.Level, string, ...any), groupName string, kind djangoKind, root string) bool {
	if root == "" {
		hint := "set it"
		if !kind.media {
			hint += " and run `python manage.py collectstatic`"
		}
		once(slog.LevelWarn, "django_static: "+kind.urlName+" is set but "+kind.rootName+" is not; not mounted: "+hint+", then reload whisk", "group", groupName)
		return false
	}
	fi, err := os.Stat(root)
	switch {
	case errors.Is(err, os.ErrNotExist):
		once(slog.LevelWarn, "django_static: "+kind.rootName+" does not exist, so "+kind.urlName+" is not mounted: "+kind.missing, "group", groupName, "dir", root)
		return false
	case err != nil:
		once(slog.LevelWarn, "django_static: "+kind.urlName+" not mounted", "group", groupName, "error", err)
		return false
	case !fi.IsDir():
		once(slog.LevelWarn, "django_static: "+kind.rootName+" is not a directory; "+kind.urlName+" not mounted", "group", groupName, "dir", root)
		return false
	}
	return true
}
