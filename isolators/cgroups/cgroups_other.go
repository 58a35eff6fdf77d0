//go:build !linux

package cgroups

import (
	"context"
	"fmt"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/isolators"
)

var errNoCgroups = fmt.Errorf("cgroups exist only on linux: %w", api.ErrUnavailable)

func detect(Mode, string) (Host, error) { return Host{}, errNoCgroups }

func (i *Isolator) watch(context.Context, string, int64) (*isolators.Limitation, error) {
	return nil, errNoCgroups
}

func (i *Isolator) oomKilled(context.Context, string) (bool, error) { return false, errNoCgroups }

func (i *Isolator) update(context.Context, string, api.Resources) error { return errNoCgroups }

func (i *Isolator) setQuota(string, int64) error { return errNoCgroups }

func (i *Isolator) usage(context.Context, string, *api.Usage) error { return errNoCgroups }

func (i *Isolator) destroy(context.Context, string) error { return errNoCgroups }

func (i *Isolator) recoverOrphans(context.Context, []string) error { return errNoCgroups }
