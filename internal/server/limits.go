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
