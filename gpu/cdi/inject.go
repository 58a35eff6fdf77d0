package cdi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	cdilib "tags.cncf.io/container-device-interface/pkg/cdi"
	"tags.cncf.io/container-device-interface/pkg/parser"
	cdispecs "tags.cncf.io/container-device-interface/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/atomicfile"
)

// SpecFile is the name of Caisson's spec in its CDI directory.
const SpecFile = "caisson-nvidia-gpu.json"

// Write writes spec as dir/SpecFile (mode 0644; dir is created 0755),
// replacing the previous one atomically: a reader sees the old spec or the
// new one, never a part. The file is loaded back with the CDI library
// before it replaces the old one, so a spec the library would refuse is an
// error wrapping api.ErrInvalid and leaves the old file in place.
func Write(dir string, spec *cdispecs.Spec) error {
	if spec == nil {
		return fmt.Errorf("write CDI spec: no spec: %w", api.ErrInvalid)
	}
	data, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return fmt.Errorf("write CDI spec: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write CDI spec: %w", err)
	}
	// The temporary name does not end in .json or .yaml, so a CDI cache
	// scanning dir meanwhile ignores it.
	tmp, err := os.CreateTemp(dir, "."+SpecFile+".*.tmp")
	if err != nil {
		return fmt.Errorf("write CDI spec: %w", err)
	}
	done := false
	defer func() {
		if !done {
			_ = os.Remove(tmp.Name())
		}
	}()
	_, err = tmp.Write(append(data, '\n'))
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write CDI spec: %w", err)
	}
	if _, err := cdilib.ReadSpec(tmp.Name(), 0); err != nil {
		return fmt.Errorf("write CDI spec %s: %w: %w", filepath.Join(dir, SpecFile), err, api.ErrInvalid)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, SpecFile)); err != nil {
		return fmt.Errorf("write CDI spec: %w", err)
	}
	done = true
	_ = atomicfile.SyncDir(dir) // in place; only the rename's durability is uncertain
	return nil
}

// Inject adds the CDI devices nvidia.com/gpu=<uuid> of the specs in dir
// to s: each GPU's node, the control nodes, an allow rule for each node in
// s.Linux.Resources.Devices (appended: a deny-all rule already there stays
// first), the driver mounts and hooks and the environment. Only dir is
// read, never /etc/cdi or /var/run/cdi. An empty uuids list injects nothing.
//
// A UUID without a device is an error wrapping api.ErrNotFound that names
// it, and so is a dir without SpecFile. An unreadable or invalid SpecFile,
// or one whose devices another file of dir also defines, is an error
// wrapping api.ErrInvalid. Other files of dir that the library cannot load
// do not stop the injection (the library skips them); their errors are
// named only when a device is missing. s is unchanged when a device is
// missing; when applying the edits fails, s may be partly edited.
func Inject(dir string, s *specs.Spec, uuids []string) error {
	if len(uuids) == 0 {
		return nil
	}
	if s == nil {
		return fmt.Errorf("inject GPUs: no OCI spec: %w", api.ErrInvalid)
	}
	ours := filepath.Join(filepath.Clean(dir), SpecFile)
	if _, err := os.Stat(ours); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("inject GPUs: no CDI spec %s (the GPUs' spec is written at startup): %w", ours, api.ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("inject GPUs: %w", err)
	}

	var names []string
	for _, u := range uuids {
		if err := parser.ValidateDeviceName(u); err != nil {
			return fmt.Errorf("inject GPUs: GPU %q: %w: %w", u, err, api.ErrInvalid)
		}
		if n := parser.QualifiedName("nvidia.com", "gpu", u); !slices.Contains(names, n) {
			names = append(names, n)
		}
	}

	cache, err := cdilib.NewCache(cdilib.WithSpecDirs(dir), cdilib.WithAutoRefresh(false))
	if err != nil {
		return fmt.Errorf("inject GPUs: %w", err)
	}
	// Refresh reports the errors of every file in dir, joined; only those
	// of our own file are fatal.
	_ = cache.Refresh()
	specErrs := cache.GetErrors()
	if errs := specErrs[ours]; len(errs) > 0 {
		return fmt.Errorf("inject GPUs: CDI spec %s: %w: %w", ours, errors.Join(errs...), api.ErrInvalid)
	}

	unresolved, err := cache.InjectDevices(s, names...)
	if len(unresolved) > 0 {
		missing := make([]string, len(unresolved))
		for i, n := range unresolved {
			missing[i] = strings.TrimPrefix(n, Kind+"=")
		}
		msg := fmt.Sprintf("inject GPUs: no CDI device in %s for GPU %s", ours, strings.Join(missing, ", "))
		var others []string
		for p, errs := range specErrs {
			others = append(others, fmt.Sprintf("%s: %v", p, errors.Join(errs...)))
		}
		if len(others) > 0 {
			slices.Sort(others)
			msg += " (other CDI specs in " + dir + " failed to load: " + strings.Join(others, "; ") + ")"
		}
		return fmt.Errorf("%s: %w", msg, api.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("inject GPUs: %w", err)
	}
	return nil
}
