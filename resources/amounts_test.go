package resources

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
)

func ptr[T any](v T) *T { return &v }

func TestParseAmounts(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Amounts
	}{
		{"", Amounts{}},
		{"  ", Amounts{}},
		{"cpus:8;mem:16g;disk:100g;ports:[31000-32000]", Amounts{CPUs: ptr(8.0), MemoryBytes: ptr[int64](16 << 30),
			DiskBytes: ptr[int64](100 << 30), Ports: []api.PortRange{{Begin: 31000, End: 32000}}}},
		{"cpus(*):1.5; memory : 512m ", Amounts{CPUs: ptr(1.5), MemoryBytes: ptr[int64](512 << 20)}},
		{"cpus:0.0004", Amounts{CPUs: ptr(0.0)}},
		{"cpus:2.0005", Amounts{CPUs: ptr(2.001)}},
		{"mem:0;disk:1.5GiB", Amounts{MemoryBytes: ptr[int64](0), DiskBytes: ptr[int64](3 << 29)}},
		{"ports:[40000-40099, 31000-32000,32001,80]", Amounts{Ports: []api.PortRange{{Begin: 80, End: 80}, {Begin: 31000, End: 32001}, {Begin: 40000, End: 40099}}}},
		{"ports:[]", Amounts{Ports: []api.PortRange{}}},
		{"ports:[ ]", Amounts{Ports: []api.PortRange{}}},
		{"ports:[80-89,90,91-92]", Amounts{Ports: []api.PortRange{{Begin: 80, End: 92}}}},
		{"ports:8080-8081", Amounts{Ports: []api.PortRange{{Begin: 8080, End: 8081}}}},
		{"gpus:0", Amounts{GPUs: ptr(0)}},
	} {
		got, err := ParseAmounts(tc.in)
		if err != nil {
			t.Errorf("ParseAmounts(%q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseAmounts(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
	for _, bad := range []string{
		"cpus", "cpus:", "cpus:-1", "cpus:1e3", "cpus:Inf", "cpus:NaN", "cpus:0x10", "cpus:99999999", "cpus:8;cpus:4",
		"mem:16384", "mem:2x", "mem:-1g", "memory:1g;mem:2g", "disk:lots",
		"ports:[0-10]", "ports:[10-5]", "ports:[70000]", "ports:[31000-32000", "ports:", "ports:[a-b]",
		"gpus:2", "gpus:all", "cpus(ops):2", "colour:blue", "cpus:1,mem:1g",
		// Empty items and garbage.
		";", ";;;", " ; ", "cpus:8;", ";cpus:8", "cpus:8;;mem:1g", ":", ":8", "cpus:8 mem:1g", "cpus:8;x", "ports:[,]",
		"ports:[80,,90]", "ports:[80,]", "ports:[[80]]", "ports:[80]]", "ports:80]", "\x00", "cpus:8\x00",
		// Overlapping port ranges, which were merged silently.
		"ports:[31000-32000,31500-31600]", "ports:[8080,8080]", "ports:[100-200,50-100]", "ports:[1-65535,443]",
	} {
		if _, err := ParseAmounts(bad); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("ParseAmounts(%q) = %v, want api.ErrInvalid", bad, err)
		}
	}
}

// TestParseAmountsOverlap checks that overlapping port ranges, in
// --resources and --reserve alike, are refused naming both, where they
// were merged silently.
func TestParseAmountsOverlap(t *testing.T) {
	for in, want := range map[string]api.PortOverlapError{
		"ports:[31000-32000,31500-31600]":       {First: api.PortRange{Begin: 31000, End: 32000}, Second: api.PortRange{Begin: 31500, End: 31600}},
		"ports:[8080,8080]":                     {First: api.PortRange{Begin: 8080, End: 8080}, Second: api.PortRange{Begin: 8080, End: 8080}},
		"cpus:1;ports:[100-200, 300, 50-100]":   {First: api.PortRange{Begin: 100, End: 200}, Second: api.PortRange{Begin: 50, End: 100}},
		"ports:[1-10,20-30,25]":                 {First: api.PortRange{Begin: 20, End: 30}, Second: api.PortRange{Begin: 25, End: 25}},
		"ports:[1-65535,443]":                   {First: api.PortRange{Begin: 1, End: 65535}, Second: api.PortRange{Begin: 443, End: 443}},
		"ports:[40000-40099,30000-50000]":       {First: api.PortRange{Begin: 40000, End: 40099}, Second: api.PortRange{Begin: 30000, End: 50000}},
		"mem:1g;ports:[5-6,7-8,1-4,3];disk:1g":  {First: api.PortRange{Begin: 1, End: 4}, Second: api.PortRange{Begin: 3, End: 3}},
		"ports:[10-20,21-30,31-40,15-35,99999]": {First: api.PortRange{Begin: 10, End: 20}, Second: api.PortRange{Begin: 15, End: 35}},
	} {
		_, err := ParseAmounts(in)
		var got *api.PortOverlapError
		if !errors.As(err, &got) || !errors.Is(err, api.ErrInvalid) {
			t.Errorf("ParseAmounts(%q) = %v, want an *api.PortOverlapError", in, err)
			continue
		}
		if diff := cmp.Diff(want, *got); diff != "" {
			t.Errorf("ParseAmounts(%q) (-want +got):\n%s", in, diff)
		}
	}
	// Through Detect: the reservation is checked the same way.
	_, err := Detect(context.Background(), Config{Reserve: "ports:[31000-31010,31005]"})
	if !errors.As(err, new(*api.PortOverlapError)) {
		t.Errorf("Detect with overlapping reserved ports: %v, want an *api.PortOverlapError", err)
	}
}

func TestAmountsString(t *testing.T) {
	a := Amounts{CPUs: ptr(1.5), MemoryBytes: ptr[int64](3 << 29), DiskBytes: ptr[int64](1000),
		Ports: []api.PortRange{{Begin: 80, End: 80}, {Begin: 31000, End: 32000}}, GPUs: ptr(0)}
	if got, want := a.String(), "cpus:1.5;mem:1536m;disk:1000b;ports:[80,31000-32000];gpus:0"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// FuzzParseAmounts: a value is refused with api.ErrInvalid, or parses to
// amounts that are in range and that String writes back unchanged.
func FuzzParseAmounts(f *testing.F) {
	for _, s := range []string{"cpus:8;mem:16g;disk:100g;ports:[31000-32000]", "cpus(*):1.5", "ports:[80,90-100]",
		"gpus:0", "mem:0", "x", "cpus:1;cpus:2", "ports:[]", "disk:1.5t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAmounts(s)
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("ParseAmounts(%q) = %v, want api.ErrInvalid", s, err)
			}
			return
		}
		if a.CPUs != nil && (*a.CPUs < 0 || *a.CPUs > maxCPUs) || a.MemoryBytes != nil && *a.MemoryBytes < 0 ||
			a.DiskBytes != nil && *a.DiskBytes < 0 || a.GPUs != nil && *a.GPUs != 0 {
			t.Fatalf("ParseAmounts(%q) = %s: out of range", s, a)
		}
		for i, p := range a.Ports {
			if p.Begin < 1 || p.End > 65535 || p.Begin > p.End || i > 0 && p.Begin <= a.Ports[i-1].End+1 {
				t.Fatalf("ParseAmounts(%q): ports %v not sorted, merged and in range", s, a.Ports)
			}
		}
		again, err := ParseAmounts(a.String())
		if err != nil {
			t.Fatalf("ParseAmounts(%q) = %s, which does not parse: %v", s, a, err)
		}
		if diff := cmp.Diff(a, again); diff != "" {
			t.Fatalf("ParseAmounts(%q) written as %q parses differently (-first +second):\n%s", s, a, diff)
		}
	})
}

func TestLists(t *testing.T) {
	for in, want := range map[string][]int{"": {}, "0": {0}, "0-3,8-11\n": {0, 1, 2, 3, 8, 9, 10, 11}, "5,1-2,2": {1, 2, 5}} {
		got, err := ParseList(in)
		if err != nil {
			t.Errorf("ParseList(%q): %v", in, err)
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ParseList(%q) (-want +got):\n%s", in, diff)
		}
	}
	for _, bad := range []string{"x", "1-", "-1", "3-1", "1,,2", "0-99999999"} {
		if _, err := ParseList(bad); err == nil {
			t.Errorf("ParseList(%q) succeeded", bad)
		}
	}
	for in, want := range map[string]string{"": "", "0-3,8-11": "0-3,8-11", "0,2,4": "0,2,4", "252-255": "252-255"} {
		ids, _ := ParseList(in)
		if got := FormatList(ids); got != want {
			t.Errorf("FormatList(%v) = %q, want %q", ids, got, want)
		}
	}
}
