package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/volumes/client"
	"github.com/caisson/caisson/volumes/isolator"
)

// volumeSpec fills the volumes of --mount and -v.
func (f *runFlags) volumeSpec(s *api.ContainerSpec) error {
	for _, m := range f.mounts {
		v, err := parseMount(m)
		if err != nil {
			return err
		}
		s.Volumes = append(s.Volumes, v)
	}
	for _, m := range f.volumes {
		v, err := parseVolumeFlag(m)
		if err != nil {
			return err
		}
		s.Volumes = append(s.Volumes, v)
	}
	return nil
}

// parseMount parses --mount type=volume,driver=D,src=NAME,dst=/path[,ro]
// [,volume-opt=k=v]..., as Docker does: comma-separated values in CSV
// quoting ("volume-opt=o=a,b" in double quotes keeps its comma), Docker's
// synonyms for the keys, type=volume by default.
func parseMount(m string) (api.VolumeMount, error) {
	var v api.VolumeMount
	bad := func(why string) (api.VolumeMount, error) {
		return v, fmt.Errorf("--mount %q: %s (want type=volume,driver=D,src=NAME,dst=/path[,ro][,volume-opt=k=v]): %w", m, why, api.ErrInvalid)
	}
	fields, err := csv.NewReader(strings.NewReader(m)).Read()
	if err != nil {
		return bad("not comma-separated values: " + err.Error())
	}
	typ := "volume"
	for _, field := range fields {
		k, val, _ := strings.Cut(field, "=")
		switch strings.ToLower(k) {
		case "type":
			typ = val
		case "driver", "volume-driver":
			v.Driver = val
		case "src", "source":
			v.Name = val
		case "dst", "destination", "target":
			v.Target = val
		case "ro", "readonly":
			switch strings.ToLower(val) {
			case "", "1", "true":
				v.ReadOnly = true
			case "0", "false":
				v.ReadOnly = false
			default:
				return bad(fmt.Sprintf("%s=%q is not a boolean", k, val))
			}
		case "volume-opt":
			ok, ov, found := strings.Cut(val, "=")
			if !found || ok == "" {
				return bad(fmt.Sprintf("volume-opt %q is not KEY=VALUE", val))
			}
			if v.Options == nil {
				v.Options = map[string]string{}
			}
			v.Options[ok] = ov
		default:
			return bad(fmt.Sprintf("unknown key %q", k))
		}
	}
	switch {
	case typ != "volume":
		return bad("only type=volume is supported")
	case v.Driver == "":
		return bad("a volume driver is required (driver=NAME)")
	case v.Name == "":
		return bad("a volume name is required (src=NAME)")
	case v.Target == "":
		return bad("a target path is required (dst=/path)")
	}
	return v, nil
}

// parseVolumeFlag parses -v DRIVER/NAME:/path[:ro|rw]. DRIVER may itself
// hold a slash and a tag (a managed plugin, "vendor/plugin:tag").
func parseVolumeFlag(m string) (api.VolumeMount, error) {
	v, err := parseVolumeShort(m)
	if err != nil {
		return v, fmt.Errorf("-v %w", err)
	}
	return v, nil
}

// parseVolumeShort parses DRIVER/NAME:/path[:ro|rw], -v's form, which a
// session file's volumes take too.
func parseVolumeShort(m string) (api.VolumeMount, error) {
	var v api.VolumeMount
	bad := func(why string) (api.VolumeMount, error) {
		return v, fmt.Errorf("%q: %s (want DRIVER/NAME:/path[:ro]): %w", m, why, api.ErrInvalid)
	}
	src, dst, ok := strings.Cut(m, ":/")
	if !ok {
		return bad("no container path")
	}
	dst = "/" + dst
	if rest, mode, found := strings.Cut(dst, ":"); found {
		dst = rest
		switch mode {
		case "ro":
			v.ReadOnly = true
		case "rw":
		default:
			return bad(fmt.Sprintf("mode %q is not ro or rw", mode))
		}
	}
	if strings.HasPrefix(src, "/") {
		return bad("host directories are not volumes; name a volume of a driver")
	}
	i := strings.LastIndex(src, "/")
	if i <= 0 || i == len(src)-1 {
		return bad("name the volume's driver")
	}
	v.Driver, v.Name, v.Target = src[:i], src[i+1:], dst
	return v, nil
}

// volumes builds the docker/volume isolator.
func (g *globals) volumes(log *slog.Logger) (*isolator.Isolator, error) {
	d := &client.Discovery{DockerHost: g.cfg.Volumes.DockerHost, Logger: log.With("isolator", isolator.Name)}
	return isolator.New(isolator.Config{
		StateDir: filepath.Join(g.cfg.State.Root, "volumes"),
		Find: func(ctx context.Context, driver string) (isolator.Plugin, error) {
			return d.Find(ctx, driver)
		},
		Logger:     log.With("isolator", isolator.Name),
		CrashPoint: crashPoint(),
	})
}
