package containerizer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
)

// failProvision makes every launch fail at its root filesystem.
var failProvision = fakeRule{Call: "provision", Err: "fake"}

// A custom seccomp profile that cannot be used is refused before anything
// of the container exists: no runtime check, no reservation, no root
// filesystem.
func TestLaunchRefusesBadProfileFirst(t *testing.T) {
	for name, profile := range map[string]string{
		"not JSON":         `defaultAction: allow`,
		"misspelt field":   `{"defaultAcion": "SCMP_ACT_ERRNO", "syscalls": []}`,
		"data after it":    `{"defaultAction": "SCMP_ACT_ERRNO"} {}`,
		"notify listener":  `{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/x.sock"}`,
		"notify action":    `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}`,
		"null rule":        `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [null]}`,
		"no action, rules": `{"syscalls": []}`,
		"arches twice":     `{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"], "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}`,
		"unknown action":   `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_MAYBE"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			e := newFakeEnv(t, fakeScript{Rules: []fakeRule{failProvision}})
			c := e.c
			spec := api.ContainerSpec{Rootfs: "/nonexistent", Command: []string{"true"},
				Seccomp: api.CustomSeccomp("profile.json", []byte(profile))}
			if _, err := c.Launch(context.Background(), spec, LaunchOptions{}); !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("launch: %v, want an error wrapping api.ErrInvalid", err)
			}
			if diff := cmp.Diff([]fakeCall(nil), e.journal()); diff != "" {
				t.Errorf("calls made (-want +got):\n%s", diff)
			}
			for _, dir := range []string{"containers", "owned"} {
				if got := entries(t, c, dir); len(got) > 0 {
					t.Errorf("%s holds %v", dir, got)
				}
			}
		})
	}
}

// The admin's seccomp policy decides which profiles a spec may select: one
// it does not allow is refused before anything of the container exists;
// one it allows goes on to the launch (here, to the root filesystem, which
// the fake provisioner fails).
func TestLaunchSeccompPolicy(t *testing.T) {
	custom := api.CustomSeccomp("profile.json", []byte(`{"defaultAction": "SCMP_ACT_ALLOW"}`))
	selections := map[string]api.Seccomp{
		"unset":      {},
		"default":    {Profile: api.SeccompDefault},
		"custom":     custom,
		"unconfined": {Profile: api.SeccompUnconfined},
	}
	for _, tc := range []struct {
		allow   []string
		allowed []string // of the selections
	}{
		{nil, []string{"unset", "default", "custom", "unconfined"}},
		{[]string{api.SeccompDefault, api.SeccompCustom, api.SeccompUnconfined}, []string{"unset", "default", "custom", "unconfined"}},
		{[]string{api.SeccompDefault}, []string{"unset", "default"}},
		{[]string{api.SeccompDefault, api.SeccompCustom}, []string{"unset", "default", "custom"}},
		{[]string{api.SeccompCustom}, []string{"custom"}},
		{[]string{api.SeccompUnconfined}, []string{"unconfined"}},
	} {
		for name, sel := range selections {
			t.Run(fmt.Sprintf("%v/%s", tc.allow, name), func(t *testing.T) {
				e := newFakeEnv(t, fakeScript{Rules: []fakeRule{failProvision}}, Config{SeccompAllow: tc.allow})
				c := e.c
				spec := api.ContainerSpec{Rootfs: "/nonexistent", Command: []string{"true"}, Seccomp: sel}
				_, err := c.Launch(context.Background(), spec, LaunchOptions{})
				if slices.Contains(tc.allowed, name) {
					if !errors.Is(err, errFake) {
						t.Fatalf("launch: %v, want it to reach the fake provisioner", err)
					}
					if calls := e.since(0, roleLauncher); !slices.Contains(calls, "provision") {
						t.Errorf("calls %v: no provision", calls)
					}
					return
				}
				if !errors.Is(err, api.ErrForbidden) {
					t.Fatalf("launch: %v, want an error wrapping api.ErrForbidden", err)
				}
				if diff := cmp.Diff([]fakeCall(nil), e.journal()); diff != "" {
					t.Errorf("calls made (-want +got):\n%s", diff)
				}
				for _, dir := range []string{"containers", "owned"} {
					if got := entries(t, c, dir); len(got) > 0 {
						t.Errorf("%s holds %v", dir, got)
					}
				}
			})
		}
	}
}

func TestNewRefusesUnknownSeccompPolicy(t *testing.T) {
	for _, allow := range [][]string{{"bogus"}, {api.SeccompDefault, ""}, {"Default"}} {
		cfg := newFakeEnv(t, fakeScript{}).fx.config()
		cfg.SeccompAllow = allow
		_, err := New(cfg)
		if !errors.Is(err, api.ErrInvalid) {
			t.Errorf("policy %q: %v, want an error wrapping api.ErrInvalid", allow, err)
		}
	}
}

// The checkpoint keeps which custom profile a container runs under (its
// source and digest), not the profile: every checkpoint would carry up to
// a mebibyte of it, more than the room kept for the last one.
func TestCheckpointKeepsNoProfile(t *testing.T) {
	for name, profile := range map[string]string{
		"small":   `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}`,
		"1 MiB":   `{"defaultAction": "SCMP_ACT_ALLOW"` + strings.Repeat(" ", api.MaxSeccompProfileBytes-40) + `}`,
		"escaped": `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [` + strings.Repeat(`{"names": ["<&>"], "action": "SCMP_ACT_LOG"},`, 4000) + `{"names": ["mkdir"], "action": "SCMP_ACT_LOG"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			sel := api.CustomSeccomp("/etc/caisson/profile.json", []byte(profile))
			var checkpoint []byte
			e := newFakeEnv(t, fakeScript{Rules: []fakeRule{failProvision}})
			c := e.c
			e.fx.onCall = func(call fakeCall) {
				if call.Call == "provision" {
					var err error
					if checkpoint, err = os.ReadFile(c.recordPath(call.ID)); err != nil {
						t.Error(err)
					}
				}
			}
			spec := api.ContainerSpec{Rootfs: "/nonexistent", Command: []string{"true"}, Seccomp: sel}
			if _, err := c.Launch(context.Background(), spec, LaunchOptions{}); !errors.Is(err, errFake) {
				t.Fatalf("launch: %v, want it to reach the fake provisioner", err)
			}
			var rec record
			if err := json.Unmarshal(checkpoint, &rec); err != nil {
				t.Fatal(err)
			}
			want := api.Seccomp{Profile: api.SeccompCustom, Source: sel.Source, Digest: sel.Digest}
			if diff := cmp.Diff(want, rec.Spec.Seccomp); diff != "" {
				t.Errorf("checkpoint's seccomp (-want +got):\n%s", diff)
			}
			if len(checkpoint) > 4<<10 {
				t.Errorf("checkpoint of %d bytes", len(checkpoint))
			}
		})
	}
}

// inspect says which profile a container runs under, and a container made
// before caisson had seccomp, whose checkpoint has none, runs under none.
func TestInspectSeccomp(t *testing.T) {
	custom := api.CustomSeccomp("/etc/caisson/profile.json", []byte(`{"defaultAction": "SCMP_ACT_ALLOW"}`))
	custom.Custom = ""
	for _, tc := range []struct {
		name string
		spec any // the checkpoint's "seccomp", or nil for none
		want api.Seccomp
	}{
		{"older than seccomp", nil, api.Seccomp{Profile: api.SeccompUnconfined}},
		{"empty", map[string]any{}, api.Seccomp{Profile: api.SeccompUnconfined}},
		{"default", api.Seccomp{Profile: api.SeccompDefault}, api.Seccomp{Profile: api.SeccompDefault}},
		{"unconfined", api.Seccomp{Profile: api.SeccompUnconfined}, api.Seccomp{Profile: api.SeccompUnconfined}},
		{"custom", custom, custom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newFakeEnv(t, fakeScript{}).c
			id := strings.Repeat("ab", 32)
			rec := &record{Version: recordVersion, ID: id, Name: "old", Phase: phaseExited, Runtime: "runc",
				CreatedAt:   time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC),
				Termination: &api.Termination{Reason: api.ReasonExited}, Cleaned: true,
				Spec: api.ContainerSpec{Name: "old", Rootfs: "/srv/rootfs"}}
			data, err := json.Marshal(rec)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatal(err)
			}
			spec := m["spec"].(map[string]any)
			delete(spec, "seccomp")
			if tc.spec != nil {
				spec["seccomp"] = tc.spec
			}
			if data, err = json.Marshal(m); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(c.containerDir(id), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(c.recordPath(id), data, 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := c.Inspect(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got.Spec.Seccomp); diff != "" {
				t.Errorf("inspect's seccomp (-want +got):\n%s", diff)
			}
		})
	}
}
