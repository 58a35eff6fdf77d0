package main

import (
	"fmt"
	"slices"

	"github.com/spf13/pflag"

	"github.com/caisson/caisson/api"
)

// refuseEmpty refuses a flag of fs given an empty value, or an empty item for a
// repeatable flag: it would read as a flag not given at all (--rootfs "" as
// no root filesystem, --shm-size "" as the default size, -e "" as no
// variable). The flags named in meaningful give an empty value a meaning of
// its own (--entrypoint "" clears the image's entrypoint). fs is a command's
// own flags (cobra's LocalFlags), checked for every command before it runs;
// the settings' flags are not: the configuration's checks say which of
// them may be empty (--docker-host "" asks no dockerd).
func refuseEmpty(fs *pflag.FlagSet, meaningful ...string) error {
	var err error
	fs.VisitAll(func(fl *pflag.Flag) {
		if err != nil || !fl.Changed || isSetting(fl) || slices.Contains(meaningful, fl.Name) {
			return
		}
		empty := false
		if sv, ok := fl.Value.(pflag.SliceValue); ok {
			empty = slices.Contains(sv.GetSlice(), "")
		} else if fl.Value.Type() == "string" {
			empty = fl.Value.String() == ""
		}
		if empty {
			err = fmt.Errorf("--%s: an empty value: %w", fl.Name, api.ErrInvalid)
		}
	})
	return err
}
