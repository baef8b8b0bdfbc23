//go:build !linux

package front

import "errors"

func setCork(fd uintptr, on bool) error { return errors.ErrUnsupported }
