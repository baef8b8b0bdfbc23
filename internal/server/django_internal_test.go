package server

import (
	"errors"
	"testing"
)

func TestDjangoPrefix(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		mount, url, want string
		err              error // errNotLocal; nil with want "" means another error
	}{
		{"/", "static/", "/static", nil},
		{"/", "/static/", "/static", nil},
		{"/blog", "static/", "/blog/static", nil},   // Django prefixes SCRIPT_NAME
		{"/blog", "/static/", "/static", nil},       // an absolute path stays
		{"/blog", "/assets/v2/", "/assets/v2", nil}, // deeper prefixes too
		{"/", "media", "/media", nil},
		{"/", "./static/../files/", "/files", nil},
		{"/", "https://cdn.example.com/static/", "", errNotLocal},
		{"/", "http://cdn.example.com/static/", "", errNotLocal},
		{"/", "//cdn.example.com/static/", "", errNotLocal},
		{"/", "/", "", nil},          // the site's root: the app's
		{"/blog", ".", "/blog", nil}, // the mount itself, which the app mount then wins
		{"/", "%zz/", "", nil},
	} {
		got, err := djangoPrefix(c.mount, c.url)
		switch {
		case c.err != nil:
			if !errors.Is(err, c.err) {
				t.Errorf("djangoPrefix(%q, %q) = %q, %v; want %v", c.mount, c.url, got, err, c.err)
			}
		case c.want == "":
			if err == nil || errors.Is(err, errNotLocal) {
				t.Errorf("djangoPrefix(%q, %q) = %q, %v; want an error", c.mount, c.url, got, err)
			}
		default:
			if err != nil || got != c.want {
				t.Errorf("djangoPrefix(%q, %q) = %q, %v; want %q", c.mount, c.url, got, err, c.want)
			}
		}
	}
}
