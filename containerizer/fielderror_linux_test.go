package containerizer

import (
	"errors"
	"testing"

	"github.com/caisson/caisson/api"
)

// TestValidateSpecNamesTheField: each spec validateSpec refuses comes back
// as an api.FieldError that names the field at fault, so that every front
// end can say it in its own terms (a flag, a JSON path). Linux only: the
// seccomp filter, built before the limits are checked, is built only there.
func TestValidateSpecNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		name         string
		spec         api.ContainerSpec
		seccompAllow []string
		want         error
		field        string
	}{
		{"bad name", api.ContainerSpec{Name: "a b"}, nil, api.ErrInvalid, "name"},
		{"image and rootfs", api.ContainerSpec{Image: "busybox", Rootfs: "/srv/root"}, nil, api.ErrInvalid, "rootfs"},
		{"relative workdir", api.ContainerSpec{WorkingDir: "tmp"}, nil, api.ErrInvalid, "working_dir"},
		{"env without name", api.ContainerSpec{Env: []string{"=x"}}, nil, api.ErrInvalid, "env"},
		{"unknown seccomp profile", api.ContainerSpec{Seccomp: api.Seccomp{Profile: "lax"}}, nil, api.ErrInvalid, "seccomp"},
		{"bad custom profile", api.ContainerSpec{Seccomp: api.CustomSeccomp("p.json", []byte("{"))}, nil, api.ErrInvalid, "seccomp"},
		{"profile the policy refuses", api.ContainerSpec{Seccomp: api.Seccomp{Profile: api.SeccompUnconfined}}, []string{api.SeccompDefault}, api.ErrForbidden, "seccomp"},
		{"negative cpus", api.ContainerSpec{Resources: api.Resources{CPUs: -1}}, nil, api.ErrInvalid, "resources.cpus"},
		{"negative memory", api.ContainerSpec{Resources: api.Resources{MemoryBytes: -1}}, nil, api.ErrInvalid, "resources.memory_bytes"},
		{"negative reservation", api.ContainerSpec{Resources: api.Resources{MemoryReservationBytes: -1}}, nil, api.ErrInvalid, "resources.memory_reservation_bytes"},
		{"negative pids limit", api.ContainerSpec{Resources: api.Resources{PidsLimit: -1}}, nil, api.ErrInvalid, "resources.pids_limit"},
		{"negative shm size", api.ContainerSpec{ShmSizeBytes: -1}, nil, api.ErrInvalid, "shm_size_bytes"},
		{"network twice", api.ContainerSpec{Networks: []string{"a", "a"}}, nil, api.ErrInvalid, "networks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := validateSpec(&tc.spec, tc.seccompAllow)
			if !errors.Is(err, tc.want) {
				t.Errorf("validateSpec = %v, want %v", err, tc.want)
			}
			var fe *api.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Errorf("validateSpec = %v, want a FieldError about %s", err, tc.field)
			}
		})
	}
}
