package server

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/whiskserver/whisk/internal/config"
	"github.com/whiskserver/whisk/internal/front"
)

// bodyStallTimeout is the longest a client may send nothing while its
// request body is read: 408 then (nginx's client_body_timeout default).
const bodyStallTimeout = 60 * time.Second

// frontLimits returns the front's limits from the server settings.
func frontLimits(s config.Server) (front.Limits, error) {
	lim := front.Limits{
		MaxRequestLine: int(s.MaxRequestLine),
		WriteTimeout:   s.WriteTimeout,
		MaxConnections: s.MaxConnections,
		SocketOwner:    s.SocketOwner,
	}
	if s.SocketMode != "" {
		m, err := strconv.ParseUint(s.SocketMode, 8, 32)
		if err != nil || m > 0o777 {
			return front.Limits{}, fmt.Errorf("socket_mode %q: want octal permissions like 0660", s.SocketMode)
		}
		lim.SocketMode = os.FileMode(m)
	}
	return lim, nil
}

// warnLimits logs the limits a reload cannot change (the front's).
// min_body_rate is per mount and follows a reload.
func warnLimits(was, now config.Server, changed func(name string, differ bool)) {
	changed("max_request_line", was.MaxRequestLine != now.MaxRequestLine)
	changed("max_header_size", was.MaxHeaderSize != now.MaxHeaderSize)
	changed("write_timeout", was.WriteTimeout != now.WriteTimeout)
	changed("max_connections", was.MaxConnections != now.MaxConnections)
	changed("socket_mode", was.SocketMode != now.SocketMode)
	changed("socket_owner", was.SocketOwner != now.SocketOwner)
}
