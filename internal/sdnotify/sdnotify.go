// Package sdnotify tells systemd (or any service manager speaking its
// protocol) how whisk is doing: READY=1 once every group serves,
// RELOADING=1 and READY=1 around a reload, STOPPING=1 on shutdown. The
// messages are datagrams to the unix socket named by NOTIFY_SOCKET (a path,
// or "@name" for the abstract namespace), as sd_notify(3) sends them.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// EnvSocket is the variable that names the notification socket.
const EnvSocket = "NOTIFY_SOCKET"

// Notifier sends state changes to the service manager. A nil *Notifier
// sends nothing, so callers need not check whether whisk runs under
// systemd.
type Notifier struct {
	addr *net.UnixAddr
}

// New returns a Notifier for the socket path (a filesystem path, or
// "@name" for an abstract socket); nil when socket is "".
func New(socket string) (*Notifier, error) {
	if socket == "" {
		return nil, nil
	}
	if !strings.HasPrefix(socket, "/") && !strings.HasPrefix(socket, "@") {
		return nil, fmt.Errorf("%s=%q: want an absolute path or @name (an abstract socket)", EnvSocket, socket)
	}
	// Go maps a leading '@' to the abstract namespace's leading NUL byte.
	return &Notifier{addr: &net.UnixAddr{Name: socket, Net: "unixgram"}}, nil
}

// FromEnv returns a Notifier for NOTIFY_SOCKET (nil when unset) and unsets
// the variable, so worker processes do not inherit it: the service's
// state is whisk's to report, not the app's.
func FromEnv() (*Notifier, error) {
	socket := os.Getenv(EnvSocket)
	if err := os.Unsetenv(EnvSocket); err != nil {
		return nil, fmt.Errorf("unset %s: %w", EnvSocket, err)
	}
	return New(socket)
}

// Socket returns the socket's address as NOTIFY_SOCKET gave it; "" for a
// nil Notifier.
func (n *Notifier) Socket() string {
	if n == nil {
		return ""
	}
	return n.addr.Name
}

// Notify sends the assignments (like "READY=1", "STATUS=serving") in one
// datagram. It does nothing on a nil Notifier.
func (n *Notifier) Notify(assignments ...string) error {
	if n == nil {
		return nil
	}
	if len(assignments) == 0 {
		return errors.New("sdnotify: nothing to send")
	}
	msg := strings.Join(assignments, "\n") + "\n"
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.addr.Name, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(msg)); err != nil {
		return fmt.Errorf("sd_notify %s: send %q: %w", n.addr.Name, strings.TrimSpace(msg), err)
	}
	return nil
}

// Ready says the service serves; status, when not "", is shown by
// systemctl status.
func (n *Notifier) Ready(status string) error {
	return n.Notify(withStatus([]string{"READY=1"}, status)...)
}

// Reloading says a reload started. READY=1 (Ready) must follow once it
// ends, whether it succeeded or not. MONOTONIC_USEC lets systemd (253 and
// later, Type=notify-reload) match it with the reload it asked for.
func (n *Notifier) Reloading(status string) error {
	return n.Notify(withStatus([]string{"RELOADING=1", "MONOTONIC_USEC=" + strconv.FormatInt(monotonicUsec(), 10)}, status)...)
}

// Stopping says the service is shutting down.
func (n *Notifier) Stopping(status string) error {
	return n.Notify(withStatus([]string{"STOPPING=1"}, status)...)
}

// Status updates the free-form status line alone.
func (n *Notifier) Status(status string) error {
	return n.Notify("STATUS=" + oneLine(status))
}

func withStatus(a []string, status string) []string {
	if status != "" {
		a = append(a, "STATUS="+oneLine(status))
	}
	return a
}

// oneLine keeps a status to one line: a newline would start a new
// assignment.
func oneLine(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, the clock systemd
// compares reload requests with.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano()).Microseconds()
}
