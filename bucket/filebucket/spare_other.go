//go:build !linux

package filebucket

import (
	"errors"
	"os"
)

var errNoUnnamed = errors.New("unnamed temp files need Linux")

// unnamedTemp is Linux-only (O_TMPFILE); elsewhere writes create their
// temp file when they need it.
func unnamedTemp(string) (*os.File, error) { return nil, errNoUnnamed }

func nameTemp(*os.File, string) error { return errNoUnnamed }
