//go:build !linux

package agenthook

import (
	"errors"
	"log/slog"
	"syscall"
)

type jail struct{}

func newJail(string) (*jail, error) { return nil, errors.New("cgroups are Linux's") }

type cell struct{}

func (*jail) open(string) (*cell, error) { return nil, errors.New("cgroups are Linux's") }
func (*cell) enter(*syscall.SysProcAttr) {}
func (*cell) kill()                      {}
func (*cell) close(*slog.Logger)         {}

// CgroupDir is empty: cgroups are Linux's.
func CgroupDir(string) string { return "" }
