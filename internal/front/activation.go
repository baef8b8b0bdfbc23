package front

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The variables of systemd's socket activation (sd_listen_fds(3)).
const (
	envListenPID     = "LISTEN_PID"
	envListenFDs     = "LISTEN_FDS"
	envListenFDNames = "LISTEN_FDNAMES"
)

// listenFDsStart is the first inherited descriptor (SD_LISTEN_FDS_START).
const listenFDsStart = 3

// Inherited holds the listening sockets whisk was started with by systemd
// socket activation. Each is handed out once, to the bind that names its
// address; what is left when every listener is open is an error (Unused).
// A nil *Inherited holds none.
type Inherited struct {
	socks []*inheritedSocket
}

type inheritedSocket struct {
	l     net.Listener
	fd    int
	name  string // FileDescriptorName= of the .socket unit
	taken bool
}

func (s *inheritedSocket) String() string {
	return fmt.Sprintf("fd %d %q (%s)", s.fd, s.name, addrString(s.l.Addr()))
}

// Activation returns the sockets systemd passed when LISTEN_PID names this
// process (nil when it does not: whisk was not socket-activated), and
// unsets LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES so worker processes do
// not see them. Only listening stream sockets are taken (ListenStream= with
// Accept=no); anything else is an error.
func Activation() (*Inherited, error) {
	pid, fds, names := os.Getenv(envListenPID), os.Getenv(envListenFDs), os.Getenv(envListenFDNames)
	for _, k := range []string{envListenPID, envListenFDs, envListenFDNames} {
		if err := os.Unsetenv(k); err != nil {
			return nil, fmt.Errorf("socket activation: unset %s: %w", k, err)
		}
	}
	return inherit(pid, fds, names, os.Getpid(), listenFDsStart)
}

// inherit takes the descriptors first..first+LISTEN_FDS-1 when pidText is
// pid.
func inherit(pidText, fdsText, namesText string, pid, first int) (*Inherited, error) {
	if pidText == "" || fdsText == "" {
		return nil, nil
	}
	if p, err := strconv.Atoi(pidText); err != nil || p != pid {
		return nil, nil // meant for another process (our parent's, say)
	}
	n, err := strconv.Atoi(fdsText)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("socket activation: %s=%q: want a number of descriptors", envListenFDs, fdsText)
	}
	if n == 0 {
		return nil, nil
	}
	names := strings.Split(namesText, ":")
	if namesText == "" || len(names) != n {
		names = nil
	}
	in := &Inherited{}
	for i := range n {
		fd := first + i
		name := "unknown"
		if names != nil {
			name = names[i]
		}
		l, err := fileListener(fd, name)
		if err != nil {
			in.Close()
			// Mark the descriptors not looked at yet close-on-exec too, so none
			// leaks to a process whisk starts.
			for rest := fd + 1; rest < first+n; rest++ {
				syscall.CloseOnExec(rest)
			}
			return nil, err
		}
		in.socks = append(in.socks, &inheritedSocket{l: l, fd: fd, name: name})
	}
	return in, nil
}

// fileListener makes a listener of an inherited descriptor, which it then
// owns.
func fileListener(fd int, name string) (net.Listener, error) {
	syscall.CloseOnExec(fd) // workers get only what whisk hands them
	what := fmt.Sprintf("socket activation: fd %d %q", fd, name)
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return nil, fmt.Errorf("%s is not a socket: %w", what, err)
	}
	if typ != unix.SOCK_STREAM {
		return nil, fmt.Errorf("%s is not a stream socket: whisk takes ListenStream= sockets", what)
	}
	if acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || acc == 0 {
		return nil, fmt.Errorf("%s is not a listening socket: whisk takes Accept=no sockets (the default), not connections", what)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close() // FileListener holds its own duplicate
	l, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return l, nil
}

// Len returns the number of inherited sockets.
func (in *Inherited) Len() int {
	if in == nil {
		return 0
	}
	return len(in.socks)
}

// Take returns the inherited socket whose address bind names (HOST:PORT or
// unix:PATH), if one is left; see Matches for what names an address.
func (in *Inherited) Take(bind string) (net.Listener, bool) {
	if in == nil {
		return nil, false
	}
	for _, s := range in.socks {
		if !s.taken && Matches(bind, s.l.Addr()) {
			s.taken = true
			return s.l, true
		}
	}
	return nil, false
}

// takeAll returns every socket not taken yet whose address none of
// reserved names.
func (in *Inherited) takeAll(reserved []string) []*inheritedSocket {
	if in == nil {
		return nil
	}
	var out []*inheritedSocket
	for _, s := range in.socks {
		if s.taken || anyMatches(reserved, s.l.Addr()) {
			continue
		}
		s.taken = true
		out = append(out, s)
	}
	return out
}

// find returns the inherited socket l, if it is one.
func (in *Inherited) find(l net.Listener) (*inheritedSocket, bool) {
	if in == nil {
		return nil, false
	}
	for _, s := range in.socks {
		if s.l == l {
			return s, true
		}
	}
	return nil, false
}

// Unused closes the sockets no listener took and returns an error naming
// them; nil when every one was taken. Call it once every listener is open.
func (in *Inherited) Unused() error {
	if in == nil {
		return nil
	}
	var left []string
	for _, s := range in.socks {
		if !s.taken {
			s.taken = true
			s.l.Close()
			left = append(left, s.String())
		}
	}
	if len(left) == 0 {
		return nil
	}
	return fmt.Errorf("socket activation: systemd passed %s, which no bind names: add the address to bind (or leave bind unset to serve every socket systemd passes), or remove it from the .socket unit", strings.Join(left, ", "))
}

// Close closes the sockets not taken.
func (in *Inherited) Close() error {
	if in == nil {
		return nil
	}
	var errs []error
	for _, s := range in.socks {
		if !s.taken {
			s.taken = true
			errs = append(errs, s.l.Close())
		}
	}
	return errors.Join(errs...)
}

// Matches reports whether bind (HOST:PORT or unix:PATH) names the address
// a. Unix paths are compared cleaned ("@name" is an abstract socket). For
// TCP the ports must be equal, and the hosts: an unspecified host (empty,
// 0.0.0.0 or ::) matches an unspecified address of either family, since
// systemd's ListenStream=8000 is a dual-stack [::]:8000; a host name
// matches the addresses it resolves to.
func Matches(bind string, a net.Addr) bool {
	if path, ok := strings.CutPrefix(bind, "unix:"); ok {
		ua, ok := a.(*net.UnixAddr)
		if !ok || path == "" {
			return false
		}
		if strings.HasPrefix(path, "@") || strings.HasPrefix(ua.Name, "@") {
			return path == ua.Name
		}
		return filepath.Clean(path) == filepath.Clean(ua.Name)
	}
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	host, portText, err := net.SplitHostPort(bind)
	if err != nil {
		return false
	}
	port, err := net.LookupPort("tcp", portText)
	if err != nil || port != ta.Port {
		return false
	}
	if host == "" {
		return ta.IP.IsUnspecified()
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsUnspecified() {
			return ta.IP.IsUnspecified()
		}
		return ip.Equal(ta.IP)
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return false
	}
	for _, ip := range ips {
		if ip.Equal(ta.IP) {
			return true
		}
	}
	return false
}

func anyMatches(binds []string, a net.Addr) bool {
	for _, b := range binds {
		if b != "" && Matches(b, a) {
			return true
		}
	}
	return false
}

// addrString formats a listener's address the way a bind names it.
func addrString(a net.Addr) string {
	if a.Network() == "unix" {
		return "unix:" + a.String()
	}
	return a.String()
}
