package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/caisson/caisson/api"
)

// resourceFlags are the limits run and update both take, with Docker's
// names and size syntax.
type resourceFlags struct {
	cpus, memory, reservation string
	pids                      int64
}

func (r *resourceFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&r.cpus, "cpus", "", "CPU limit in cores, e.g. 0.5")
	fl.StringVarP(&r.memory, "memory", "m", "", "memory limit, e.g. 512m (swap is not allowed beyond it)")
	fl.StringVar(&r.reservation, "memory-reservation", "", "memory soft limit (cgroup v1 soft limit, v2 memory.high)")
	fl.Int64Var(&r.pids, "pids-limit", 0, "limit on the number of processes")
}

// parse returns the limits given; zero fields were not given.
func (r *resourceFlags) parse() (api.Resources, error) {
	var res api.Resources
	var err error
	if r.cpus != "" {
		if res.CPUs, err = parseCPUs(r.cpus); err != nil {
			return res, err
		}
	}
	if r.memory != "" {
		if res.MemoryBytes, err = api.ParseSize(r.memory); err != nil {
			return res, fmt.Errorf("--memory: %w", err)
		}
	}
	if r.reservation != "" {
		if res.MemoryReservationBytes, err = api.ParseSize(r.reservation); err != nil {
			return res, fmt.Errorf("--memory-reservation: %w", err)
		}
	}
	if r.pids < 0 {
		return res, fmt.Errorf("--pids-limit must be positive: %w", api.ErrInvalid)
	}
	res.PidsLimit = r.pids
	return res, nil
}
