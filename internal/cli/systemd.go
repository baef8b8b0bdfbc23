package cli

import (
	"fmt"
	"log/slog"

	"github.com/whiskserver/whisk/internal/front"
	"github.com/whiskserver/whisk/internal/sdnotify"
)

// systemd reads what systemd hands a service: the sockets of socket
// activation (LISTEN_FDS) and the notification socket (NOTIFY_SOCKET). It
// unsets their variables, so the workers started later do not see them.
// Both results are nil when whisk does not run under systemd.
func systemd(log *slog.Logger) (*front.Inherited, *sdnotify.Notifier, error) {
	notifier, err := sdnotify.FromEnv()
	if err != nil {
		return nil, nil, err
	}
	inherited, err := front.Activation()
	if err != nil {
		return nil, nil, err
	}
	if inherited.Len() > 0 {
		log.Info("socket activation: systemd passed listening sockets", "sockets", inherited.Len())
	}
	return inherited, notifier, nil
}

// notify sends a state change to systemd; a failure is logged, never
// fatal (the service manager may be gone, the service must not be).
func notify(log *slog.Logger, state string, err error) {
	if err != nil {
		log.Warn(fmt.Sprintf("sd_notify %s failed", state), "error", err)
	}
}
