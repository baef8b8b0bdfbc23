package proc

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"
	"syscall"
)

// Account is the Unix identity a worker runs as (the user and group
// settings), resolved once by LookupAccount.
type Account struct {
	// Name is the user's login name, for USER and LOGNAME.
	Name string
	// UID is the user id.
	UID uint32
	// GID is the primary group: the group setting's, else the user's.
	GID uint32
	// Groups are the supplementary groups: the user's groups as
	// initgroups(3) finds them, and GID.
	Groups []uint32
	// Home is the user's home directory, for HOME.
	Home string
}

// LookupAccount resolves the user setting (a name, or a numeric id) and the
// optional group setting (empty: the user's primary group). Its errors name
// the setting and the fix.
func LookupAccount(userName, groupName string) (*Account, error) {
	u, err := user.Lookup(userName)
	if isNumber(userName) && errors.As(err, new(user.UnknownUserError)) {
		u, err = user.LookupId(userName)
		if errors.As(err, new(user.UnknownUserIdError)) {
			return numericAccount(userName, groupName)
		}
	}
	if err != nil {
		if errors.As(err, new(user.UnknownUserError)) || errors.As(err, new(user.UnknownUserIdError)) {
			return nil, fmt.Errorf("user %q: no such user: create it (useradd --system %s) or fix `user`", userName, userName)
		}
		return nil, fmt.Errorf("user %q: %w", userName, err)
	}
	gid := u.Gid
	if groupName != "" {
		g, err := user.LookupGroup(groupName)
		if isNumber(groupName) && errors.As(err, new(user.UnknownGroupError)) {
			g, err = user.LookupGroupId(groupName)
		}
		if err != nil {
			if errors.As(err, new(user.UnknownGroupError)) || errors.As(err, new(user.UnknownGroupIdError)) {
				return nil, fmt.Errorf("group %q: no such group: create it (groupadd --system %s) or fix `group`", groupName, groupName)
			}
			return nil, fmt.Errorf("group %q: %w", groupName, err)
		}
		gid = g.Gid
	}
	a := &Account{Name: u.Username, Home: u.HomeDir}
	if a.UID, err = parseID(u.Uid); err == nil {
		a.GID, err = parseID(gid)
	}
	if err != nil {
		return nil, fmt.Errorf("user %q: %w", userName, err)
	}
	ids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("user %q: list its groups: %w", userName, err)
	}
	for _, s := range ids {
		id, err := parseID(s)
		if err != nil {
			return nil, fmt.Errorf("user %q: %w", userName, err)
		}
		a.Groups = append(a.Groups, id)
	}
	a.Groups = append(a.Groups, a.GID)
	slices.Sort(a.Groups)
	a.Groups = slices.Compact(a.Groups)
	return a, nil
}

// numericAccount is the account of a numeric user id that has no passwd
// entry, as containers run with (an arbitrary uid): its group must be
// given, since there is no primary group to take; HOME is "/".
func numericAccount(uid, groupName string) (*Account, error) {
	if groupName == "" {
		return nil, fmt.Errorf("user %q has no passwd entry, so no primary group: set group too (a name, or a numeric gid)", uid)
	}
	g, err := user.LookupGroup(groupName)
	gid := groupName
	switch {
	case err == nil:
		gid = g.Gid
	case !isNumber(groupName):
		return nil, fmt.Errorf("group %q: no such group: create it (groupadd --system %s) or fix `group`", groupName, groupName)
	}
	a := &Account{Name: uid, Home: "/"}
	if a.UID, err = parseID(uid); err == nil {
		a.GID, err = parseID(gid)
	}
	if err != nil {
		return nil, fmt.Errorf("user %q: %w", uid, err)
	}
	a.Groups = []uint32{a.GID}
	return a, nil
}

func isNumber(s string) bool {
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}

func parseID(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("id %q is not a number", s)
	}
	return uint32(n), nil
}

// CheckAccount decides whether the workers of a group may start with acct
// (nil: no user configured). Run as root, whisk refuses to start workers as
// root unless allowRoot (the allow_root setting) is true; run as another
// user, it cannot switch to a different one. Config validation calls it;
// group names the process group in the message.
func CheckAccount(group string, acct *Account, allowRoot bool) error {
	return checkAccount(os.Geteuid(), group, acct, allowRoot)
}

func checkAccount(euid int, group string, acct *Account, allowRoot bool) error {
	switch {
	case euid != 0 && acct != nil && acct.UID != uint32(euid):
		return fmt.Errorf("group %q sets user = %q but whisk runs as uid %d, which cannot switch users: start whisk as root, or remove `user`", group, acct.Name, euid)
	case allowRoot:
		return nil
	case euid == 0 && acct == nil:
		return fmt.Errorf("whisk runs as root and group %q sets no user: set user = \"www-data\" (and group) for its workers, or allow_root = true to run them as root on purpose", group)
	case acct != nil && acct.UID == 0:
		return fmt.Errorf("group %q sets user = %q, which is root: set an unprivileged user, or allow_root = true to run its workers as root on purpose", group, acct.Name)
	}
	return nil
}

// credential is what the worker's exec switches to; nil without an
// account, or when whisk is unprivileged and already that user (setgroups
// would fail even then).
func (a *Account) credential() *syscall.Credential {
	if a == nil || (os.Geteuid() != 0 && a.UID == uint32(os.Geteuid())) {
		return nil
	}
	return &syscall.Credential{Uid: a.UID, Gid: a.GID, Groups: a.Groups}
}

// env returns HOME, USER and LOGNAME, as login(1) sets them.
func (a *Account) env() []string {
	if a == nil {
		return nil
	}
	return []string{"HOME=" + a.Home, "USER=" + a.Name, "LOGNAME=" + a.Name}
}

// Same reports whether a and b are the same identity: user, group and
// supplementary groups.
func (a *Account) Same(b *Account) bool {
	return a != nil && b != nil && a.UID == b.UID && a.GID == b.GID && slices.Equal(a.Groups, b.Groups)
}

// Become switches the calling process, every thread of it, to a for good:
// supplementary groups, then group, then user (real, effective and saved
// ids), so that it cannot regain root. Only root can; the front uses it to
// give up root once its listeners are bound, when every group's workers
// run as a (workers it spawns later inherit the identity instead of
// switching to it).
func (a *Account) Become() error {
	groups := make([]int, len(a.Groups))
	for i, g := range a.Groups {
		groups[i] = int(g)
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("become %s: setgroups: %w", a.Name, err)
	}
	if err := syscall.Setresgid(int(a.GID), int(a.GID), int(a.GID)); err != nil {
		return fmt.Errorf("become %s: setresgid %d: %w", a.Name, a.GID, err)
	}
	if err := syscall.Setresuid(int(a.UID), int(a.UID), int(a.UID)); err != nil {
		return fmt.Errorf("become %s: setresuid %d: %w", a.Name, a.UID, err)
	}
	if os.Getuid() != int(a.UID) || os.Geteuid() != int(a.UID) || os.Getegid() != int(a.GID) {
		return fmt.Errorf("become %s: still uid %d/%d gid %d after setresuid", a.Name, os.Getuid(), os.Geteuid(), os.Getegid())
	}
	return nil
}
